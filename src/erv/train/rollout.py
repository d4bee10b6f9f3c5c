"""GRPO rollouts: sample G completions per multimodal prompt, prefilling each prompt only once.

A HumanOmni prompt is mostly media (0.5B: 392 video + 500 audio tokens, 7B: 1,568 + 500, plus
~80 text tokens) and a GRPO group shares one prompt across its G completions. Generating the
group as G independent rows, as `generate` on repeated prompts does, prefills the same prompt G
times. Here the distinct prompts are prefilled once, as one left-padded batch, and the KV cache
is expanded to the completion rows (`Cache.batch_select_indices`), so every completion starts
from its prompt's cache; decoding then runs all completion rows together.

The decoding loop is the one transformers' `generate` runs (same logits processors, same
positions from the attention mask), so greedy results equal `model.generate` on each row alone
(tested). Under DeepSpeed ZeRO-3 with partitioned weights every rank must run the same number
of forward passes, so with `synced=True` the loop continues (feeding padding) until every rank
has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from erv.errors import ModelInputError


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are drawn (GRPOConfig's names); `do_sample=False` is greedy decoding."""

    max_new_tokens: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0

    def logits_processors(self) -> Any:
        """The processors `generate` would build for these settings, in its order."""
        from transformers.generation import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        from erv.model.generation import make_warpers

        processors = LogitsProcessorList()
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(self.repetition_penalty))
        if self.do_sample:
            sampling = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}
            processors.extend(make_warpers({**sampling, "min_p": self.min_p or None}))  # min_p 0: off, as TRL's
        return processors


def _all_ranks_done(done: bool, device: torch.device) -> bool:
    flag = torch.tensor([0.0 if done else 1.0], device=device)
    torch.distributed.all_reduce(flag)
    return flag.item() == 0.0


@torch.no_grad()
def generate_shared_prefix(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    row_prompt: torch.Tensor,
    settings: SamplingSettings,
    *,
    prompt_inputs: dict[str, torch.Tensor] | None = None,
    synced: bool = False,
) -> list[list[int]]:
    """Completion token ids for each row; row r continues prompt `row_prompt[r]`.

    `prompt_ids` / `prompt_mask` are the D distinct prompts, left-padded, with their multimodal
    placeholders; `prompt_inputs` holds their media inputs (raw or tower features, BERT
    question), one row per distinct prompt. Each returned list ends at the first EOS token
    (included) or at `max_new_tokens`.
    """
    if prompt_ids.ndim != 2 or prompt_ids.shape != prompt_mask.shape:
        raise ModelInputError(
            f"prompt ids {tuple(prompt_ids.shape)} and mask {tuple(prompt_mask.shape)} must be 2-D and equal"
        )
    device = prompt_ids.device
    row_prompt = row_prompt.to(device)
    rows = row_prompt.numel()
    prefill = model(
        input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True, logits_to_keep=1, **(prompt_inputs or {})
    )
    cache = prefill.past_key_values
    cache.batch_select_indices(row_prompt)
    mask = prefill.attention_mask[row_prompt]
    logits = prefill.logits[row_prompt, -1, :]
    del prefill

    processors = settings.logits_processors()
    eos = torch.tensor(settings.eos_token_ids, device=device)
    generated = torch.zeros((rows, 0), dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    for step in range(settings.max_new_tokens):
        scores = processors(generated, logits.float())
        if settings.do_sample:
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            next_tokens = scores.argmax(dim=-1)
        next_tokens = torch.where(finished, torch.full_like(next_tokens, settings.pad_token_id), next_tokens)
        generated = torch.cat([generated, next_tokens[:, None]], dim=1)
        finished |= torch.isin(next_tokens, eos)
        done = bool(finished.all()) or step == settings.max_new_tokens - 1
        if synced:
            if _all_ranks_done(done, device):
                break
        elif done:
            break
        mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=1)
        out = model(input_ids=next_tokens[:, None], attention_mask=mask, past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1, :]

    completions = []
    for row in generated.tolist():
        ids = []
        for token in row:
            ids.append(token)
            if token in settings.eos_token_ids:
                break
        completions.append(ids)
    return completions
