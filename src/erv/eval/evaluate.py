"""`erv evaluate` (and `python eval_score.py`): score predictions, optionally with judgments.

Inputs are checked before anything is computed: every prediction's gold label must be a label
of the dataset, ids must be unique, and when a label file is given, predictions and labels
must cover the same samples with the same gold labels. Missing samples fail the run unless
`--allow-missing` is given, in which case they are listed and left out (the printed `n`
says how many were scored). Judgments without a matching prediction are treated the same
way; predictions without a usable judgment are *unjudged*: excluded from EEA/EPC/FCR and
counted. Predictions that inference recorded as failed (`error` set, no response: a missing
or unreadable video) are left out of every metric and counted (`failed`, `failed_ids`);
`--failed-as-wrong` scores them as wrong answers instead.

Several prediction files (one per fold) are scored separately, then summarised by their mean
and sample standard deviation. `--judgments` then takes one file per prediction file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.completions import extract_answer
from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.data.labels import canonical_id, read_label_file
from erv.data.records import read_judgments, read_predictions
from erv.errors import ConfigError, RecordError
from erv.eval.metrics import aggregate_folds, compute_metrics, encode
from erv.io.jsonl import write_json
from erv.io.outputs import check_output_dir, check_output_file
from erv.judge.run import judged_emotion


@dataclass
class Problems:
    """Coverage problems found while matching files; fatal unless allowed."""

    predictions_without_label: list[str] = field(default_factory=list)
    labels_without_prediction: list[str] = field(default_factory=list)
    judgments_without_prediction: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return bool(
            self.predictions_without_label or self.labels_without_prediction or self.judgments_without_prediction
        )

    def lines(self, where: str) -> list[str]:
        out = []
        for name, ids in (
            ("predictions with no label", self.predictions_without_label),
            ("labelled samples with no prediction", self.labels_without_prediction),
            ("judgments with no prediction", self.judgments_without_prediction),
        ):
            if ids:
                shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
                out.append(f"{where}: {len(ids)} {name}: {shown}")
        return out

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "predictions_without_label": self.predictions_without_label,
            "labels_without_prediction": self.labels_without_prediction,
            "judgments_without_prediction": self.judgments_without_prediction,
        }


def predicted_label(response: str, taxonomy: Taxonomy) -> str:
    """The normalised content of the first complete <answer>…</answer>, or "unknown"."""
    answer = extract_answer(response)
    return UNKNOWN if answer is None else normalize_label(answer, taxonomy)


def evaluate_file(
    predictions_path: str,
    taxonomy: Taxonomy,
    *,
    judgments_path: str | None = None,
    labels_path: str | None = None,
    allow_missing: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    failed_as_wrong: bool = False,
) -> dict[str, Any]:
    """Score one predictions file; returns the metrics object (docs/evaluation.md) plus bookkeeping."""
    predictions = read_predictions(predictions_path, taxonomy)
    problems = Problems()
    if labels_path is not None:
        labels = read_label_file(labels_path, taxonomy)
        by_key = {canonical_id(p.id): p for p in predictions}  # one per sample: read_predictions refuses twins
        for key, pred in by_key.items():
            if key not in labels:
                problems.predictions_without_label.append(pred.id)
            elif labels[key] != pred.gold:
                raise RecordError(
                    f"{pred.where}: sample {pred.id} has gold {pred.gold!r} but {labels_path} says {labels[key]!r}"
                )
        problems.labels_without_prediction = sorted((k for k in labels if k not in by_key), key=_id_order)
        keep = {k for k in by_key if k in labels}
        predictions = [p for p in predictions if canonical_id(p.id) in keep]

    pred_ids = {canonical_id(p.id) for p in predictions}  # failed ones included: their judgments are expected
    failed = [p.id for p in predictions if p.failed]
    if not failed_as_wrong:
        predictions = [p for p in predictions if not p.failed]

    explanation: list[str | None] | None = None
    if judgments_path is not None:
        judgments = read_judgments(judgments_path, taxonomy)  # keyed by canonical id, as the predictions below
        problems.judgments_without_prediction = sorted(
            (j.id for key, j in judgments.items() if key not in pred_ids), key=_id_order
        )
        explanation = []
        for pred in predictions:
            explanation.append(judged_emotion(pred, judgments.get(canonical_id(pred.id)), taxonomy, predictions_path))

    if problems.any() and not allow_missing:
        raise RecordError("; ".join(problems.lines(predictions_path)) + " (pass --allow-missing to score the rest)")
    if not predictions:
        raise RecordError(f"{predictions_path}: no prediction left to score")

    preds = [predicted_label(p.response, taxonomy) for p in predictions]
    outcomes = encode([p.gold for p in predictions], preds, taxonomy, explanation)
    result = compute_metrics(
        outcomes, with_coherence=explanation is not None, n_resamples=n_resamples, seed=seed, level=level
    )
    result["predictions"] = str(predictions_path)
    if judgments_path is not None:
        result["judgments"] = str(judgments_path)
    if problems.any():
        result["excluded"] = problems.as_dict()
    result["unknown_ids"] = [p.id for p, label in zip(predictions, preds, strict=True) if label == UNKNOWN]
    result["failed"] = len(failed)
    result["failed_ids"] = failed
    result["failed_scored_as_wrong"] = failed_as_wrong
    return result


def _id_order(sample_id: str) -> tuple[int, str]:
    return (len(sample_id), sample_id)


def evaluate(
    predictions: Sequence[str],
    dataset: str,
    *,
    judgments: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    allow_missing: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    failed_as_wrong: bool = False,
) -> dict[str, Any]:
    """Score one or several prediction files; several → per-fold results plus mean/std."""
    taxonomy = get_taxonomy(dataset)
    if not predictions:
        raise ConfigError("no predictions file given")
    if int(n_resamples) < 0:
        raise ConfigError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {n_resamples}")
    if judgments and len(judgments) != len(predictions):
        raise ConfigError(
            f"{len(predictions)} prediction file(s) but {len(judgments)} judgment file(s); give one per fold"
        )
    if labels and len(labels) not in (1, len(predictions)):
        raise ConfigError(f"{len(predictions)} prediction file(s) but {len(labels)} label file(s)")
    folds = []
    for i, path in enumerate(predictions):
        folds.append(
            evaluate_file(
                path,
                taxonomy,
                judgments_path=judgments[i] if judgments else None,
                labels_path=(labels[i] if len(labels) > 1 else labels[0]) if labels else None,
                allow_missing=allow_missing,
                n_resamples=n_resamples,
                seed=seed,
                level=level,
                failed_as_wrong=failed_as_wrong,
            )
        )
    if len(folds) == 1:
        return folds[0]
    summary = aggregate_folds(folds)
    return {
        "dataset": taxonomy.name,
        "folds": folds,
        "mean": summary["mean"],
        "std": summary["std"],
        "folds_in_mean": summary["folds"],
    }


def build_parser(prog: str = "erv evaluate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--predictions",
        nargs="+",
        required=True,
        metavar="P.jsonl",
        help="predictions file(s); several = one per fold",
    )
    parser.add_argument("--dataset", required=True, help="taxonomy: DFEW, MAFW, EMER, RAVDESS")
    parser.add_argument("--judgments", nargs="+", metavar="J.jsonl", help="judge output(s), one per predictions file")
    parser.add_argument(
        "--labels",
        nargs="+",
        metavar="FILE",
        help="the dataset's label file(s) (DFEW csv, MAFW txt/xlsx, records json) to check coverage and gold",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score what matches and list missing/extra samples instead of failing",
    )
    parser.add_argument(
        "--failed-as-wrong",
        action="store_true",
        help="score predictions that failed at inference (recorded error, no response) as wrong answers "
        "instead of leaving them out (they are counted either way)",
    )
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the metrics object here")
    parser.add_argument("--plots", metavar="DIR", help="write confusion-matrix PNGs here")
    parser.add_argument("--report", metavar="OUT.md", help="write a markdown report here")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals (0 = none; default 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "erv evaluate") -> int:
    from erv.eval import report

    args = build_parser(prog).parse_args(argv)
    if not 0 < args.level < 1:
        raise ConfigError(f"--level must be in (0, 1), got {args.level}")
    inputs = [*args.predictions, *(args.judgments or []), *(args.labels or [])]
    for flag, path in (("--json", args.json_out), ("--report", args.report)):
        if path:
            check_output_file(path, flag, inputs=inputs)  # before any work: never fail after the table
    if args.plots:
        check_output_dir(args.plots, "--plots")
    result = evaluate(
        args.predictions,
        args.dataset,
        judgments=args.judgments,
        labels=args.labels,
        allow_missing=args.allow_missing,
        n_resamples=args.bootstrap,
        seed=args.seed,
        level=args.level,
        failed_as_wrong=args.failed_as_wrong,
    )
    folds = result.get("folds", [result])
    for fold in folds:
        if "excluded" in fold:
            problems = Problems(**fold["excluded"])
            for line in problems.lines(fold["predictions"]):
                print(f"warning: {line} (excluded)", file=sys.stderr)
        if fold["failed"]:
            ids = fold["failed_ids"]
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            how = (
                "scored as wrong answers"
                if fold["failed_scored_as_wrong"]
                else "excluded; --failed-as-wrong scores them"
            )
            print(f"warning: {fold['predictions']}: {len(ids)} failed at inference: {shown} ({how})", file=sys.stderr)
    print(report.format_text(result))
    if args.json_out:
        write_json(args.json_out, result)
    if args.plots:
        for path in report.plot_confusions(result, Path(args.plots)):
            print(f"wrote {path}")
    if args.report:
        report.write_markdown(result, args.report)
    return 0
