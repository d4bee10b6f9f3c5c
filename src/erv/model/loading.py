"""Loading HumanOmni checkpoints: the model (`load_model`) or the model and its processor
(`load_pretrained`). What is resolved and checked is described in :mod:`erv.model.checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from erv.model.checkpoint import checkpoint_dir, load_checkpoint
from erv.model.configuration import HumanOmniQwen2Config
from erv.model.modeling import HumanOmniQwen2ForCausalLM
from erv.model.processor import HumanOmniProcessor


def load_model(
    path: str | os.PathLike[str],
    *,
    vision_tower: str | None = None,
    audio_tower: str | None = None,
    bert: str | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    torch_dtype: torch.dtype | str | None = None,
    tower_weights: str | None = None,
    device_map: Any = None,
    attn_implementation: str | None = "sdpa",
    config: HumanOmniQwen2Config | None = None,
    **hf_kwargs: Any,
) -> HumanOmniQwen2ForCausalLM:
    """The model alone (no processor). `torch_dtype` None means bfloat16; "auto" keeps the
    checkpoint's dtype. Extra keyword arguments that name config fields override them (e.g.
    `use_cache=False`); the others go to transformers' `from_pretrained` (e.g. `revision`)."""
    return load_checkpoint(
        HumanOmniQwen2ForCausalLM,
        path,
        vision_tower=vision_tower,
        audio_tower=audio_tower,
        bert=bert,
        components_dir=components_dir,
        torch_dtype=torch_dtype,
        tower_weights=tower_weights,
        device_map=device_map,
        attn_implementation=attn_implementation,
        config=config,
        **hf_kwargs,
    )


def load_pretrained(
    path: str | os.PathLike[str],
    *,
    vision_tower: str | None = None,
    audio_tower: str | None = None,
    bert: str | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    torch_dtype: torch.dtype | str | None = None,
    tower_weights: str | None = None,
    device_map: Any = None,
    attn_implementation: str | None = "sdpa",
):
    """`(model, processor)` for a HumanOmni checkpoint folder (docs/architecture.md, "Contracts").

    Tower arguments override the config's `mm_vision_tower` / `mm_audio_tower` (and `bert` the
    BERT location, default `bert-base-uncased`); relative names resolve against
    `components_dir`, the checkpoint's parent folder, then the checkpoint folder.
    `tower_weights=None` uses what the checkpoint records ("checkpoint" for `erv sft` / `erv grpo`
    outputs, whose towers may have been trained), else "original".
    """
    model = load_model(
        path,
        vision_tower=vision_tower,
        audio_tower=audio_tower,
        bert=bert,
        components_dir=components_dir,
        torch_dtype=torch_dtype,
        tower_weights=tower_weights,
        device_map=device_map,
        attn_implementation=attn_implementation,
    )
    ckpt = checkpoint_dir(path)
    processor = HumanOmniProcessor.from_pretrained(
        str(ckpt),
        vision_tower=model.config.mm_vision_tower,
        audio_tower=model.config.mm_audio_tower,
        bert=model.config.mm_bert_tower,
        config=model.config,
    )
    return model, processor
