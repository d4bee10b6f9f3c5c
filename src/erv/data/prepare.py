"""`erv data prepare`: SFT / GRPO / inference records from a dataset's own label files.

The paper's scripts build these with hard-coded paths and never check that a video exists or
that a training clip is not also a test clip. Here the label file of the chosen fold is read,
every clip is matched to a file in the video folder (recursively, by id, following symlinked
folders; numeric ids match with or without leading zeros), missing videos are reported (and
fail the run unless allowed), and the train and test lists of a fold are checked for overlap
before anything is written. The output location is checked before any of this.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from erv.data.emotions import get_taxonomy
from erv.data.ids import VIDEO_EXTENSIONS, canonical_id
from erv.data.labels import ExplainedSample, fold_label_file, read_emer_csv, read_label_file
from erv.data.prompts import MODAL_PREFIX, TASK_PROMPT
from erv.errors import ConfigError, LabelFileError
from erv.io.jsonl import read_text_file, write_json, write_jsonl
from erv.io.outputs import check_output_file

FORMATS = ("sft", "grpo", "infer")


def index_videos(
    video_dir: str | os.PathLike[str], extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Map canonical sample id → video file under `video_dir` (recursive).

    Symlinked folders are followed (datasets are often assembled from links into shared
    storage); a folder reached twice (a link loop, or two links to one folder) is walked once,
    and one file reached under two names counts once. Broken links are not videos. Returns
    `(index, ambiguous)`: two files with the same id (e.g. `clips/1.mp4` and
    `part_2/00001.avi`) make that id ambiguous; it is left out of the index and reported.
    """
    root = Path(video_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: video folder not found")
    exts = tuple(e.lower() for e in extensions)
    index: dict[str, Path] = {}
    ambiguous: dict[str, list[Path]] = {}
    real_of: dict[str, str] = {}
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:
            dirnames[:] = []  # seen before (a link loop or a second link to it): do not walk it again
            continue
        visited.add((info.st_dev, info.st_ino))
        for name in sorted(filenames):
            if not name.lower().endswith(exts):
                continue
            path = Path(dirpath) / name
            if not path.is_file():
                continue  # a broken link
            key = canonical_id(Path(name).stem)
            real = os.path.realpath(path)
            if key in index:
                if real_of[key] == real:
                    continue  # the same file under another name
                ambiguous.setdefault(key, [index[key]]).append(path)
            else:
                index[key] = path
                real_of[key] = real
    for key in ambiguous:
        index.pop(key, None)
    return index, ambiguous


@dataclass
class PrepareReport:
    written: int = 0
    missing: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)

    def line(self) -> str:
        return f"written {self.written} / missing videos {len(self.missing)} / ambiguous {len(self.ambiguous)}"


def check_no_leak(train_ids: set[str], test_ids: set[str], *, train_source: str, test_source: str) -> None:
    overlap = sorted(train_ids & test_ids, key=lambda s: (len(s), s))
    if overlap:
        shown = ", ".join(overlap[:10]) + (" ..." if len(overlap) > 10 else "")
        raise LabelFileError(f"{len(overlap)} clip(s) appear in both {train_source} and {test_source}: {shown}")


def build_record(
    sample_id: str, video: Path, label: str, fmt: str, prompt: str, dataset: str, reason: str | None = None
) -> dict:
    human = {"from": "human", "value": MODAL_PREFIX + prompt}
    if fmt == "sft":
        if not reason:
            raise ConfigError(f"sample {sample_id}: SFT records need an explanation (reason)")
        target = f"<think>{reason}</think>\n<answer>{label}</answer>"
    else:
        target = label
    return {
        "id": sample_id,
        "video": str(video),
        "dataset": dataset,
        "conversations": [human, {"from": "gpt", "value": target}],
    }


