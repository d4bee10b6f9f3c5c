"""Sampling where each response depends on its clip, sample index and seed only.

transformers samples a whole batch with one `torch.multinomial` call on the global generator,
so a clip's sampled response changes with the clips it is batched with, the rank it runs on and
whether the run was resumed — and a resumed sampled run would not match an uninterrupted one.
:class:`RowSampler` runs as the last logits processor of greedy generation: it applies the
sampling warpers transformers would (same classes, same order, from the merged config), draws
one token per row by inverse-CDF from that row's own generator, and leaves that token as the
only finite score, so greedy's argmax picks it. Row generators are seeded from
`(seed, sample id, sample index)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from erv.errors import ConfigError
from erv.model.generation import make_warpers


def row_seed(seed: int, sample_id: str, sample_index: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{sample_id}\0{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RowSampler(LogitsProcessor):
    """Per-row seeded sampling as the last logits processor (module doc)."""

    def __init__(self, params: dict[str, Any], seeds: Sequence[int]) -> None:
        self.warpers = make_warpers(params)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ConfigError(f"RowSampler has {len(self.generators)} row generators for {scores.shape[0]} rows")
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.cumsum(dim=-1)
        draws = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])
        draws = draws.to(device=cdf.device, dtype=cdf.dtype) * cdf[:, -1]  # in [0, total mass)
        tokens = torch.searchsorted(cdf, draws[:, None], right=True).clamp_(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tokens, 0.0)
        return out
