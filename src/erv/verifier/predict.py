"""The verifier's hot path: many sentences in, one probability row per sentence out.

GRPO scores every sentence of every completion of a step (16 prompts × 16 generations × 4–8
sentences). The released code tokenises them all into one batch padded to the longest and
repeats every sentence the policy wrote twice. Here:

- identical inputs are scored once (at low temperature generations of one prompt share many
  sentences), and an optional LRU cache carries scores across calls (the verifier is frozen);
- tokenisation is one call of the fast tokenizer without padding;
- inputs are sorted by token length and cut into micro-batches bounded by a row count and a
  padded-token budget, so almost no compute is spent on padding and memory stays bounded;
- the forward runs under `torch.inference_mode`, probabilities come back as float32 on CPU.

`select_label_sets` is the paper's per-sentence decision (labels over tau, at least the top
one, at most the top k), shared by the reward and the evaluation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ScoringStats:
    """What one `score_texts` call did; read by the reward's logging."""

    inputs: int = 0
    unique: int = 0
    cached: int = 0
    batches: int = 0
    at_max_length: int = 0  # inputs whose token count reached max_length (truncated or exactly at it)
    real_tokens: int = 0
    padded_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def plan_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None) -> list[list[int]]:
    """Length-sorted micro-batches (longest first, so memory errors show on the first batch).

    A batch holds at most `batch_size` rows and, padded to its longest row, at most
    `max_batch_tokens` tokens (a single row longer than the budget still gets its own batch).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and (
            len(current) >= batch_size
            or (max_batch_tokens is not None and (len(current) + 1) * width > max_batch_tokens)
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids` and `attention_mask` for a list of token id lists."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def forward_probabilities(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    batches: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device,
    num_labels: int,
) -> torch.Tensor:
    """Sigmoid of the classifier logits for every row, in the original row order."""
    out = torch.empty((len(token_ids), num_labels), dtype=torch.float32)
    with torch.inference_mode():
        for batch in batches:
            ids, mask = pad_batch([token_ids[i] for i in batch], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out[torch.as_tensor(batch, dtype=torch.long)] = torch.sigmoid(logits.float()).cpu()
    return out


class ProbabilityCache:
    """LRU map text -> probability row; valid because the verifier does not change while used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, text: str) -> torch.Tensor | None:
        row = self._rows.get(text)
        if row is not None:
            self._rows.move_to_end(text)
        return row

    def put_many(self, texts: Sequence[str], rows: torch.Tensor) -> None:
        if self.size <= 0:
            return
        for text, row in zip(texts, rows, strict=True):
            self._rows[text] = row.clone()
            self._rows.move_to_end(text)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()


def score_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    device: torch.device,
    num_labels: int,
    max_length: int,
    batch_size: int,
    max_batch_tokens: int | None,
    cache: ProbabilityCache | None = None,
) -> tuple[torch.Tensor, ScoringStats]:
    """Probabilities `(len(texts), num_labels)` with dedup, cache, length-sorted micro-batches."""
    stats = ScoringStats(inputs=len(texts))
    if not texts:
        return torch.empty((0, num_labels), dtype=torch.float32), stats
    position: dict[str, int] = {}
    inverse = [position.setdefault(text, len(position)) for text in texts]
    unique = list(position)
    stats.unique = len(unique)
    unique_probs = torch.empty((len(unique), num_labels), dtype=torch.float32)
    todo: list[int] = []
    if cache is not None and cache.size > 0:
        for i, text in enumerate(unique):
            row = cache.get(text)
            if row is None:
                todo.append(i)
            else:
                unique_probs[i] = row
        stats.cached = len(unique) - len(todo)
    else:
        todo = list(range(len(unique)))
    if todo:
        todo_texts = [unique[i] for i in todo]
        encoded = tokenizer(
            todo_texts,
            add_special_tokens=True,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        lengths = [len(ids) for ids in encoded]
        stats.at_max_length = sum(n >= max_length for n in lengths)
        batches = plan_batches(lengths, batch_size, max_batch_tokens)
        stats.batches = len(batches)
        stats.real_tokens = sum(lengths)
        stats.padded_tokens = sum(len(b) * lengths[b[0]] for b in batches)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        probs = forward_probabilities(model, encoded, batches, pad_id, device, num_labels)
        unique_probs[torch.as_tensor(todo, dtype=torch.long)] = probs
        if cache is not None:
            cache.put_many(todo_texts, probs)
    return unique_probs[torch.as_tensor(inverse, dtype=torch.long)], stats


def select_label_sets(
    probs: torch.Tensor, threshold: float, top_k: int | None = 2, at_least_one: bool = True
) -> torch.Tensor:
    """Boolean `(n, labels)`: labels with probability > `threshold`; if none, the top one
    (`at_least_one`); if more than `top_k`, the `top_k` most probable (Algorithm 1)."""
    if probs.ndim != 2:
        raise ValueError(f"expected (sentences, labels) probabilities, got shape {tuple(probs.shape)}")
    selected = probs > threshold
    if probs.shape[0] == 0:
        return selected
    if top_k is not None:
        if top_k < 1:
            raise ValueError("top_k must be >= 1 or None")
        over = (selected.sum(dim=1) > top_k).nonzero(as_tuple=True)[0]
        if over.numel():
            keep = torch.zeros((over.numel(), probs.shape[1]), dtype=torch.bool, device=probs.device)
            keep.scatter_(1, probs[over].topk(min(top_k, probs.shape[1]), dim=1).indices, True)
            selected[over] = keep
    if at_least_one:
        empty = (~selected.any(dim=1)).nonzero(as_tuple=True)[0]
        if empty.numel():
            selected[empty, probs[empty].argmax(dim=1)] = True
    return selected
