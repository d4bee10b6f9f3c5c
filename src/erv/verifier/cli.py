"""`erv verifier data|train|eval|predict`.

    erv verifier data --inputs MERR_fine_grained.json gt-eng.csv --taxonomy MAFW --out verifier_train.jsonl
    erv verifier train --config configs/verifier_paper.yaml [--learning_rate 2e-5 ...]
    erv verifier eval --model outputs/verifier --data eval.jsonl --json eval.json
    erv verifier predict --model outputs/verifier --input sentences.jsonl --out labels.jsonl

Every subcommand reads TRL-style arguments: `--config recipe.yaml` sets fields, `--key value`
overrides them. (`augment pseudo-label|complement` arrive with the judge client.)
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from erv.errors import ConfigError

logger = logging.getLogger(__name__)

SUBCOMMANDS = {
    "data": "import / merge text-label data (EMER CSV, MERR-fine, judge pseudo-labels, JSONL) and split it",
    "train": "fine-tune the verifier from a recipe (configs/verifier_*.yaml)",
    "eval": "per-class P/R/F1, micro/macro F1 and a threshold sweep on labelled text",
    "predict": "label sets and probabilities for many texts",
}


@dataclass
class DataArguments:
    inputs: list[str] = field(default_factory=list, metadata={"help": "Input files (formats may be mixed)."})
    out: str = field(default="", metadata={"help": "Output JSONL {text, labels, id, source}."})
    taxonomy: str = field(default="MAFW", metadata={"help": "Label set to normalise to."})
    data_format: str = field(default="auto", metadata={"help": "auto | jsonl | emer | merr | judge"})
    drop_unknown_labels: bool = field(default=False, metadata={"help": "Drop (count, report) unknown labels."})
    predictions: str | None = field(default=None, metadata={
        "help": "Predictions JSONL to take <think> texts from for judge records without text."})
    text_column: str | None = field(default=None, metadata={"help": "Column/key holding the text."})
    label_column: str | None = field(default=None, metadata={"help": "Column/key holding the labels."})
    id_column: str | None = field(default=None, metadata={"help": "CSV column holding the sample id."})
    eval_out: str | None = field(default=None, metadata={"help": "Also write a held-out split here."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of texts in the held-out split."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the split."})
    summary_json: str | None = field(default=None, metadata={"help": "Write counts and the import report here."})


@dataclass
class EvalArguments:
    model: str = field(default="", metadata={"help": "Verifier directory (save_pretrained) or hub id."})
    data: list[str] = field(default_factory=list, metadata={"help": "Labelled text files."})
    taxonomy: str | None = field(default=None, metadata={"help": "Label set (default: the checkpoint's)."})
    data_format: str = field(default="auto", metadata={"help": "auto | jsonl | emer | merr | judge"})
    drop_unknown_labels: bool = field(default=False, metadata={"help": "Drop (count, report) unknown labels."})
    threshold: float = field(default=0.5, metadata={"help": "Decision threshold tau for the main report."})
    top_k: int | None = field(default=None, metadata={"help": "Keep at most the k most probable labels (reward: 2)."})
    at_least_one: bool = field(default=False, metadata={"help": "Always keep the top label (as the reward does)."})
    sweep: list[float] = field(default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)],
                               metadata={"help": "Thresholds to sweep."})
    head_layout: str = field(default="auto", metadata={"help": "auto | goemotions | labels"})
    batch_size: int = field(default=64, metadata={"help": "Rows per forward micro-batch."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: GPU if any)."})
    json: str | None = field(default=None, metadata={"help": "Write the full report as JSON here."})


@dataclass
class PredictArguments:
    model: str = field(default="", metadata={"help": "Verifier directory (save_pretrained) or hub id."})
    input: str = field(default="", metadata={"help": "JSONL/JSON with a text key, or a text file (one per line)."})
    out: str = field(default="", metadata={"help": "Output JSONL: id, text, labels, probs."})
    text_key: str = field(default="text", metadata={"help": "Key of the text in JSON input."})
    taxonomy: str | None = field(default=None, metadata={"help": "Label set (default: the checkpoint's)."})
    threshold: float = field(default=0.5, metadata={"help": "Labels with probability above tau."})
    top_k: int | None = field(default=None, metadata={"help": "Keep at most k labels."})
    at_least_one: bool = field(default=False, metadata={"help": "Always keep the top label."})
    head_layout: str = field(default="auto", metadata={"help": "auto | goemotions | labels"})
    batch_size: int = field(default=64, metadata={"help": "Rows per forward micro-batch."})
    chunk_size: int = field(default=4096, metadata={"help": "Texts per progress step."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: GPU if any)."})
    overwrite: bool = field(default=False, metadata={"help": "Start over instead of resuming an existing --out."})


def _parse(dataclass_type: type, argv: Sequence[str], prog: str) -> Any:
    from trl import TrlParser

    parser = TrlParser((dataclass_type,))
    parser.prog = prog
    try:
        (args,) = parser.parse_args_and_config(list(argv))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return args


def _require(args: Any, *names: str, prog: str) -> None:
    missing = [n for n in names if not getattr(args, n)]
    if missing:
        raise ConfigError(f"{prog}: missing " + ", ".join(f"--{n}" for n in missing))


def run_data(argv: Sequence[str]) -> int:
    from erv.records import write_json
    from erv.verifier.data import (ImportReport, format_counts, label_counts, load_many, train_eval_split,
                                   write_examples)

    args = _parse(DataArguments, argv, "erv verifier data")
    _require(args, "inputs", "out", prog="erv verifier data")
    report = ImportReport()
    examples = load_many(args.inputs, args.taxonomy, drop_unknown=args.drop_unknown_labels, report=report,
                         fmt=args.data_format, predictions=args.predictions, text_column=args.text_column,
                         label_column=args.label_column, id_column=args.id_column)
    held_out: list = []
    if args.eval_out:
        examples, held_out = train_eval_split(examples, args.eval_fraction, args.split_seed)
        write_examples(args.eval_out, held_out)
    write_examples(args.out, examples)
    counts = label_counts(examples, args.taxonomy)
    print(f"per class: {format_counts(counts)}")
    if args.summary_json:
        write_json(args.summary_json, {"taxonomy": args.taxonomy, "examples": len(examples), "held_out": len(held_out),
                                       "label_counts": counts, "import": report.to_dict()})
    print(f"erv verifier data: done: {len(examples)} examples to {args.out}"
          + (f", {len(held_out)} held out to {args.eval_out}" if args.eval_out else "") + f"; {report.summary()}")
    return 0


def _load_verifier(args: Any) -> Any:
    from erv.verifier.model import Verifier

    return Verifier.from_pretrained(args.model, taxonomy=args.taxonomy, head_layout=args.head_layout,
                                    batch_size=args.batch_size, device=args.device)


def run_eval(argv: Sequence[str]) -> int:
    from erv.records import write_json
    from erv.verifier.data import ImportReport, load_many
    from erv.verifier.eval import EvalSettings, evaluate_verifier, format_report

    args = _parse(EvalArguments, argv, "erv verifier eval")
    _require(args, "model", "data", prog="erv verifier eval")
    verifier = _load_verifier(args)
    taxonomy = verifier.resolve_taxonomy(args.taxonomy)
    report = ImportReport()
    examples = load_many(args.data, taxonomy, drop_unknown=args.drop_unknown_labels, report=report,
                         fmt=args.data_format)
    settings = EvalSettings(threshold=args.threshold, top_k=args.top_k, at_least_one=args.at_least_one,
                            sweep=tuple(args.sweep))
    result = evaluate_verifier(verifier, examples, taxonomy, settings)
    result["import"] = report.to_dict()
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
    print(f"erv verifier eval: done: {result['n']} texts, macro-F1 {result['macro_f1']:.4f}, "
          f"micro-F1 {result['micro_f1']:.4f}" + (f", report in {args.json}" if args.json else ""))
    return 0


def run_predict(argv: Sequence[str]) -> int:
    """Resumable: records are appended chunk by chunk; a re-run skips ids already in --out."""
    from pathlib import Path

    from tqdm import tqdm

    from erv.records import JsonlAppender, iter_json_records
    from erv.verifier.data import iter_texts
    from erv.verifier.predict import select_label_sets

    args = _parse(PredictArguments, argv, "erv verifier predict")
    _require(args, "model", "input", "out", prog="erv verifier predict")
    rows = [(rid if rid is not None else where, text) for where, rid, text in iter_texts(args.input, text_key=args.text_key)]
    ids = [rid for rid, _ in rows]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{args.input}: ids are not unique, so results could not be matched on resume")
    out_path = Path(args.out)
    if args.overwrite and out_path.exists():
        out_path.unlink()
    done: set[str] = set()
    if out_path.exists():
        done = {str(record.get("id")) for _, record in iter_json_records(out_path, tolerate_torn_tail=True)}
    todo = [(rid, text) for rid, text in rows if rid not in done]
    verifier = _load_verifier(args)
    columns = verifier.columns(args.taxonomy)
    written = 0
    with JsonlAppender(out_path) as sink, tqdm(total=len(todo), desc="verifier predict", unit="text",
                                                disable=None) as progress:
        for start in range(0, len(todo), max(args.chunk_size, 1)):
            chunk = todo[start:start + args.chunk_size]
            probs = verifier.predict_proba([text for _, text in chunk])
            selected = select_label_sets(probs, args.threshold, args.top_k, args.at_least_one)
            sink.append_many(
                {"id": rid, "text": text, "labels": [label for label, col in columns.items() if sel[col]],
                 "probs": {label: round(p[col], 6) for label, col in columns.items()}}
                for (rid, text), p, sel in zip(chunk, probs.tolist(), selected.tolist()))
            written += len(chunk)
            progress.update(len(chunk))
    print(f"erv verifier predict: done: {written} texts scored, {len(rows) - len(todo)} already in {args.out} "
          f"(skipped), 0 failed")
    return 0


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: erv verifier <subcommand> [--config YAML] [--key value ...]", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, help_ in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name == "augment":
        raise ConfigError("`erv verifier augment` needs the LLM judge client, which this version does not have yet")
    if name not in SUBCOMMANDS:
        print(f"erv verifier: error: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if name != "train":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if name == "train":
        from erv.verifier.train import main as train_main

        return train_main(rest)
    return {"data": run_data, "eval": run_eval, "predict": run_predict}[name](rest)
