"""Shared-prefix packing: one forward pass for the G completions of a prompt.

In a HumanOmni GRPO step almost every token is prompt (0.5B: ~970 positions of video, audio
and text; a completion 100–500 tokens), and the plain layout runs that prompt once per
completion in each of the policy, old-policy and reference passes. Packed, a group is one row

    [prompt[:-1], prompt[-1], c_1, prompt[-1], c_2, ..., prompt[-1], c_G]

where each completion's segment starts with the prompt's last token, sees the shared part and
its own earlier tokens only, and has positions that restart where the prompt ends. The last
prompt token is repeated per segment because its hidden state predicts each completion's
first token, and a row position can carry only one next-token label; repeating one token per
completion is what keeps every log-prob equal to the plain layout's.

The mask is a boolean block mask over the expanded sequence (the media placeholders of the
shared part become their feature rows in the model), passed to SDPA as is (an additive float
mask for eager attention). flash-attention's kernels take padding-free packed sequences
(cumulative lengths) but no mask, so they cannot let several segments share one prefix in one
pass; with flash-attention the trainer runs the plain layout. A group larger than
`max_completions` is cut into chunks, each its own packed row: the shared part is recomputed
once per chunk instead of once per completion. Chunks, rather than one pass for the prompt and
later passes re-using its KV cache, keep one forward per micro-batch, which DDP and ZeRO-3 need
for their gradient hooks and parameter gathering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    """Model inputs for packed rows, and where each completion's tokens sit in them."""

    input_ids: torch.Tensor  # (rows, length) unexpanded, with placeholders in the shared part
    attention_mask: torch.Tensor  # (rows, 1, expanded, expanded) bool, or additive float for eager attention
    position_ids: torch.Tensor  # (rows, expanded)
    shift_labels: torch.Tensor  # (rows, expanded): next-token label at each position, -100 elsewhere
    segments: list[list[tuple[int, int]]]  # per packed row: (first label position, tokens) of each completion


def pack_groups(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[Sequence[int]]],
    *,
    extra_positions: int,
    pad_token_id: int,
    float_mask_dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> PackedBatch:
    """One packed row per (prompt, its completions); see the module doc for the layout.

    `extra_positions` is how many positions the prompt's placeholders add when spliced.
    With `float_mask_dtype`, the mask is additive (0 / most negative) for eager attention.
    """
    rows = []
    for prompt, group in zip(prompts, completions, strict=True):
        if len(prompt) < 2:
            raise ValueError("a packed prompt needs at least two tokens")
        shared, last = list(prompt[:-1]), int(prompt[-1])
        ids = list(shared)
        expanded_shared = len(shared) + extra_positions
        segments, lengths = [], []
        offset = expanded_shared
        for completion in group:
            ids.extend([last, *completion])
            segments.append((offset, len(completion)))
            lengths.append(len(completion) + 1)
            offset += len(completion) + 1
        rows.append((ids, expanded_shared, lengths, segments, group))
    width = max(len(r[0]) for r in rows)
    expanded = width + extra_positions
    n = len(rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, 1, expanded, expanded), dtype=torch.bool)
    positions = torch.zeros((n, expanded), dtype=torch.long)
    labels = torch.full((n, expanded), -100, dtype=torch.long)
    causal = torch.ones((expanded, expanded), dtype=torch.bool).tril()
    for row, (ids, shared, lengths, segments, group) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, 0, :shared, :shared] = causal[:shared, :shared]
        positions[row, :shared] = torch.arange(shared)
        start = shared
        for length, (first, _), completion in zip(lengths, segments, group, strict=True):
            end = start + length
            mask[row, 0, start:end, :shared] = True
            mask[row, 0, start:end, start:end] = causal[:length, :length]
            positions[row, start:end] = torch.arange(shared, shared + length)
            if completion:
                labels[row, first : first + len(completion)] = torch.tensor(list(completion))
            start = end
        used = shared + sum(lengths)
        idle = torch.arange(used, expanded)
        mask[row, 0, idle, idle] = True  # padding attends to itself: no fully masked row in the softmax
        positions[row, used:] = torch.arange(shared, shared + expanded - used)
    if float_mask_dtype is not None:
        floor = torch.finfo(float_mask_dtype).min
        mask = torch.zeros(mask.shape, dtype=float_mask_dtype).masked_fill(~mask, floor)
    if device is not None:
        input_ids, mask, positions, labels = (t.to(device) for t in (input_ids, mask, positions, labels))
    return PackedBatch(input_ids, mask, positions, labels, [r[3] for r in rows])


def chunked(items: Sequence[int], size: int | None) -> list[list[int]]:
    """`items` in runs of at most `size` (all together when `size` is None)."""
    items = list(items)
    if not size or size >= len(items):
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]
