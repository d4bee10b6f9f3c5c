"""One GRPO generation round's prompts: their token ids and their multimodal inputs, computed once.

A round covers the generation batch of one process: B×G rows, in groups that share a prompt.
The distinct prompts are encoded once (prompt ids with placeholders, BERT question), their clips
run through the frozen vision and audio towers once, and every later use — the prefill of the
rollout, the policy pass of each micro-batch, the old-policy and reference passes — takes the
rows it needs from here by index. A tower that the recipe trains cannot be reused (its output
changes with every step): then the raw frames or audio features are kept instead and the tower
runs inside each pass, with gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from erv.errors import ModelInputError
from erv.model.constants import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
from erv.train.data import added_positions, placeholder_expansion


@dataclass
class PromptRound:
    """The distinct prompts of a round and, for each row, which of them it continues."""

    row_prompt: torch.Tensor
    """(rows,) index of each row's distinct prompt."""
    prompt_ids: list[list[int]]
    """Token ids of each distinct prompt, with the -201/-202 placeholders."""
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """Model inputs of the distinct prompts, one row each (BERT question, tower features or raw media)."""
    extra_positions: int = 0
    """How many positions longer a prompt is once its placeholders are replaced by their features."""

    @property
    def num_prompts(self) -> int:
        return len(self.prompt_ids)

    def prompt_inputs(self, prompts: torch.Tensor) -> dict[str, torch.Tensor]:
        """The multimodal inputs of the distinct prompts `prompts` (one row each, repeats allowed)."""
        return {name: value[prompts.to(value.device)] for name, value in self.inputs.items()}

    def row_inputs(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The multimodal inputs for completion rows (`rows` indexes `row_prompt`)."""
        return self.prompt_inputs(self.row_prompt[rows.to(self.row_prompt.device)])


def group_rows(keys: Sequence[Any]) -> tuple[list[int], torch.Tensor]:
    """First row of each distinct key (in order of appearance) and each row's distinct index."""
    first: dict[Any, int] = {}
    order: list[int] = []
    for row, key in enumerate(keys):
        if key not in first:
            first[key] = len(order)
            order.append(row)
    return order, torch.tensor([first[key] for key in keys], dtype=torch.long)


def extra_positions(model: Any, prompt_ids: Sequence[Sequence[int]], frames: int) -> int:
    """Positions the placeholders add when spliced; the same for every prompt of a round."""
    expansion = placeholder_expansion(model, frames)
    expansion[IMAGE_PLACEHOLDER] = expansion[VIDEO_PLACEHOLDER]  # spliced as a one-clip video
    counts = {added_positions(ids, expansion) for ids in prompt_ids}
    if len(counts) != 1:
        raise ModelInputError(
            f"the prompts of one round expand differently ({sorted(counts)}): every GRPO prompt "
            f"must hold exactly one video and one audio placeholder"
        )
    return counts.pop()


@torch.no_grad()
def encode_media(
    model: Any, samples: Sequence[Any], *, device: torch.device, reuse_vision: bool, reuse_audio: bool
) -> dict[str, torch.Tensor]:
    """Media inputs of the distinct prompts: tower outputs where the tower is frozen, else raw."""
    inner = model.model
    pixels = torch.stack([s.pixel_values for s in samples])
    vision_dtype = next(inner.vision_tower.parameters()).dtype
    pixels = pixels.to(device=device, dtype=vision_dtype)
    out: dict[str, torch.Tensor] = {}
    if reuse_vision:
        out["video_tower_features"] = inner.run_vision_tower(pixels)
    else:
        out["pixel_values_videos"] = pixels
    if any(s.audio_features is None for s in samples):
        raise ModelInputError("a clip of this round has no audio features")
    audio = torch.stack([s.audio_features for s in samples])
    audio = audio.to(device=device, dtype=next(inner.audio_tower.parameters()).dtype)
    if reuse_audio:
        out["audio_tower_features"] = inner.run_audio_tower(audio)
    else:
        out["audio_input_features"] = audio
    return out
