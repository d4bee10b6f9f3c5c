"""Recognition and coherence metrics with bootstrap confidence intervals (docs/reference.md §5).

Per sample: gold g, predicted answer p (a label or unknown) and, when judged, the
explanation emotion e.
- WAR = mean[p = g] over all samples (unknown answers are wrong).
- UAR = mean over the classes that occur among the gold labels of their recall.
- EEA = mean[e = g], EPC = mean[e = p], FCR = mean[e = p = g], over judged samples only;
  the unjudged are excluded and counted. fcr_given_correct = FCR / WAR over the judged
  samples = #(e = p = g) / #(p = g) among them.

Every metric is a function of how many samples fall into each cell of
(gold class) × [p = g] × [judged] × [e = g] × [e = p]. A bootstrap resample of n samples
with replacement is therefore exactly a multinomial draw of n over those cells with the
observed frequencies, which makes 1,000 resamples of 100,000 samples cost milliseconds
instead of 10^8 index look-ups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy
from erv.errors import TaxonomyError

RECOGNITION_METRICS = ("war", "uar")
COHERENCE_METRICS = ("eea", "epc", "fcr", "fcr_given_correct")


@dataclass(frozen=True)
class Outcomes:
    """Per-sample outcomes encoded as small integers (see module doc)."""

    taxonomy: Taxonomy
    gold: np.ndarray  # (n,) class index
    pred: np.ndarray  # (n,) class index, len(taxonomy) = unknown
    judged: np.ndarray  # (n,) bool
    explanation: np.ndarray  # (n,) class index, -1 where unjudged

    @property
    def n(self) -> int:
        return int(self.gold.shape[0])


def encode(
    gold: Sequence[str], pred: Sequence[str], taxonomy: str | Taxonomy, explanation: Sequence[str | None] | None = None
) -> Outcomes:
    """Turn label strings into :class:`Outcomes`.

    `gold` must hold canonical labels of `taxonomy`; `pred` canonical labels or "unknown";
    `explanation` canonical labels or None (unjudged). Anything else is a ValueError: callers
    normalise first, so a stray string here is a bug, not data.
    """
    tax = get_taxonomy(taxonomy)
    index = {label: i for i, label in enumerate(tax.labels)}
    k = len(tax.labels)
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    try:
        g = np.fromiter((index[x] for x in gold), dtype=np.int64, count=len(gold))
    except KeyError as exc:
        raise TaxonomyError(f"gold label {exc.args[0]!r} is not {tax.a_label}") from None
    pred_index = dict(index)
    pred_index[UNKNOWN] = k
    try:
        p = np.fromiter((pred_index[x] for x in pred), dtype=np.int64, count=len(pred))
    except KeyError as exc:
        raise TaxonomyError(f"predicted label {exc.args[0]!r} is neither {tax.a_label} nor 'unknown'") from None
    if explanation is None:
        e = np.full(len(gold), -1, dtype=np.int64)
    else:
        if len(explanation) != len(gold):
            raise ValueError("explanation and gold differ in length")
        try:
            e = np.fromiter((-1 if x is None else index[x] for x in explanation), dtype=np.int64, count=len(gold))
        except KeyError as exc:
            raise TaxonomyError(f"explanation label {exc.args[0]!r} is not {tax.a_label}") from None
    return Outcomes(tax, g, p, e >= 0, e)


def _cell_counts(o: Outcomes) -> np.ndarray:
    """Counts per cell (class, correct, judged, e=g, e=p), shape (K, 2, 2, 2, 2)."""
    k = len(o.taxonomy)
    correct = (o.pred == o.gold).astype(np.int64)
    judged = o.judged.astype(np.int64)
    eg = (o.judged & (o.explanation == o.gold)).astype(np.int64)
    ep = (o.judged & (o.explanation == o.pred)).astype(np.int64)
    code = (((o.gold * 2 + correct) * 2 + judged) * 2 + eg) * 2 + ep
    return np.bincount(code, minlength=k * 16).reshape(k, 2, 2, 2, 2)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _metrics_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised metrics over a leading batch axis: cells has shape (..., K, 2, 2, 2, 2)."""
    per_class_total = cells.sum(axis=(-4, -3, -2, -1))
    per_class_correct = cells[..., 1, :, :, :].sum(axis=(-3, -2, -1))
    n = per_class_total.sum(axis=-1)
    recall = _safe_div(per_class_correct, per_class_total)
    present = per_class_total > 0
    with np.errstate(invalid="ignore"):
        uar = np.where(present, np.nan_to_num(recall), 0.0).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    uar = np.where(present.any(axis=-1), uar, np.nan)
    judged = cells[..., :, :, 1, :, :]  # (..., K, correct, e=g, e=p)
    m = judged.sum(axis=(-4, -3, -2, -1))
    eg = judged[..., :, :, 1, :].sum(axis=(-3, -2, -1))
    ep = judged[..., :, :, :, 1].sum(axis=(-3, -2, -1))
    # e = p = g  <=>  p = g and e = g
    full = judged[..., :, 1, 1, :].sum(axis=(-2, -1))
    correct_judged = judged[..., :, 1, :, :].sum(axis=(-3, -2, -1))
    return {
        "n": n,
        "war": _safe_div(per_class_correct.sum(axis=-1), n),
        "uar": uar,
        "recall": recall,
        "judged": m,
        "eea": _safe_div(eg, m),
        "epc": _safe_div(ep, m),
        "fcr": _safe_div(full, m),
        "fcr_given_correct": _safe_div(full, correct_judged),
    }


