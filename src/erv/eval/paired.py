"""Two systems on the same samples: metric differences with paired-bootstrap intervals.

Two models scored on the same test clips are not two independent samples: a clip that is hard
for one is usually hard for the other. Comparing their separate intervals therefore
overstates the uncertainty of the difference (and two overlapping intervals say little). The
paired bootstrap resamples *clips*, scores both systems on the same resample and keeps the
difference; its percentile interval is the interval of the difference.

As in :mod:`erv.eval.metrics`, every metric of one system is a function of how many samples
fall into each cell of (gold class) x [p = g] x [judged] x [e = g] x [e = p]. For a pair the
cells are (gold class) x (system A's four indicators) x (system B's four indicators), so a
resample of n clips with replacement is a multinomial draw of n over those 256 K cells; each
system's cell counts are the draw's margins, and the metrics come from the same vectorised
code that `erv evaluate` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from erv.data.emotions import Taxonomy, get_taxonomy
from erv.data.ids import canonical_id
from erv.data.records import read_judgments, read_predictions
from erv.errors import RecordError
from erv.eval.evaluate import predicted_label
from erv.eval.metrics import COHERENCE_METRICS, RECOGNITION_METRICS, Outcomes, _clean, _metrics_from_cells, encode
from erv.io.jsonl import PathLike
from erv.judge.run import judged_emotion

PAIRED_METRICS = RECOGNITION_METRICS + COHERENCE_METRICS
_CODES = 16  # (correct, judged, e = g, e = p) of one system


def _codes(o: Outcomes) -> np.ndarray:
    correct = (o.pred == o.gold).astype(np.int64)
    judged = o.judged.astype(np.int64)
    eg = (o.judged & (o.explanation == o.gold)).astype(np.int64)
    ep = (o.judged & (o.explanation == o.pred)).astype(np.int64)
    return ((correct * 2 + judged) * 2 + eg) * 2 + ep


def _joint_cells(a: Outcomes, b: Outcomes) -> np.ndarray:
    """Counts per joint cell (gold, A's code, B's code), shape (K, 16, 16)."""
    k = len(a.taxonomy)
    index = (a.gold * _CODES + _codes(a)) * _CODES + _codes(b)
    return np.bincount(index, minlength=k * _CODES * _CODES).reshape(k, _CODES, _CODES)


def _system_cells(joint: np.ndarray, system: str) -> np.ndarray:
    """One system's (..., K, 2, 2, 2, 2) cells from (..., K, 16, 16) joint counts."""
    margin = joint.sum(axis=-1) if system == "a" else joint.sum(axis=-2)
    return margin.reshape(margin.shape[:-1] + (2, 2, 2, 2))


def check_paired(a: Outcomes, b: Outcomes) -> None:
    """Both systems must score the same samples in the same order (same gold labels)."""
    if a.taxonomy.name != b.taxonomy.name:
        raise ValueError(f"paired outcomes of two taxonomies: {a.taxonomy.name} and {b.taxonomy.name}")
    if a.n != b.n or not np.array_equal(a.gold, b.gold):
        raise ValueError("paired outcomes must hold the same samples in the same order (the gold labels differ)")


def paired_differences(
    a: Outcomes,
    b: Outcomes,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = PAIRED_METRICS,
) -> dict[str, dict[str, Any]]:
    """For each metric: A's value, B's value, the difference B - A and its paired-bootstrap interval.

    `{"a": ..., "b": ..., "difference": ..., "ci": [low, high] | None}`; values are fractions
    (None where a denominator is empty, e.g. EEA with nothing judged). Resamples in which a
    system has no value for a metric are left out of that metric's interval.
    """
    check_paired(a, b)
    joint = _joint_cells(a, b)
    observed_a = _metrics_from_cells(_system_cells(joint, "a"))
    observed_b = _metrics_from_cells(_system_cells(joint, "b"))
    intervals: dict[str, list[float] | None] = {name: None for name in metrics}
    n = a.n
    if n_resamples > 0 and n > 0:
        flat = joint.reshape(-1)
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(n, flat / n, size=n_resamples).reshape((n_resamples,) + joint.shape)
        values_a = _metrics_from_cells(_system_cells(draws, "a"))
        values_b = _metrics_from_cells(_system_cells(draws, "b"))
        alpha = (1.0 - level) / 2.0
        for name in metrics:
            delta = values_b[name] - values_a[name]
            finite = delta[~np.isnan(delta)]
            if finite.size:
                low, high = np.quantile(finite, [alpha, 1.0 - alpha])
                intervals[name] = [float(low), float(high)]
    out: dict[str, dict[str, Any]] = {}
    for name in metrics:
        value_a, value_b = _clean(observed_a[name]), _clean(observed_b[name])
        out[name] = {
            "a": value_a,
            "b": value_b,
            "difference": None if value_a is None or value_b is None else value_b - value_a,
            "ci": intervals[name],
        }
    return out


