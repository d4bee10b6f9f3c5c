"""What every reward needs: completion texts, gold labels and per-sample taxonomies.

Every reward follows TRL's reward-function convention: it is called once per step with all
local completions as `f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`
(plus TRL's `trainer_state`, `log_extra`, `log_metric`) and returns one float per completion
(None = "not applicable", which TRL leaves out of that function's sum). Completions are
strings or chat lists (`[{"role": "assistant", "content": ...}]`).

A completion that is not text, or is empty, earns 0 and is counted and logged; it never raises
inside the trainer. Bad *data* (a gold label the taxonomy does not know, a taxonomy name that
does not exist) raises, naming the sample, because training on it would silently be wrong.

The taxonomy of a sample comes from a dataset column (`taxonomy` or `dataset`) or from the
recipe (`make_accuracy_reward(taxonomy=...)`, `ExplanationReward(..., taxonomy=...)`); it is
never guessed from the video path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from erv.data.completions import completion_text, extract_answer
from erv.data.emotions import Taxonomy, get_taxonomy, require_label
from erv.errors import ConfigError, TaxonomyError

logger = logging.getLogger("erv.rewards")

TAXONOMY_COLUMNS = ("taxonomy", "dataset")


def completion_texts(completions: Sequence[Any]) -> list[str | None]:
    """The text of each completion, or None for one that is not text or is empty."""
    out: list[str | None] = []
    for completion in completions:
        try:
            text = completion_text(completion)
        except TypeError:
            out.append(None)
            continue
        out.append(text if text.strip() else None)
    return out


def report_invalid(reward_name: str, texts: Sequence[str | None], log_metric: Callable | None) -> int:
    invalid = sum(t is None for t in texts)
    if invalid:
        logger.warning(
            "%s: %d of %d completions are empty or not text; they get reward 0", reward_name, invalid, len(texts)
        )
    if callable(log_metric):
        log_metric(f"{reward_name}/invalid_completions", float(invalid))
    return invalid


def gold_text(solution: object) -> object:
    """The gold label text: the content of `<answer>…</answer>` if present, else the value."""
    if isinstance(solution, str):
        answer = extract_answer(solution)
        return answer if answer is not None else solution.strip()
    return solution


def resolve_taxonomies(n: int, kwargs: dict[str, Any], default: str | Taxonomy | None, who: str) -> list[Taxonomy]:
    """Per-sample taxonomies: a `taxonomy`/`dataset` column (list) or value, else `default`."""
    for key in TAXONOMY_COLUMNS:
        value = kwargs.get(key)
        if value is None:
            continue
        values = [value] * n if isinstance(value, (str, Taxonomy)) else list(value)
        if len(values) != n:
            raise ConfigError(f"{who}: column {key!r} has {len(values)} values for {n} completions")
        out = []
        for i, name in enumerate(values):
            if name is None or name == "":
                if default is None:
                    raise ConfigError(f"{who}: sample {i} has an empty {key!r} and no default taxonomy is set")
                out.append(get_taxonomy(default))
                continue
            try:
                out.append(get_taxonomy(name))
            except TaxonomyError as exc:
                raise TaxonomyError(f"{who}: sample {i}: column {key!r}: {exc}") from None
        return out
    if default is None:
        raise ConfigError(
            f"{who}: no taxonomy: add a 'taxonomy' or 'dataset' column to the dataset or set the "
            f"recipe's taxonomy (e.g. make_accuracy_reward(taxonomy='MAFW'))"
        )
    return [get_taxonomy(default)] * n


def gold_labels(solution: Sequence[object] | None, taxonomies: Sequence[Taxonomy], who: str) -> list[str]:
    if solution is None:
        raise ConfigError(f"{who}: needs the gold label column 'solution'")
    solution = list(solution)
    if len(solution) != len(taxonomies):
        raise ConfigError(f"{who}: {len(solution)} solutions for {len(taxonomies)} completions")
    return [
        require_label(gold_text(sol), tax, where=f"{who}: sample {i}")
        for i, (sol, tax) in enumerate(zip(solution, taxonomies, strict=True))
    ]
