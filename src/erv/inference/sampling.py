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
from transformers.generation import logits_process as lp

from erv.errors import ConfigError


def row_seed(seed: int, sample_id: str, sample_index: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{sample_id}\0{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_warpers(params: dict[str, Any]) -> list[Any]:
    """transformers' sampling warpers for the effective fields, in its order (min_tokens_to_keep 1)."""
    warpers: list[Any] = []
    temperature = params.get("temperature")
    if temperature is not None and temperature != 1.0:
        warpers.append(lp.TemperatureLogitsWarper(temperature))
    if params.get("top_h") is not None:
        top_h = getattr(lp, "TopHLogitsWarper", None)
        if top_h is None:
            raise ConfigError("the checkpoint's generation_config sets top_h, which this transformers cannot apply")
        warpers.append(top_h(top_h=params["top_h"]))
    top_k = params.get("top_k")
    if top_k is not None and top_k != 0:
        warpers.append(lp.TopKLogitsWarper(top_k=top_k))
    top_p = params.get("top_p")
    if top_p is not None and top_p < 1.0:
        warpers.append(lp.TopPLogitsWarper(top_p=top_p))
    if params.get("min_p") is not None:
        warpers.append(lp.MinPLogitsWarper(min_p=params["min_p"]))
    typical = params.get("typical_p")
    if typical is not None and typical < 1.0:
        warpers.append(lp.TypicalLogitsWarper(mass=typical))
    epsilon = params.get("epsilon_cutoff")
    if epsilon is not None and 0.0 < epsilon < 1.0:
        warpers.append(lp.EpsilonLogitsWarper(epsilon=epsilon))
    eta = params.get("eta_cutoff")
    if eta is not None and 0.0 < eta < 1.0:
        warpers.append(lp.EtaLogitsWarper(epsilon=eta))
    return warpers


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
