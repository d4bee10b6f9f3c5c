"""Agreement between LLM judges and the coherence metrics each implies (the paper's Table 4).

The paper re-checks GPT-4.1-mini's explanation emotions with Gemini-2.5-Flash. For two (or
more) judgment files of the same predictions this computes, per pair of judges: the share of
samples both judged on which they name the same emotion, Cohen's kappa over the taxonomy's
labels, and the cross-judge confusion table; and per judge: EEA, EPC and FCR over the samples
it judged, and again over the samples both judges of a pair judged (the fair comparison).

A sample is *unjudged* by a judge when its file has no record for it, the record has an
error, or the reply named no label of the taxonomy. Unjudged samples are excluded and
counted, never mapped to a label.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from erv.data.completions import extract_answer
from erv.data.emotions import Taxonomy, get_taxonomy, normalize_label
from erv.data.ids import canonical_id
from erv.data.records import Prediction, read_judgments, read_predictions
from erv.errors import ConfigError, RecordError
from erv.eval.metrics import compute_metrics, encode
from erv.judge.run import judged_emotion


@dataclass
class JudgeLabels:
    """One judgment file reduced to `{id: label or None}` over the predictions' ids."""

    path: str
    models: tuple[str, ...]
    labels: dict[str, str | None]

    @property
    def judged_ids(self) -> set[str]:
        return {i for i, label in self.labels.items() if label is not None}


def load_judge_labels(
    path: str | os.PathLike[str], predictions: Sequence[Prediction], taxonomy: Taxonomy
) -> JudgeLabels:
    judgments = read_judgments(path, taxonomy)  # keyed by canonical id; records of another dataset refused
    ids = {canonical_id(p.id) for p in predictions}
    foreign = [j.id for key, j in judgments.items() if key not in ids]
    if foreign:
        raise RecordError(
            f"{path}: {len(foreign)} judged ids are not in the predictions (e.g. {', '.join(map(repr, foreign[:3]))})"
        )
    labels: dict[str, str | None] = {}
    for p in predictions:
        labels[p.id] = judged_emotion(p, judgments.get(canonical_id(p.id)), taxonomy, "the predictions")
    models = tuple(sorted({str(j.judge) for j in judgments.values() if j.judge is not None}))
    return JudgeLabels(str(path), models, labels)


def _coherence(samples: list[tuple[str, str, str]], taxonomy: Taxonomy) -> dict[str, Any]:
    """EEA, EPC, FCR (and FCR | correct) over judged (gold, predicted answer, explanation) triples.

    Computed by `erv.eval.metrics` so that this table and `erv evaluate` can never disagree.
    """
    if not samples:
        return {"n": 0, "eea": None, "epc": None, "fcr": None, "fcr_given_correct": None}
    gold, pred, expl = (list(column) for column in zip(*samples, strict=True))
    metrics = compute_metrics(encode(gold, pred, taxonomy, expl), with_coherence=True, n_resamples=0)
    return {"n": len(samples), **{k: metrics[k] for k in ("eea", "epc", "fcr", "fcr_given_correct")}}


