"""Multi-label evaluation of a verifier: per-class P/R/F1, micro/macro F1, a threshold sweep.

The decision rule is the reward's (labels over tau, optionally at least the top one and at
most the top k, decided over all head columns), so the sweep tells which tau makes the
verifier's label sets best for Algorithm 1 on held-out text. Macro-F1 averages the classes
that occur in the gold labels (a class without examples has no recall to average).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from erv.data.emotions import Taxonomy
from erv.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_SWEEP: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Scores of boolean `(n, len(labels))` predictions against boolean gold."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    if y_true.shape != y_pred.shape or y_true.shape[1:] != (len(labels),):
        raise ValueError(f"shapes differ: gold {y_true.shape}, predicted {y_pred.shape}, {len(labels)} labels")
    tp = (y_true & y_pred).sum(axis=0)
    fp = (~y_true & y_pred).sum(axis=0)
    fn = (y_true & ~y_pred).sum(axis=0)
    support = y_true.sum(axis=0)

    def ratio(a: float, b: float) -> float:
        return float(a) / float(b) if b else 0.0

    per_class = {}
    f1s = []
    for j, label in enumerate(labels):
        p, r = ratio(tp[j], tp[j] + fp[j]), ratio(tp[j], tp[j] + fn[j])
        f1 = ratio(2 * p * r, p + r)
        per_class[label] = {
            "precision": p,
            "recall": r,
            "f1": f1,
            "support": int(support[j]),
            "predicted": int(tp[j] + fp[j]),
        }
        if support[j] > 0:
            f1s.append(f1)
    micro_p = ratio(tp.sum(), tp.sum() + fp.sum())
    micro_r = ratio(tp.sum(), tp.sum() + fn.sum())
    return {
        "n": int(y_true.shape[0]),
        "per_class": per_class,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": ratio(2 * micro_p * micro_r, micro_p + micro_r),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "exact_match": float((y_true == y_pred).all(axis=1).mean()) if y_true.shape[0] else 0.0,
    }


def decide(probs: Any, threshold: float, top_k: int | None, at_least_one: bool) -> np.ndarray:
    """The reward's label-set rule on `(n, head)` probabilities, as a numpy bool array."""
    import torch

    from erv.verifier.predict import select_label_sets

    tensor = probs if isinstance(probs, torch.Tensor) else torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    return select_label_sets(tensor, threshold, top_k, at_least_one).numpy()


@dataclass
class EvalSettings:
    threshold: float = 0.5
    top_k: int | None = None
    at_least_one: bool = False
    sweep: Sequence[float] = field(default_factory=lambda: DEFAULT_SWEEP)


def evaluate_probabilities(
    head_probs: Any, gold: Sequence[Sequence[str]], columns: dict[str, int], settings: EvalSettings
) -> dict[str, Any]:
    """Scores from head probabilities, gold label lists and the taxonomy→column map."""
    labels = tuple(columns)
    index = {label: j for j, label in enumerate(labels)}
    y_true = np.zeros((len(gold), len(labels)), dtype=bool)
    unscorable = 0
    for i, example_labels in enumerate(gold):
        for label in example_labels:
            if label in index:
                y_true[i, index[label]] = True
            else:
                unscorable += 1
    column_list = [columns[label] for label in labels]

    def at(threshold: float) -> dict[str, Any]:
        selected = decide(head_probs, threshold, settings.top_k, settings.at_least_one)
        return multilabel_report(y_true, selected[:, column_list], labels)

    report = at(settings.threshold)
    sweep = []
    for tau in settings.sweep:
        scores = at(float(tau))
        sweep.append({"threshold": float(tau), "micro_f1": scores["micro_f1"], "macro_f1": scores["macro_f1"]})
    best = (
        max(sweep, key=lambda row: (row["macro_f1"], -abs(row["threshold"] - settings.threshold))) if sweep else None
    )
    report.update(
        {
            "threshold": settings.threshold,
            "top_k": settings.top_k,
            "at_least_one": settings.at_least_one,
            "unscorable_gold_labels": unscorable,
            "sweep": sweep,
            "best_threshold": best["threshold"] if best else None,
            "best_macro_f1": best["macro_f1"] if best else None,
        }
    )
    return report


def evaluate_verifier(
    verifier: Any,
    examples: Sequence[Any],
    taxonomy: str | Taxonomy | None = None,
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """Evaluate a :class:`~erv.verifier.model.Verifier` on text examples of `taxonomy`."""
    if not examples:
        raise ConfigError("no examples to evaluate")
    settings = settings or EvalSettings()
    tax = verifier.resolve_taxonomy(taxonomy)
    columns = verifier.columns(tax)
    probs = verifier.predict_proba([ex.text for ex in examples])
    report = evaluate_probabilities(probs, [ex.labels for ex in examples], columns, settings)
    report = {"verifier": verifier.name, "taxonomy": tax.name, "head": verifier.layout.kind, **report}
    if report["unscorable_gold_labels"]:
        missing = sorted({lab for ex in examples for lab in ex.labels if lab not in columns})
        logger.warning(
            "the verifier has no output for gold label(s) %s (%d occurrences); they are left out of "
            "the scores and reported as unscorable_gold_labels",
            ", ".join(missing),
            report["unscorable_gold_labels"],
        )
    return report


def format_report(report: dict[str, Any]) -> str:
    """A small text table for the terminal."""
    lines = [f"{'label':<16}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}"]
    for label, row in report["per_class"].items():
        lines.append(f"{label:<16}{row['precision']:>7.3f}{row['recall']:>7.3f}{row['f1']:>7.3f}{row['support']:>9d}")
    lines.append(
        f"micro-F1 {report['micro_f1']:.4f}  macro-F1 {report['macro_f1']:.4f}  at tau {report['threshold']}"
        f"; best tau {report['best_threshold']} (macro-F1 {report['best_macro_f1']:.4f})"
    )
    return "\n".join(lines)
