"""`erv verifier data|train|eval|predict`.

    erv verifier data --inputs MERR_fine_grained.json gt-eng.csv --taxonomy MAFW --out verifier_train.jsonl
    erv verifier train --config configs/verifier_paper.yaml [--learning_rate 2e-5 ...]
    erv verifier eval --model outputs/verifier --data eval.jsonl --json eval.json
    erv verifier predict --model outputs/verifier --input sentences.jsonl --out labels.jsonl

    erv verifier augment pseudo-label --predictions P.jsonl --dataset MAFW --out pseudo.jsonl [judge options]
    erv verifier augment complement --data train.jsonl --dataset MAFW --classes disgust fear --target 1000 \
        --out complement.jsonl [--seed 0] [--temperature 1.0] [judge options]

`data`, `train`, `eval` and `predict` read TRL-style arguments: `--config recipe.yaml` sets
fields, `--key value` overrides them. `augment` takes the same endpoint options as `erv judge`
(`--model --base-url --api-key-env --concurrency --timeout --max-retries --cache ...`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from erv.errors import ConfigError
from erv.io.identity import ON_CHANGED

logger = logging.getLogger(__name__)

SUBCOMMANDS = {
    "data": "import / merge text-label data (EMER CSV, MERR-fine, judge pseudo-labels, JSONL) and split it",
    "train": "fine-tune the verifier from a recipe (configs/verifier_*.yaml)",
    "eval": "per-class P/R/F1, micro/macro F1 and a threshold sweep on labelled text",
    "predict": "label sets and probabilities for many texts",
    "augment": "LLM-judge data augmentation: `augment pseudo-label` (Figure 6) and `augment complement` (Figure 7)",
}
AUGMENT_SUBCOMMANDS = {
    "pseudo-label": "the judge names up to two emotions for each explanation (verifier training text)",
    "complement": "two-shot generation of descriptions for rare classes up to a target count",
}


@dataclass
class DataArguments:
    inputs: list[str] = field(default_factory=list, metadata={"help": "Input files (formats may be mixed)."})
    out: str = field(default="", metadata={"help": "Output JSONL {text, labels, id, source}."})
    taxonomy: str = field(default="MAFW", metadata={"help": "Label set to normalise to."})
    data_format: str = field(default="auto", metadata={"help": "auto | jsonl | emer | merr | judge"})
    drop_unknown_labels: bool = field(default=False, metadata={"help": "Drop (count, report) unknown labels."})
    predictions: str | None = field(
        default=None, metadata={"help": "Predictions JSONL to take <think> texts from for judge records without text."}
    )
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
    sweep: list[float] = field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)], metadata={"help": "Thresholds to sweep."}
    )
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
    on_changed: str = field(
        default="redo",
        metadata={
            "help": "A text of --out whose input changed since it was scored: score it again (redo) or stop "
            "before any work (refuse).",
            "choices": list(ON_CHANGED),
        },
    )
    no_progress: bool = field(default=False, metadata={"help": "No progress bar."})


def _parse(dataclass_type: type, argv: Sequence[str], prog: str) -> Any:
    from erv.io.recipes import parse_recipe

    (args,) = parse_recipe((dataclass_type,), argv, prog)
    return args


def _require(args: Any, *names: str, prog: str) -> None:
    missing = [n for n in names if not getattr(args, n)]
    if missing:
        raise ConfigError(f"{prog}: missing " + ", ".join(f"--{n}" for n in missing))


def check_decision_args(args: Any) -> None:
    """Ranges of the label-set decision and batching options (a threshold of 2 selects nothing)."""
    thresholds = [("--threshold", args.threshold)] + [("--sweep", t) for t in getattr(args, "sweep", None) or []]
    for flag, value in thresholds:
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{flag} {value} is outside [0, 1] (a probability threshold)")
    if args.top_k is not None and int(args.top_k) < 1:
        raise ConfigError(f"--top_k must be at least 1 (or unset), got {args.top_k}")
    for flag in ("batch_size", "chunk_size"):
        value = getattr(args, flag, None)
        if value is not None and int(value) < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {value}")


def run_data(argv: Sequence[str]) -> int:
    from erv.io.jsonl import write_json
    from erv.io.outputs import check_output_file
    from erv.verifier.data import (
        ImportReport,
        format_counts,
        label_counts,
        load_many,
        train_eval_split,
        write_examples,
    )

    args = _parse(DataArguments, argv, "erv verifier data")
    _require(args, "inputs", "out", prog="erv verifier data")
    inputs = [*args.inputs, args.predictions]
    check_output_file(args.out, "--out", inputs=inputs)
    for flag, path in (("--eval_out", args.eval_out), ("--summary_json", args.summary_json)):
        if path:
            check_output_file(path, flag, inputs=[*inputs, args.out])
    report = ImportReport()
    examples = load_many(
        args.inputs,
        args.taxonomy,
        drop_unknown=args.drop_unknown_labels,
        report=report,
        fmt=args.data_format,
        predictions=args.predictions,
        text_column=args.text_column,
        label_column=args.label_column,
        id_column=args.id_column,
    )
    if not examples:
        raise ConfigError(
            f"erv verifier data: no example in {', '.join(map(str, args.inputs))} ({report.summary()}); "
            f"nothing written"
        )
    held_out: list = []
    if args.eval_out:
        examples, held_out = train_eval_split(examples, args.eval_fraction, args.split_seed)
        write_examples(args.eval_out, held_out)
    write_examples(args.out, examples)
    counts = label_counts(examples, args.taxonomy)
    print(f"per class: {format_counts(counts)}")
    if args.summary_json:
        write_json(
            args.summary_json,
            {
                "taxonomy": args.taxonomy,
                "examples": len(examples),
                "held_out": len(held_out),
                "label_counts": counts,
                "import": report.to_dict(),
            },
        )
    print(
        f"erv verifier data: done: {len(examples)} examples to {args.out}"
        + (f", {len(held_out)} held out to {args.eval_out}" if args.eval_out else "")
        + f"; {report.summary()}"
    )
    return 0


def _load_verifier(args: Any, location: str | None = None) -> Any:
    from erv.verifier.model import Verifier

    return Verifier.from_pretrained(
        location or args.model,
        taxonomy=args.taxonomy,
        head_layout=args.head_layout,
        batch_size=args.batch_size,
        device=args.device,
    )


def run_eval(argv: Sequence[str]) -> int:
    from erv.io.jsonl import write_json
    from erv.io.locations import resolve_model_location
    from erv.io.outputs import check_output_file
    from erv.verifier.data import ImportReport, load_many
    from erv.verifier.eval import EvalSettings, evaluate_verifier, format_report

    args = _parse(EvalArguments, argv, "erv verifier eval")
    _require(args, "model", "data", prog="erv verifier eval")
    check_decision_args(args)
    if args.json:
        check_output_file(args.json, "--json", inputs=args.data)
    location = resolve_model_location(args.model, "verifier")
    verifier = _load_verifier(args, location)
    taxonomy = verifier.resolve_taxonomy(args.taxonomy)
    report = ImportReport()
    examples = load_many(
        args.data, taxonomy, drop_unknown=args.drop_unknown_labels, report=report, fmt=args.data_format
    )
    settings = EvalSettings(
        threshold=args.threshold, top_k=args.top_k, at_least_one=args.at_least_one, sweep=tuple(args.sweep)
    )
    result = evaluate_verifier(verifier, examples, taxonomy, settings)
    result["import"] = report.to_dict()
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
    print(
        f"erv verifier eval: done: {result['n']} texts, macro-F1 {result['macro_f1']:.4f}, "
        f"micro-F1 {result['micro_f1']:.4f}" + (f", report in {args.json}" if args.json else "")
    )
    return 0


def run_predict(argv: Sequence[str]) -> int:
    """Resumable: each text's record is tied to its text and to the verifier (erv.verifier.predict_file)."""
    from erv.io.locations import resolve_model_location
    from erv.io.outputs import check_output_file
    from erv.verifier.predict_file import predict_file, read_rows

    args = _parse(PredictArguments, argv, "erv verifier predict")
    _require(args, "model", "input", "out", prog="erv verifier predict")
    check_decision_args(args)
    out = check_output_file(args.out, inputs=(args.input,))
    location = resolve_model_location(args.model, "verifier")
    rows = read_rows(args.input, text_key=args.text_key)
    verifier = _load_verifier(args, location)
    summary = predict_file(
        verifier,
        rows,
        out,
        model_location=location,
        taxonomy=args.taxonomy,
        threshold=args.threshold,
        top_k=args.top_k,
        at_least_one=args.at_least_one,
        chunk_size=args.chunk_size,
        on_changed=args.on_changed,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    print(summary.line())
    return 0


# ---------------------------------------------------------------- augment


def build_pseudo_label_parser() -> argparse.ArgumentParser:
    from erv.judge.cli import add_judge_options

    parser = argparse.ArgumentParser(
        prog="erv verifier augment pseudo-label",
        description="Pseudo-label explanations with an LLM judge (paper Figure 6: up to two emotions of the "
        "dataset's list), resumably. Output: JSONL {id, text, labels, raw, error, judge} that "
        "`erv verifier data` / `train` read directly. See docs/verifier.md.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="predictions JSONL: the <think> text of each `response` is labelled")
    source.add_argument(
        "--explanations", help="JSONL of explanations: `id` and `text` (or explanation / reason / think)"
    )
    parser.add_argument(
        "--dataset", required=True, help="taxonomy whose labels the judge chooses from (DFEW, MAFW, ...)"
    )
    parser.add_argument("--out", required=True, help="output JSONL; resumed if it exists")
    add_judge_options(parser)
    parser.add_argument(
        "--text-key",
        default=None,
        help="key of the explanation text (default: response's <think>, else text / explanation / reason / think)",
    )
    parser.add_argument(
        "--allow-unclosed-think",
        action="store_true",
        help="also label a <think> that is never closed (a truncated generation)",
    )
    parser.add_argument("--limit", type=int, default=None, help="label only the first N explanations")
    parser.add_argument(
        "--on-changed",
        choices=ON_CHANGED,
        default="redo",
        help="an id of --out labelled from another explanation than the input now holds: label it again "
        "(redo, default) or stop before any request (refuse)",
    )
    parser.add_argument("--summary-json", default=None, help="also write the counts as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_complement_parser() -> argparse.ArgumentParser:
    from erv.judge.cli import add_judge_options
    from erv.verifier.augment import PAPER_RARE_CLASSES
    from erv.verifier.data import FORMATS

    parser = argparse.ArgumentParser(
        prog="erv verifier augment complement",
        description="Generate descriptions of rare classes with two-shot prompts (paper Figure 7) until each class "
        "has --target examples, counting those already in --data; resumable, de-duplicated. "
        "--out holds only the new descriptions. See docs/verifier.md.",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="training data the counts and the two examples come from (any `erv verifier data` format)",
    )
    parser.add_argument("--dataset", required=True, help="taxonomy of the labels (DFEW, MAFW, ...)")
    parser.add_argument("--out", required=True, help="output JSONL of generated descriptions; resumed if it exists")
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help=f"classes to complement (default: the paper's {', '.join(PAPER_RARE_CLASSES)} that the taxonomy has)",
    )
    parser.add_argument(
        "--target", type=int, default=1000, help="examples per class to reach (default 1000, the paper's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the example draws and request seeds (default 0)")
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=10,
        help="rounds of requests at most (each asks for what is still missing; default 10)",
    )
    parser.add_argument(
        "--no-request-seed",
        action="store_true",
        help="do not send a sampling `seed` per request (for endpoints that reject it; needs --no-cache)",
    )
    parser.add_argument("--data-format", choices=FORMATS, default="auto", help="format of --data (default: detect)")
    parser.add_argument(
        "--drop-unknown-labels", action="store_true", help="drop (count) labels of --data outside the taxonomy"
    )
    add_judge_options(
        parser,
        temperature=1.0,
        temperature_help="sampling temperature, above 0 (default 1.0; 'none' to omit = the server's default)",
    )
    parser.add_argument("--summary-json", default=None, help="also write the counts as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _print_errors(command: str, errors: Any, count: int) -> None:
    if count:
        print(f"{command}: {count} API calls failed:", file=sys.stderr)
        for message, n in errors.most_common(5):
            print(f"  {n} x {message}", file=sys.stderr)


def run_pseudo_label_command(argv: Sequence[str]) -> int:
    from dataclasses import asdict

    from erv.io.jsonl import write_json
    from erv.io.outputs import check_output_file
    from erv.judge.cli import judge_config_from_args
    from erv.verifier.augment import run_pseudo_label
    from erv.verifier.data import format_counts

    command = "erv verifier augment pseudo-label"
    args = build_pseudo_label_parser().parse_args(argv)
    config = judge_config_from_args(args, args.out)
    source = args.predictions or args.explanations
    if args.summary_json:
        check_output_file(args.summary_json, "--summary-json", inputs=(source, args.out))
    summary = run_pseudo_label(
        source,
        args.dataset,
        args.out,
        config,
        text_key=args.text_key,
        allow_unclosed_think=args.allow_unclosed_think,
        limit=args.limit,
        on_changed=args.on_changed,
        progress=False if args.no_progress else None,
    )
    _print_errors(command, summary.errors, summary.failed)
    if summary.file_failed:
        print(
            f"{command}: re-run the same command to retry the {summary.file_failed} failed explanations",
            file=sys.stderr,
        )
    print(
        f"{args.out}: {summary.total} explanations with text, {summary.no_text} without (not sent); "
        f"outside the taxonomy {summary.file_out_of_taxonomy} (kept with labels null), failed {summary.file_failed}; "
        f"requests sent {summary.requests}"
        + (f", {summary.changed} labelled again (explanation changed)" if summary.changed else "")
    )
    print(f"per class: {format_counts(summary.label_counts)}")
    if args.summary_json:
        data = asdict(summary)
        data["errors"] = dict(summary.errors)
        write_json(args.summary_json, data)
    print(summary.line(), flush=True)
    return 1 if summary.file_failed else 0


def run_complement_command(argv: Sequence[str]) -> int:
    from dataclasses import asdict

    from erv.io.jsonl import write_json
    from erv.io.outputs import check_output_file
    from erv.judge.cli import judge_config_from_args
    from erv.verifier.augment import run_complement

    command = "erv verifier augment complement"
    args = build_complement_parser().parse_args(argv)
    config = judge_config_from_args(args, args.out)
    if args.summary_json:
        check_output_file(args.summary_json, "--summary-json", inputs=[*args.data, args.out])
    summary = run_complement(
        args.data,
        args.dataset,
        args.out,
        config,
        classes=args.classes,
        target=args.target,
        seed=args.seed,
        request_seed=not args.no_request_seed,
        max_rounds=args.max_rounds,
        data_format=args.data_format,
        drop_unknown_labels=args.drop_unknown_labels,
        progress=False if args.no_progress else None,
    )
    _print_errors(command, summary.errors, summary.failed)
    width = max(map(len, summary.after), default=0)
    print(f"{'class':<{width}}  data  before  after  (target {summary.target})")
    for label, after in summary.after.items():
        print(
            f"{label:<{width}}  {summary.data_counts[label]:>4}  {summary.before[label]:>6}  {after:>5}"
            + ("" if after >= summary.target else f"  short by {summary.target - after}")
        )
    print(
        f"{args.out}: {summary.requested} requests in {summary.rounds} rounds ({summary.cached} from the cache, "
        f"{summary.requests} sent), {summary.duplicates} duplicates dropped"
    )
    if summary.short:
        why = f"; no progress in two rounds for {', '.join(summary.stalled)}" if summary.stalled else ""
        print(
            f"{command}: {len(summary.short)} classes below the target{why}; re-run to continue "
            f"(raise --max-rounds, check the judge's replies)",
            file=sys.stderr,
        )
    if args.summary_json:
        data = asdict(summary)
        data["errors"] = dict(summary.errors)
        data["short"] = summary.short
        write_json(args.summary_json, data)
    print(summary.line(), flush=True)
    return 1 if summary.short else 0


def run_augment(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        width = max(map(len, AUGMENT_SUBCOMMANDS))
        print(
            "\n".join(
                ["usage: erv verifier augment <pseudo-label|complement> [options]", "", "subcommands:"]
                + [f"  {n:<{width}}  {h}" for n, h in AUGMENT_SUBCOMMANDS.items()]
            )
        )
        return 0
    if args[0] not in AUGMENT_SUBCOMMANDS:
        raise ConfigError(f"unknown augment subcommand {args[0]!r}; choose one of {', '.join(AUGMENT_SUBCOMMANDS)}")
    if args[0] == "pseudo-label":
        return run_pseudo_label_command(args[1:])
    return run_complement_command(args[1:])


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
    if name not in SUBCOMMANDS:
        print(f"erv verifier: error: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if name not in ("train", "augment"):  # augment: the HTTP client logs every request at INFO
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if name in ("data", "augment"):  # no torch work
        return {"data": run_data, "augment": run_augment}[name](rest)
    from erv.io.threads import cli_torch_threads

    with cli_torch_threads():
        if name == "train":
            from erv.verifier.train import main as train_main

            return train_main(rest)
        return {"eval": run_eval, "predict": run_predict}[name](rest)