def _clean(value: Any) -> float | None:
    """A JSON-friendly float: NaN (an empty denominator) becomes None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def bootstrap_intervals(
    o: Outcomes,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = RECOGNITION_METRICS + COHERENCE_METRICS,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals, resampling samples with replacement (seeded)."""
    return _bootstrap_cells(_cell_counts(o), n_resamples=n_resamples, seed=seed, level=level, metrics=metrics)


def _bootstrap_cells(
    cells: np.ndarray, *, n_resamples: int, seed: int, level: float, metrics: Sequence[str]
) -> dict[str, list[float] | None]:
    n = int(cells.sum())
    if n_resamples <= 0 or n == 0:
        return {}
    flat = cells.reshape(-1)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, flat / n, size=n_resamples).reshape((n_resamples,) + cells.shape)
    values = _metrics_from_cells(draws)
    alpha = (1.0 - level) / 2.0
    out: dict[str, list[float] | None] = {}
    for name in metrics:
        column = values[name]
        finite = column[~np.isnan(column)]
        if finite.size == 0:
            out[name] = None
            continue
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        out[name] = [float(low), float(high)]
    return out


def compute_metrics(
    o: Outcomes, *, with_coherence: bool, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """The `erv evaluate --json` object for one prediction set (docs/evaluation.md)."""
    tax = o.taxonomy
    cells = _cell_counts(o)
    values = _metrics_from_cells(cells)
    k = len(tax)
    confusion_counts = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(confusion_counts, (o.gold, o.pred), 1)
    columns = list(tax.labels) + [UNKNOWN]
    result: dict[str, Any] = {
        "dataset": tax.name,
        "n": o.n,
        "war": _clean(values["war"]),
        "uar": _clean(values["uar"]),
        "unknown": int((o.pred == k).sum()),
        "per_class_recall": {label: _clean(values["recall"][i]) for i, label in enumerate(tax.labels)},
        "per_class_support": {label: int(confusion_counts[i].sum()) for i, label in enumerate(tax.labels)},
        "confusion": {
            tax.labels[i]: {columns[j]: int(confusion_counts[i, j]) for j in range(k + 1)} for i in range(k)
        },
    }
    metric_names: tuple[str, ...] = RECOGNITION_METRICS
    if with_coherence:
        result.update(
            {
                "judged": int(values["judged"]),
                "unjudged": o.n - int(values["judged"]),
                "eea": _clean(values["eea"]),
                "epc": _clean(values["epc"]),
                "fcr": _clean(values["fcr"]),
                "fcr_given_correct": _clean(values["fcr_given_correct"]),
            }
        )
        metric_names = RECOGNITION_METRICS + COHERENCE_METRICS
    result["ci95" if abs(level - 0.95) < 1e-9 else f"ci{round(level * 100)}"] = _bootstrap_cells(
        cells, n_resamples=n_resamples, seed=seed, level=level, metrics=metric_names
    )
    result["bootstrap"] = {"resamples": n_resamples, "seed": seed, "level": level}
    return result


def aggregate_folds(fold_results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (ddof = 1) of each scalar metric across folds.

    A fold without a value for a metric (EEA of a fold with no judged sample) is left out of
    that metric's mean; `folds` says how many folds each mean covers, so that a "mean" of one
    fold is never mistaken for a mean of all.
    """
    names = [m for m in RECOGNITION_METRICS + COHERENCE_METRICS if any(r.get(m) is not None for r in fold_results)]
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    folds: dict[str, int] = {}
    for name in names:
        vals = np.array([r[name] for r in fold_results if r.get(name) is not None], dtype=np.float64)
        mean[name] = float(vals.mean()) if vals.size else None
        std[name] = float(vals.std(ddof=1)) if vals.size > 1 else None
        folds[name] = int(vals.size)
    return {"mean": mean, "std": std, "folds": folds}