def _file_outcomes(
    predictions_path: PathLike, judgments_path: PathLike | None, taxonomy: Taxonomy
) -> tuple[list[str], dict[str, tuple[str, str, str | None]]]:
    """Canonical ids in file order, and `{id: (gold, predicted label, explanation label or None)}`
    of the predictions that did not fail at inference."""
    predictions = read_predictions(predictions_path, taxonomy)
    judgments = read_judgments(judgments_path, taxonomy) if judgments_path is not None else {}
    order = [canonical_id(pred.id) for pred in predictions]
    out: dict[str, tuple[str, str, str | None]] = {}
    for pred, key in zip(predictions, order, strict=True):
        if pred.failed:
            continue  # no response: left out of the pairs (counted as unpaired)
        emotion = judged_emotion(pred, judgments.get(key), taxonomy, str(predictions_path))
        out[key] = (pred.gold, predicted_label(pred.response, taxonomy), emotion)
    return order, out


def compare_files(
    predictions_a: PathLike,
    predictions_b: PathLike,
    dataset: str,
    *,
    judgments_a: PathLike | None = None,
    judgments_b: PathLike | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Paired differences B - A of two prediction files over the clips both predicted.

    The files must cover the same clips (by id) with the same gold labels; a clip that failed
    at inference in either file is left out of the pairs and counted (`unpaired`). Coherence
    metrics need both judgment files.
    """
    taxonomy = get_taxonomy(dataset)
    order, scored_a = _file_outcomes(predictions_a, judgments_a, taxonomy)
    order_b, scored_b = _file_outcomes(predictions_b, judgments_b, taxonomy)
    ids_a, ids_b = set(order), set(order_b)
    if ids_a != ids_b:
        only = sorted(ids_a ^ ids_b, key=lambda s: (len(s), s))
        raise RecordError(
            f"{predictions_a} and {predictions_b} do not cover the same clips ({len(only)} in only one, e.g. "
            f"{', '.join(only[:5])}): a paired comparison needs the same test clips"
        )
    keys = [key for key in order if key in scored_a and key in scored_b]
    for key in keys:
        if scored_a[key][0] != scored_b[key][0]:
            raise RecordError(
                f"clip {key}: gold {scored_a[key][0]!r} in {predictions_a} but {scored_b[key][0]!r} in {predictions_b}"
            )
    if not keys:
        raise RecordError(f"{predictions_a} and {predictions_b}: no clip predicted by both")
    with_coherence = judgments_a is not None and judgments_b is not None

    def outcomes(scored: dict[str, tuple[str, str, str | None]]) -> Outcomes:
        rows = [scored[key] for key in keys]
        explanation = [r[2] for r in rows] if with_coherence else None
        return encode([r[0] for r in rows], [r[1] for r in rows], taxonomy, explanation)

    metrics = PAIRED_METRICS if with_coherence else RECOGNITION_METRICS
    return {
        "dataset": taxonomy.name,
        "a": str(predictions_a),
        "b": str(predictions_b),
        "n": len(keys),
        "unpaired": len(ids_a) - len(keys),
        "differences": paired_differences(
            outcomes(scored_a), outcomes(scored_b), n_resamples=n_resamples, seed=seed, level=level, metrics=metrics
        ),
        "bootstrap": {"resamples": n_resamples, "seed": seed, "level": level, "paired": True},
    }