def cohen_kappa(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences over `labels`; None when undefined (chance agreement 1)."""
    if len(a) != len(b):
        raise ValueError("kappa needs two sequences of equal length")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[label] * count_b[label] for label in labels) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def agreement_report(
    judgment_paths: Sequence[str | os.PathLike[str]], predictions_path: str | os.PathLike[str], dataset: str | Taxonomy
) -> dict[str, Any]:
    """Everything `erv judge agreement` prints, as a JSON-ready dict (fractions in [0, 1])."""
    if len(judgment_paths) < 2:
        raise RecordError("agreement needs at least two judgment files")
    taxonomy = get_taxonomy(dataset)
    predictions = read_predictions(predictions_path, taxonomy)
    truth = {p.id: (p.gold, normalize_label(extract_answer(p.response), taxonomy)) for p in predictions}
    judges = [load_judge_labels(path, predictions, taxonomy) for path in judgment_paths]

    def triples(judge: JudgeLabels, ids: set[str]) -> list[tuple[str, str, str]]:
        return [(truth[i][0], truth[i][1], judge.labels[i]) for i in (p.id for p in predictions) if i in ids]  # type: ignore[misc]

    report: dict[str, Any] = {
        "dataset": taxonomy.name,
        "predictions": str(predictions_path),
        "n": len(predictions),
        "judges": [],
        "pairs": [],
    }
    for judge in judges:
        judged = judge.judged_ids
        report["judges"].append(
            {
                "path": judge.path,
                "models": list(judge.models),
                "judged": len(judged),
                "unjudged": len(predictions) - len(judged),
                **_strip_n(_coherence(triples(judge, judged), taxonomy)),
            }
        )
    for (ia, a), (ib, b) in combinations(enumerate(judges), 2):
        both = a.judged_ids & b.judged_ids
        order = [p.id for p in predictions if p.id in both]
        la = [a.labels[i] for i in order]
        lb = [b.labels[i] for i in order]
        confusion: dict[str, dict[str, int]] = {}
        for x, y in zip(la, lb, strict=True):
            row = confusion.setdefault(x, {})  # type: ignore[arg-type]
            row[y] = row.get(y, 0) + 1  # type: ignore[index]
        report["pairs"].append(
            {
                "a": ia,
                "b": ib,
                "both_judged": len(both),
                "excluded": {
                    "unjudged_by_a_only": len(b.judged_ids - a.judged_ids),
                    "unjudged_by_b_only": len(a.judged_ids - b.judged_ids),
                    "unjudged_by_both": len(predictions) - len(a.judged_ids | b.judged_ids),
                },
                "agreement": (sum(x == y for x, y in zip(la, lb, strict=True)) / len(order)) if order else None,
                "kappa": cohen_kappa(la, lb, taxonomy.labels),  # type: ignore[arg-type]
                "confusion": confusion,
                "on_both_judged": [
                    _strip_n(_coherence(triples(a, both), taxonomy)),
                    _strip_n(_coherence(triples(b, both), taxonomy)),
                ],
            }
        )
    return report


def _strip_n(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "n"}


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def format_report(report: dict[str, Any]) -> str:
    """A plain-text version of the report (Table 4 layout: EEA, FCR, EPC per judge)."""
    names = [chr(ord("A") + i) if i < 26 else f"J{i}" for i in range(len(report["judges"]))]
    lines = [f"{report['dataset']}: {report['n']} predictions ({report['predictions']})"]
    for name, judge in zip(names, report["judges"], strict=True):
        lines.append(f"  {name} = {judge['path']} ({', '.join(judge['models']) or 'judge unnamed'})")
    lines.append("")
    lines.append(f"  {'judge':<6}{'EEA':>8}{'FCR':>8}{'EPC':>8}{'judged':>9}{'unjudged':>10}")
    for name, judge in zip(names, report["judges"], strict=True):
        lines.append(
            f"  {name:<6}{_pct(judge['eea']):>8}{_pct(judge['fcr']):>8}{_pct(judge['epc']):>8}"
            f"{judge['judged']:>9}{judge['unjudged']:>10}"
        )
    for pair in report["pairs"]:
        a, b = names[pair["a"]], names[pair["b"]]
        ex = pair["excluded"]
        kappa = "n/a (undefined)" if pair["kappa"] is None else f"{pair['kappa']:.3f}"
        agreement = "n/a" if pair["agreement"] is None else f"{100 * pair['agreement']:.2f}%"
        lines.append("")
        lines.append(
            f"  {a} vs {b}: agreement {agreement}, Cohen's kappa {kappa} on {pair['both_judged']} samples judged "
            f"by both "
            f"(excluded: {ex['unjudged_by_a_only']} unjudged by {a} only, {ex['unjudged_by_b_only']} by {b} only, "
            f"{ex['unjudged_by_both']} by both)"
        )
        for name, metrics in zip((a, b), pair["on_both_judged"], strict=True):
            lines.append(
                f"    {name} on those samples: EEA {_pct(metrics['eea']).strip()}  "
                f"FCR {_pct(metrics['fcr']).strip()}  "
                f"EPC {_pct(metrics['epc']).strip()}"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def build_agreement_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv judge agreement",
        description="Per-sample agreement and Cohen's kappa between judges, and the EEA/EPC/FCR each implies "
        "(paper Table 4).",
    )
    parser.add_argument("judgments", nargs="+", help="two or more judgments JSONL files of the same predictions")
    parser.add_argument("--predictions", required=True, help="the predictions JSONL the judgments belong to")
    parser.add_argument("--dataset", required=True, help="taxonomy (DFEW, MAFW, ...)")
    parser.add_argument("--json", default=None, help="also write the report as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`erv judge agreement`."""
    args = build_agreement_parser().parse_args(argv)
    if len(args.judgments) < 2:
        raise ConfigError("agreement needs at least two judgment files")
    from erv.io.jsonl import write_json
    from erv.io.outputs import check_output_file

    if args.json:
        check_output_file(args.json, "--json", inputs=[args.predictions, *args.judgments])

    report = agreement_report(args.judgments, args.predictions, args.dataset)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0
