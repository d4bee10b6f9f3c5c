"""What decides the text `erv infer` produces: the user's settings merged with the checkpoint's.

The reference's mm_infer passes `do_sample`, `temperature`, `top_p` and `max_new_tokens` to
transformers' `generate`, which merges them over the checkpoint's `generation_config.json` and
then over transformers' global defaults; whatever mm_infer does not pass (a `repetition_penalty`
or `top_k` of the checkpoint, the global `top_k=50` when sampling) stays active
(docs/reference.md §10). :func:`build_decoding` performs exactly that merge with transformers'
own code and returns it in two parts:

* `generation`: the config handed to `generate` — greedy, with every sampling field neutral,
  the stop ids and the pad id set; the logits processors it implies (repetition penalty, ...)
  run as transformers runs them;
* `sampler`: when sampling, the effective temperature / top-k / top-p / ... that
  :class:`erv.inference.sampling.RowSampler` applies after those processors, in transformers'
  order, drawing each row from its own seeded generator (so a sample depends on its clip, its
  sample index and the seed, not on its batch, its rank or whether the run was resumed).

Both parts are recorded in the output's sidecar (:mod:`erv.inference.identity`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

from erv.errors import ConfigError

# The paper samples with temperature 0.3 and top-p 0.9 at inference (mm_infer's defaults).
PAPER_TEMPERATURE = 0.3
DEFAULT_TOP_P = 0.9
DEFAULT_MAX_NEW_TOKENS = 512  # ERV's mm_infer

# `--answer-only` (CA-EMER's early-answer mode): the assistant turn starts with an empty think,
# so the model goes straight to <answer>. The prefix is part of the prompt and of the stored
# response, so the response parses like any other.
ANSWER_ONLY_PREFIX = "<think>\n</think>\n"

# Sampling fields of a GenerationConfig and the value at which each is inactive; the order is
# the order in which transformers applies their warpers (GenerationMixin._get_logits_processor).
SAMPLING_FIELDS: dict[str, Any] = {
    "temperature": 1.0,
    "top_h": None,
    "top_k": None,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}
# Config entries that say nothing about the text (bookkeeping, output format).
_NOT_DECODING = (
    "transformers_version",
    "_from_model_config",
    "return_dict_in_generate",
    "output_scores",
    "output_logits",
    "output_attentions",
    "output_hidden_states",
)


@dataclass(frozen=True)
class InferenceSettings:
    """The user's choices that change the generated text (the run's identity with the checkpoint)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0  # 0 = greedy
    top_p: float = DEFAULT_TOP_P  # used only when sampling
    num_samples: int = 1
    seed: int = 0
    answer_only: bool = False
    on_missing_audio: str = "error"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"--temperature must be 0 (greedy) or positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ConfigError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.num_samples > 1 and not self.sampling:
            raise ConfigError(
                f"--num-samples {self.num_samples} with greedy decoding gives {self.num_samples} identical "
                f"responses; add --temperature (the paper samples with {PAPER_TEMPERATURE})"
            )

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @property
    def response_prefix(self) -> str:
        return ANSWER_ONLY_PREFIX if self.answer_only else ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["response_prefix"] = self.response_prefix
        if not self.sampling:  # irrelevant to greedy decoding: keep them out of the run's identity
            out.pop("top_p")
            out.pop("seed")
        return out


@dataclass(frozen=True)
class Decoding:
    """The merged decoding set-up (module doc)."""

    generation: Any  # transformers.GenerationConfig, greedy
    sampler: dict[str, Any] | None  # effective sampling fields, None for greedy
    stop_ids: tuple[int, ...]

    def describe(self) -> dict[str, Any]:
        """The generation config as recorded: the entries that differ from transformers' global defaults."""
        from transformers import GenerationConfig

        defaults = getattr(GenerationConfig, "_get_default_generation_params", dict)()
        generation = {
            k: v
            for k, v in self.generation.to_diff_dict().items()
            if k not in _NOT_DECODING and not (k in defaults and defaults[k] == v)
        }
        return {"generation": generation, "sampler": self.sampler}


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def stop_ids(generation_config: Any, tokenizer: Any) -> tuple[int, ...]:
    """The ids that end a response: the config's eos ids and the tokenizer's eos (what mm_infer's
    `KeywordsStoppingCriteria([tokenizer.eos_token])` stops on)."""
    ids = _as_list(getattr(generation_config, "eos_token_id", None))
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and int(eos) not in ids:
        ids.append(int(eos))
    if not ids:
        raise ConfigError("neither generation_config.json nor the tokenizer defines an end-of-sequence token")
    return tuple(ids)


def build_decoding(model: Any, tokenizer: Any, settings: InferenceSettings) -> Decoding:
    """Merge `settings` over the checkpoint's generation config as transformers' `generate` does."""
    overrides: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.sampling}
    if settings.sampling:
        overrides.update(temperature=settings.temperature, top_p=settings.top_p)
    # transformers' own merge: explicit arguments > the checkpoint's generation_config.json > global defaults
    requested = copy.deepcopy(model.generation_config)
    requested.update(**overrides)
    merged, _ = model._prepare_generation_config(requested)
    stops = stop_ids(merged, tokenizer)
    pad = merged.pad_token_id
    pad = int(pad[0] if isinstance(pad, (list, tuple)) else pad) if pad is not None else stops[0]  # mm_infer: eos
    sampler = None
    if settings.sampling:
        sampler = {name: getattr(merged, name, None) for name in SAMPLING_FIELDS}
    generation = copy.deepcopy(merged)
    generation.do_sample = False
    for name, neutral in SAMPLING_FIELDS.items():
        if hasattr(generation, name):
            setattr(generation, name, neutral)
    generation.eos_token_id = list(stops)
    generation.pad_token_id = pad
    # lengths as the checkpoint has them (usually unset): max_new_tokens decides, without transformers'
    # warning about a max_length it filled in itself
    generation.max_length = model.generation_config.max_length
    generation.min_length = model.generation_config.min_length
    return Decoding(generation, sampler, stops)
