"""What trains, by name: the tunable parts of HumanOmni and the parameter prefixes they own.

Why by name: the reference's SFT script lists its trainable parts as a comma string
(`mm_tunable_parts`) whose vision-tower entry never takes effect (the tower runs under
`no_grad`), so a recipe said one thing and the run did another. Here a recipe lists parts,
`apply_tune_parts` sets `requires_grad` on exactly their parameters and nothing else (frozen
parameters then get no gradient and, because the optimizer only receives trainable
parameters, no optimizer state), and `frozen_parts` answers which parts stay fixed (GRPO
reuses tower features across completions only when the towers are frozen).

Every parameter of `HumanOmniQwen2ForCausalLM` belongs to exactly one part (checked by
`part_of`, which raises for a parameter no part claims, so a new module cannot slip through
untracked).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from erv.errors import ConfigError

# part name -> parameter-name prefixes (names as `model.named_parameters()` spells them)
TUNABLE_PARTS: dict[str, tuple[str, ...]] = {
    "llm": ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head."),
    "mm_projector": ("model.mm_projector.", "model.feature_compressor."),
    "audio_projector": ("model.audio_projector.",),
    "bert_gate": ("model.bert_gate.",),
    "bert": ("model.bert_model.",),
    "vision_tower": ("model.vision_tower.",),
    "audio_tower": ("model.audio_tower.",),
}
# the reference's `mm_tunable_parts` spellings, accepted for recipes ported from it
REFERENCE_ALIASES: dict[str, str] = {
    "mm_language_model": "llm",
    "mm_mlp_adapter": "mm_projector",
    "mm_vision_tower": "vision_tower",
    "mm_audio_tower": "audio_tower",
}
# Paper, SFT stage: LLM, vision tower, visual projector, audio projector, text gate.
PAPER_SFT_PARTS: tuple[str, ...] = ("llm", "mm_projector", "audio_projector", "bert_gate", "vision_tower")
# What the released SFT run actually updated: the vision tower is listed but runs under no_grad.
RELEASED_SFT_PARTS: tuple[str, ...] = ("llm", "mm_projector", "audio_projector", "bert_gate")
TOWER_PARTS: tuple[str, ...] = ("vision_tower", "audio_tower")


def normalize_parts(parts: Iterable[str] | str) -> tuple[str, ...]:
    """Canonical part names in a stable order; unknown names are a ConfigError listing the valid ones."""
    if isinstance(parts, str):
        parts = [p for p in parts.replace(",", " ").split() if p]
    names: list[str] = []
    for raw in parts:
        name = REFERENCE_ALIASES.get(str(raw).strip(), str(raw).strip())
        if name not in TUNABLE_PARTS:
            raise ConfigError(
                f"unknown tune_parts name {raw!r}; valid names: {', '.join(TUNABLE_PARTS)} "
                f"(reference spellings {', '.join(REFERENCE_ALIASES)} are accepted too)"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"tune_parts is empty: nothing would train; choose from {', '.join(TUNABLE_PARTS)}")
    return tuple(sorted(names, key=list(TUNABLE_PARTS).index))


def part_of(parameter_name: str) -> str:
    """The part a parameter belongs to (PEFT's `base_model.model.` prefix and wrapper levels ignored)."""
    name = strip_peft_prefix(parameter_name)
    for part, prefixes in TUNABLE_PARTS.items():
        if name.startswith(prefixes):
            return part
    raise ConfigError(f"parameter {parameter_name!r} belongs to no tunable part ({', '.join(TUNABLE_PARTS)})")


def strip_peft_prefix(name: str) -> str:
    """A parameter name as the bare model spells it: without PEFT's wrapper levels."""
    if name.startswith("base_model.model."):
        name = name[len("base_model.model.") :]
    for level in (".original_module.", ".base_layer."):
        name = name.replace(level, ".")
    if ".modules_to_save." in name:
        head, _, tail = name.partition(".modules_to_save.")
        name = head + "." + tail.split(".", 1)[1]
    return name


def unused_parameter_prefixes(model: Any) -> tuple[str, ...]:
    """Parameters the forward pass never reads; they stay frozen whatever the parts say.

    SigLIP layers after the selected one, its post-layernorm and pooling head; Whisper's
    classification head; BERT's pooler (the gate reads [CLS] of the last hidden state); the
    upstream slow-fast compressor. Training them is impossible (no gradient ever reaches them),
    and left trainable they would break DDP with activation checkpointing (unused parameters).
    """
    inner = getattr(model, "model", model)
    prefixes = [
        "model.audio_tower.audio_tower.projector.",
        "model.audio_tower.audio_tower.classifier.",
        "model.bert_model.pooler.",
        "model.feature_compressor.",
        "model.vision_tower.vision_tower.vision_model.post_layernorm.",
        "model.vision_tower.vision_tower.vision_model.head.",
    ]
    tower = getattr(inner, "vision_tower", None)
    used = getattr(tower, "num_layers_used", None)
    if used is not None:
        total = tower.config.num_hidden_layers
        prefixes += [f"model.vision_tower.vision_tower.vision_model.encoder.layers.{i}." for i in range(used, total)]
    return tuple(prefixes)


def apply_tune_parts(model: Any, parts: Sequence[str] | str) -> tuple[str, ...]:
    """Make exactly the parameters of `parts` trainable (`requires_grad`), freeze all others.

    Parameters the forward pass never uses stay frozen (`unused_parameter_prefixes`). Returns
    the canonical part names. Works on the bare model (before any PEFT wrapping).
    """
    names = normalize_parts(parts)
    unused = unused_parameter_prefixes(model)
    for param_name, param in model.named_parameters():
        param.requires_grad_(part_of(param_name) in names and not param_name.startswith(unused))
    return names


def freeze_unused(model: Any, unused: tuple[str, ...]) -> None:
    """Re-freeze never-used parameters after PEFT copied modules (its copies are all trainable)."""
    for param_name, param in model.named_parameters():
        if strip_peft_prefix(param_name).startswith(unused):
            param.requires_grad_(False)


def frozen_parts(model: Any) -> tuple[str, ...]:
    """Parts none of whose parameters train (a part with no parameters counts as frozen).

    Works on the bare model and on a PEFT-wrapped one.
    """
    training = {part_of(n) for n, p in model.named_parameters() if p.requires_grad}
    return tuple(part for part in TUNABLE_PARTS if part not in training)


def parameter_counts(model: Any) -> dict[str, dict[str, int]]:
    """{part: {"trainable": n, "frozen": n}} parameter element counts, for the start-of-run log."""
    counts = {part: {"trainable": 0, "frozen": 0} for part in TUNABLE_PARTS}
    for name, param in model.named_parameters():
        counts[part_of(name)]["trainable" if param.requires_grad else "frozen"] += param.numel()
    return {part: c for part, c in counts.items() if c["trainable"] or c["frozen"]}


# ---------------------------------------------------------------- LoRA on the LLM
LLM_LINEAR_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def llm_lora_target_regex(target_modules: Sequence[str] | None) -> str:
    """A PEFT `target_modules` regex that selects linear layers of the Qwen2 decoder only.

    Plain names like `q_proj` would also match SigLIP's and Whisper's attention projections;
    the regex keeps the adapters on `model.layers.N.{self_attn,mlp}.<name>`. None or
    `all-linear` means every decoder linear layer.
    """
    names = list(target_modules or ["all-linear"])
    if names == ["all-linear"]:
        names = list(LLM_LINEAR_MODULES)
    unknown = [n for n in names if n not in LLM_LINEAR_MODULES]
    if unknown:
        raise ConfigError(
            f"lora_target_modules {unknown} are not linear layers of the LLM; choose from "
            f"{', '.join(LLM_LINEAR_MODULES)} or all-linear"
        )
    return r"model\.layers\.\d+\.(?:self_attn|mlp)\.(?:" + "|".join(names) + r")"


def modules_to_save(model: Any, parts: Sequence[str]) -> list[str]:
    """Full names of the child modules of the non-LLM tuned parts, for PEFT's `modules_to_save`.

    PEFT wraps each listed module in a trainable copy. The children are listed rather than the
    part's own module so that the part keeps its class (the gated projector is recognised by
    its type) and only modules with parameters get copied.
    """
    wanted = [p for p in normalize_parts(parts) if p != "llm"]
    roots = [prefix.rstrip(".") for part in wanted for prefix in TUNABLE_PARTS[part]]
    out: list[str] = []
    for name, module in model.named_modules():
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if parent in roots and any(True for _ in module.parameters()):
            out.append(name)
    return out