def prepare(
    *,
    dataset: str,
    video_dir: str,
    out: str,
    fmt: str,
    labels: str | None = None,
    label_dir: str | None = None,
    fold: int | None = None,
    split: str = "train",
    leak_check_labels: str | None = None,
    prompt: str = TASK_PROMPT,
    explanations: str | None = None,
    allow_missing_videos: bool = False,
    emer_columns: tuple[str, str, str] = ("names", "emotions", "reasons"),
) -> PrepareReport:
    """Build records and write them (JSON list, or JSONL if `out` ends in .jsonl)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tax = get_taxonomy(dataset)
    if labels is not None and label_dir is not None:
        raise ConfigError("--labels and --label-dir are alternatives: give one (--label-dir also checks leakage)")
    check_output_file(out, inputs=(labels, explanations, leak_check_labels))

    reasons: dict[str, str] = {}
    if labels is None and label_dir is None and explanations is None:
        raise ConfigError("give --labels FILE, or --label-dir DIR with --fold, or --explanations (EMER csv)")
    if labels is not None:
        label_map = read_label_file(labels, tax)
        source = str(labels)
    elif label_dir is not None:
        if fold is None:
            raise ConfigError("--label-dir needs --fold (1..5)")
        path = fold_label_file(tax.name, label_dir, fold, split)
        label_map = read_label_file(path, tax)
        source = str(path)
        other_split = "test" if split == "train" else "train"
        try:
            other = fold_label_file(tax.name, label_dir, fold, other_split)
        except LabelFileError:
            other = None
        if other is not None and leak_check_labels is None:
            leak_check_labels = str(other)
    else:
        label_map = {}
        source = str(explanations)
    if explanations is not None:
        id_col, label_col, reason_col = emer_columns
        samples: list[ExplainedSample] = read_emer_csv(
            explanations, id_column=id_col, label_column=label_col, reason_column=reason_col, taxonomy=tax
        )
        for sample in samples:
            reasons[sample.id] = sample.reason
            if labels is None and label_dir is None:
                label_map[sample.id] = sample.label
            elif sample.id in label_map and label_map[sample.id] != sample.label:
                raise LabelFileError(
                    f"{explanations}: sample {sample.id} is {sample.label!r} there but "
                    f"{label_map[sample.id]!r} in {source}"
                )
    if fmt == "sft":
        missing_reason = [s for s in label_map if s not in reasons]
        if missing_reason:
            raise ConfigError(
                f"{len(missing_reason)} sample(s) have no explanation for SFT, e.g. {missing_reason[:5]}"
            )

    if leak_check_labels is not None:
        other_map = read_label_file(leak_check_labels, tax)
        check_no_leak(set(label_map), set(other_map), train_source=source, test_source=str(leak_check_labels))

    index, ambiguous = index_videos(video_dir)
    report = PrepareReport()
    records = []
    for sample_id, label in label_map.items():
        if sample_id in ambiguous:
            report.ambiguous[sample_id] = [str(p) for p in ambiguous[sample_id]]
            continue
        video = index.get(sample_id)
        if video is None:
            report.missing.append(sample_id)
            continue
        records.append(build_record(sample_id, video, label, fmt, prompt, tax.name, reasons.get(sample_id)))
    problems = len(report.missing) + len(report.ambiguous)
    if problems and not allow_missing_videos:
        details = []
        if report.missing:
            details.append(f"{len(report.missing)} missing (e.g. {', '.join(report.missing[:5])})")
        if report.ambiguous:
            key = next(iter(report.ambiguous))
            details.append(f"{len(report.ambiguous)} ambiguous (e.g. {key}: {', '.join(report.ambiguous[key])})")
        raise ConfigError(
            f"videos for {source} under {video_dir}: {'; '.join(details)}. "
            f"Pass --allow-missing-videos to write the others."
        )
    if not records:
        raise ConfigError(f"no sample of {source} has a video under {video_dir}")
    if str(out).endswith(".jsonl"):
        write_jsonl(out, records)
    else:
        write_json(out, records)
    report.written = len(records)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser(
        "prepare",
        help="build SFT / GRPO / inference records",
        description="Build SFT / GRPO / inference records from a label file and a video folder.",
    )
    p.add_argument("--dataset", required=True, help="DFEW, MAFW, EMER, RAVDESS")
    p.add_argument("--video-dir", required=True, help="folder searched recursively for the clips")
    p.add_argument("--out", required=True, help="output .json (list) or .jsonl")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="grpo",
        help="sft: <think>reason</think><answer>label</answer> targets; grpo/infer: bare label",
    )
    src = p.add_argument_group("labels (one of)").add_mutually_exclusive_group()
    src.add_argument("--labels", help="a label file: DFEW csv, MAFW txt/xlsx, name-label txt, records json")
    src.add_argument(
        "--label-dir", help="the dataset's label folder; with --fold and --split (also checks train/test leakage)"
    )
    p.add_argument("--fold", type=int, help="1..5 (the paper reports fold 5; the field averages all 5)")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument(
        "--leak-check",
        dest="leak_check_labels",
        help="label file whose clips must not appear in this one (default with --label-dir: the other split)",
    )
    p.add_argument("--explanations", help="EMER-style csv with reasons (required for --format sft)")
    p.add_argument(
        "--emer-columns",
        nargs=3,
        metavar=("ID", "LABEL", "REASON"),
        default=("names", "emotions", "reasons"),
        help="column names of the explanations csv (default: EMER V1 gt-eng.csv)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--prompt", help="the instruction (default: the paper's task prompt)")
    group.add_argument("--prompt-file", help="read the instruction from a file")
    p.add_argument(
        "--allow-missing-videos",
        action="store_true",
        help="write the samples that have a video and list the others instead of failing",
    )
    return parser


def read_prompt_file(path: str) -> str:
    """The instruction text of `--prompt-file` (ConfigError naming the file if unusable)."""
    prompt = read_text_file(path, name=f"--prompt-file {path}", error=ConfigError).strip()
    if not prompt:
        raise ConfigError(f"--prompt-file {path}: the file is empty")
    return prompt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prompt = TASK_PROMPT
    if args.prompt is not None:
        prompt = args.prompt
    elif args.prompt_file is not None:
        prompt = read_prompt_file(args.prompt_file)
    report = prepare(
        dataset=args.dataset,
        video_dir=args.video_dir,
        out=args.out,
        fmt=args.fmt,
        labels=args.labels,
        label_dir=args.label_dir,
        fold=args.fold,
        split=args.split,
        leak_check_labels=args.leak_check_labels,
        prompt=prompt,
        explanations=args.explanations,
        allow_missing_videos=args.allow_missing_videos,
        emer_columns=tuple(args.emer_columns),
    )
    if report.missing:
        print(
            f"missing videos ({len(report.missing)}): {', '.join(report.missing[:20])}"
            + (" ..." if len(report.missing) > 20 else ""),
            file=sys.stderr,
        )
    for key, paths in list(report.ambiguous.items())[:20]:
        print(f"ambiguous video for {key}: {', '.join(paths)}", file=sys.stderr)
    print(f"{args.out}: {report.line()}")
    return 0
