"""The format and answer rewards (paper §4: R_format, R_answer)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from erv.data.completions import extract_answer, has_strict_format
from erv.data.emotions import Taxonomy, get_taxonomy, normalize_label
from erv.rewards.common import completion_texts, gold_labels, report_invalid, resolve_taxonomies


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1 if the whole completion is `<think>…</think> <answer>…</answer>` (paper regex), else 0."""
    texts = completion_texts(completions)
    report_invalid("format_reward", texts, kwargs.get("log_metric"))
    return [1.0 if t is not None and has_strict_format(t) else 0.0 for t in texts]


def accuracy_reward(
    completions: Sequence[Any],
    solution: Sequence[object],
    *,
    default_taxonomy: str | Taxonomy | None = None,
    **kwargs: Any,
) -> list[float]:
    """1 if the normalised `<answer>` equals the gold label, else 0 (no answer / unknown = wrong).

    The taxonomy comes from a `taxonomy`/`dataset` column, else `default_taxonomy` (bind it
    with :func:`make_accuracy_reward`). An unknown *gold* label raises, naming the sample.
    """
    texts = completion_texts(completions)
    report_invalid("accuracy_reward", texts, kwargs.get("log_metric"))
    taxonomies = resolve_taxonomies(len(texts), kwargs, default_taxonomy, "accuracy_reward")
    golds = gold_labels(solution, taxonomies, "accuracy_reward")
    rewards = []
    for text, tax, gold in zip(texts, taxonomies, golds, strict=True):
        answer = extract_answer(text) if text is not None else None
        rewards.append(1.0 if answer is not None and normalize_label(answer, tax) == gold else 0.0)
    return rewards


def make_accuracy_reward(taxonomy: str | Taxonomy) -> Callable[..., list[float]]:
    """`accuracy_reward` with a recipe-level taxonomy (a dataset column still wins per sample)."""
    get_taxonomy(taxonomy)  # fail at construction on a bad name
    reward = functools.partial(accuracy_reward, default_taxonomy=taxonomy)
    functools.update_wrapper(reward, accuracy_reward)
    return reward
