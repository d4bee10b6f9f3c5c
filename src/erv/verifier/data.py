"""Text–label data for the verifier: one sentence or explanation, one or more emotions.

The canonical file is JSONL, one `{"text": ..., "labels": [...]}` per line (extra keys such
as `id` and `source` are kept). Importers turn the public sources into it:

- EMER-style CSV (V1 `gt-eng.csv`: names / emotions / subtitles / reasons; V2 files with
  other column names are handled by naming the columns);
- MERR-fine (`MERR_fine_grained.json`: a dict keyed by sample id with `pseu_emotion` and
  `smp_reason_caption`);
- LLM-judge pseudo-label records (JSONL with `id`, `labels` or `explanation_emotion` /
  `raw`, and the explanation text, or a predictions file to take the `<think>` text from).

Every label goes through :mod:`erv.data.emotions`. A label the taxonomy does not know is an error
naming the file and line, unless the caller asks to drop such labels; then each dropped label
is counted and the counts are reported. Nothing is mapped to a nearby class.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.data.ids import canonical_id
from erv.data.records import read_predictions
from erv.errors import ConfigError, RecordError
from erv.io.jsonl import PathLike, iter_json_records, read_text_file, write_jsonl

FORMATS: tuple[str, ...] = ("auto", "jsonl", "emer", "merr", "judge")

# Column names tried, in order, when an EMER-style CSV does not name them explicitly.
EMER_TEXT_COLUMNS = ("reasons", "reason", "english", "description", "text")
EMER_LABEL_COLUMNS = ("emotions", "emotion", "labels", "label", "discrete")
EMER_ID_COLUMNS = ("names", "name", "id", "video", "sample")
# Keys that may hold the explanation in a judge pseudo-label record.
JUDGE_TEXT_KEYS = ("text", "explanation", "reason", "think")


@dataclass(frozen=True)
class TextExample:
    """One training/evaluation text with its canonical labels (taxonomy order not implied)."""

    text: str
    labels: tuple[str, ...]
    id: str | None = None
    source: str | None = None  # "file:line" it came from, for error messages and audits

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "labels": list(self.labels)}
        if self.id is not None:
            out["id"] = self.id
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass
class ImportReport:
    """What an import kept, dropped and skipped, so that nothing disappears silently."""

    kept: int = 0
    dropped_labels: Counter = field(default_factory=Counter)  # raw label text -> times dropped
    dropped_label_where: dict[str, str] = field(default_factory=dict)  # raw label -> first location
    dropped_examples: int = 0  # examples left with no label after dropping unknown ones
    skipped: Counter = field(default_factory=Counter)  # reason -> count (judge errors, no label, ...)

    def summary(self) -> str:
        parts = [f"kept {self.kept}"]
        if self.dropped_labels:
            labels = ", ".join(
                f"{k!r}×{v} (first at {self.dropped_label_where[k]})" for k, v in self.dropped_labels.most_common()
            )
            parts.append(f"dropped unknown labels {labels}")
            parts.append(f"dropped {self.dropped_examples} examples left without a label")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{v} ({k})" for k, v in sorted(self.skipped.items())))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "dropped_labels": dict(self.dropped_labels),
            "dropped_examples": self.dropped_examples,
            "skipped": dict(self.skipped),
        }


class LabelNormalizer:
    """Canonical labels of one taxonomy, with the unknown-label policy applied and counted."""

    def __init__(
        self, taxonomy: str | Taxonomy, *, drop_unknown: bool = False, report: ImportReport | None = None
    ) -> None:
        self.taxonomy = get_taxonomy(taxonomy)
        self.drop_unknown = drop_unknown
        self.report = report if report is not None else ImportReport()

    def __call__(self, raw_labels: object, where: str) -> tuple[str, ...]:
        """Normalise one example's labels; `()` means the example has no usable label."""
        out: list[str] = []
        for raw in split_label_field(raw_labels, where):
            label = normalize_label(raw, self.taxonomy)
            if label == UNKNOWN:
                if not self.drop_unknown:
                    raise RecordError(
                        f"{where}: label {raw!r} is not {self.taxonomy.a_label} "
                        f"({self.taxonomy.prompt_list()}); use --drop-unknown-labels to drop such "
                        f"labels (they are counted and reported)"
                    )
                key = str(raw).strip()
                self.report.dropped_labels[key] += 1
                self.report.dropped_label_where.setdefault(key, where)
                continue
            if label not in out:
                out.append(label)
        return tuple(out)


def split_label_field(value: object, where: str) -> list[str]:
    """A labels field as a list: a JSON list, or one string with comma-separated labels."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if not isinstance(item, str):
                raise RecordError(f"{where}: labels must be strings, got {item!r}")
            if item.strip():
                out.append(item.strip())
        return out
    raise RecordError(
        f"{where}: labels must be a list of strings or a comma-separated string, got {type(value).__name__}"
    )


def _require_text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise RecordError(f"{where}: {key!r} is empty")
    return text


def _example(
    norm: LabelNormalizer, text: str, raw_labels: object, where: str, example_id: str | None
) -> TextExample | None:
    labels = norm(raw_labels, where)
    if not labels:
        if norm.drop_unknown and split_label_field(raw_labels, where):
            norm.report.dropped_examples += 1
            return None
        raise RecordError(f"{where}: no label given")
    norm.report.kept += 1
    return TextExample(text, labels, example_id, where)


# ---------------------------------------------------------------- readers


def read_jsonl_examples(
    path: PathLike, norm: LabelNormalizer, *, text_key: str = "text", labels_key: str = "labels"
) -> list[TextExample]:
    """The canonical `{"text", "labels"}` file (JSONL or a JSON list); a file with no record is an error."""
    out = []
    records = 0
    for where, record in iter_json_records(path):
        records += 1
        if text_key not in record:
            raise RecordError(f"{where}: missing key {text_key!r}")
        if labels_key not in record:
            raise RecordError(f"{where}: missing key {labels_key!r}")
        text = _require_text(record[text_key], where, text_key)
        rid = record.get("id")
        ex = _example(norm, text, record[labels_key], where, None if rid is None else str(rid))
        if ex is not None:
            out.append(ex)
    if not records:
        raise RecordError(f"{path}: file holds no records")
    return out


def _pick_column(
    header: Sequence[str],
    explicit: str | None,
    candidates: Sequence[str],
    what: str,
    path: Path,
    *,
    required: bool = True,
) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    if explicit is not None:
        if explicit in header:
            return explicit
        if explicit.lower() in lowered:
            return lowered[explicit.lower()]
        raise RecordError(f"{path}: no column {explicit!r} (columns: {', '.join(header)})")
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    if required:
        raise RecordError(
            f"{path}: cannot tell which column holds the {what} (columns: {', '.join(header)}); name it explicitly"
        )
    return None


def read_emer_csv(
    path: PathLike,
    norm: LabelNormalizer,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
) -> list[TextExample]:
    """EMER-style CSV: a reason/description column and a (possibly multi-) label column."""
    path = Path(path)
    out = []
    rows = 0
    text = read_text_file(path)
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise RecordError(f"{path}: empty CSV file") from None
        tcol = _pick_column(header, text_column, EMER_TEXT_COLUMNS, "explanation text", path)
        lcol = _pick_column(header, label_column, EMER_LABEL_COLUMNS, "labels", path)
        icol = _pick_column(header, id_column, EMER_ID_COLUMNS, "sample id", path, required=False)
        index = {name: header.index(name) for name in (tcol, lcol, icol) if name is not None}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            if len(row) != len(header):
                raise RecordError(f"{where}: {len(row)} fields, the header has {len(header)}")
            text = _require_text(row[index[tcol]], where, tcol)
            ex = _example(norm, text, row[index[lcol]], where, row[index[icol]].strip() if icol else None)
            if ex is not None:
                out.append(ex)
    if rows == 0:
        raise RecordError(f"{path}: no data rows")
    return out


def read_merr_fine(
    path: PathLike, norm: LabelNormalizer, *, text_key: str = "smp_reason_caption", label_key: str = "pseu_emotion"
) -> list[TextExample]:
    """MERR-fine: `{sample_id: {"pseu_emotion": ..., "smp_reason_caption": ...}, ...}`."""
    path = Path(path)
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object keyed by sample id (MERR-fine), got {type(data).__name__}")
    out = []
    for sample_id, record in data.items():
        where = f"{path}[{sample_id!r}]"
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected an object")
        for key in (text_key, label_key):
            if key not in record:
                raise RecordError(f"{where}: missing key {key!r}")
        text = _require_text(record[text_key], where, text_key)
        ex = _example(norm, text, record[label_key], where, str(sample_id))
        if ex is not None:
            out.append(ex)
    return out


def read_judge_pseudo_labels(
    path: PathLike, norm: LabelNormalizer, *, predictions: PathLike | None = None, text_key: str | None = None
) -> list[TextExample]:
    """Judge pseudo-label records: labels from `labels`, else `explanation_emotion`, else `raw`.

    `raw` is parsed as the pseudo-label prompt asks the judge to answer: up to two emotion
    words separated by commas. Records with an `error` or without any label are skipped and
    counted (a failed judge call is not a label). The text is the record's own (`text`,
    `explanation`, `reason` or `think`, or `text_key`), else the `<think>` of the same id in
    `predictions`. A record with `labels: null` (what `erv verifier augment` writes for a
    reply outside the taxonomy) is skipped and counted; its `raw` is not parsed again.
    """
    from erv.data.completions import extract_think

    think_by_id: dict[str, str | None] = {}
    if predictions is not None:
        think_by_id = {canonical_id(p.id): extract_think(p.response) for p in read_predictions(predictions)}
    keys = (text_key,) if text_key else JUDGE_TEXT_KEYS
    out = []
    for where, record in iter_json_records(path, tolerate_torn_tail=True):
        rid = record.get("id")
        rid = None if rid is None else str(rid)
        if record.get("error"):
            norm.report.skipped["judge error"] += 1
            continue
        raw_labels: object
        if "labels" in record and record["labels"] is None:
            # `erv verifier augment` writes `labels: null` when the judge's reply names no valid
            # label set; its raw text was already parsed with the prompt's rules and refused.
            has_raw = isinstance(record.get("raw"), str) and record["raw"].strip()
            norm.report.skipped["judge reply outside the taxonomy" if has_raw else "no label"] += 1
            continue
        if record.get("labels") is not None:
            raw_labels = record["labels"]
        elif record.get("explanation_emotion") is not None:
            raw_labels = record["explanation_emotion"]
        elif isinstance(record.get("raw"), str) and record["raw"].strip():
            raw_labels = record["raw"].strip().rstrip(".")
        else:
            norm.report.skipped["no label"] += 1
            continue
        text: str | None = None
        for key in keys:
            if key in record and record[key] is not None:
                text = _require_text(record[key], where, key)
                break
        if text is None:
            if predictions is None:
                raise RecordError(
                    f"{where}: no explanation text (keys {', '.join(keys)}); pass the "
                    f"predictions file to take the <think> text from"
                )
            if rid is None or canonical_id(rid) not in think_by_id:
                raise RecordError(f"{where}: id {rid!r} is not in {predictions}")
            text = (think_by_id[canonical_id(rid)] or "").strip()
            if not text:
                norm.report.skipped["prediction without <think>"] += 1
                continue
        ex = _example(norm, text, raw_labels, where, rid)
        if ex is not None:
            out.append(ex)
    return out


def detect_format(path: PathLike) -> str:
    """Guess a file's format from its name and first record (the user can always name it)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "emer"
    text = read_text_file(path)
    head = text[:4096].lstrip()
    if head.startswith("["):  # a JSON list: look at its first record
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            return "jsonl"  # let the reader report the error with its location
        first = records[0] if isinstance(records, list) and records else None
        if (
            isinstance(first, dict)
            and not ({"text", "labels"} <= first.keys())
            and ({"explanation_emotion", "raw", "labels"} & first.keys())
        ):
            return "judge"
        if isinstance(first, dict) and {"text", "labels"} <= first.keys() and ({"raw", "error"} & first.keys()):
            return "judge"
        return "jsonl"
    if head.startswith("{"):
        first_line = head.split("\n", 1)[0]
        try:
            first = json.loads(first_line)
        except json.JSONDecodeError:
            return "merr"  # a multi-line JSON object: MERR-fine's dict
        if isinstance(first, dict) and "text" not in first and all(isinstance(v, dict) for v in first.values()):
            return "merr"
        if isinstance(first, dict) and "labels" in first and "text" in first:
            # `erv verifier augment` output carries the judge's `raw` reply and an `error` field.
            return "judge" if ({"raw", "error"} & first.keys()) else "jsonl"
        if isinstance(first, dict) and ({"explanation_emotion", "raw", "labels"} & first.keys()):
            return "judge"
        return "jsonl"
    return "jsonl"


def load_examples(
    path: PathLike,
    taxonomy: str | Taxonomy,
    *,
    fmt: str = "auto",
    drop_unknown: bool = False,
    report: ImportReport | None = None,
    predictions: PathLike | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
) -> list[TextExample]:
    """Read one file of any supported format into canonical examples of `taxonomy`."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kind = detect_format(path) if fmt == "auto" else fmt
    norm = LabelNormalizer(taxonomy, drop_unknown=drop_unknown, report=report)
    if kind == "emer":
        return read_emer_csv(path, norm, text_column=text_column, label_column=label_column, id_column=id_column)
    if kind == "merr":
        return read_merr_fine(
            path,
            norm,
            **({"text_key": text_column} if text_column else {}),
            **({"label_key": label_column} if label_column else {}),
        )
    if kind == "judge":
        return read_judge_pseudo_labels(path, norm, predictions=predictions, text_key=text_column)
    return read_jsonl_examples(path, norm, text_key=text_column or "text", labels_key=label_column or "labels")


def load_many(
    paths: Iterable[PathLike],
    taxonomy: str | Taxonomy,
    *,
    drop_unknown: bool = False,
    report: ImportReport | None = None,
    **kwargs: Any,
) -> list[TextExample]:
    report = report if report is not None else ImportReport()
    out: list[TextExample] = []
    for path in paths:
        out.extend(load_examples(path, taxonomy, drop_unknown=drop_unknown, report=report, **kwargs))
    return out


def write_examples(path: PathLike, examples: Iterable[TextExample]) -> None:
    write_jsonl(path, (ex.to_dict() for ex in examples))


# ---------------------------------------------------------------- counts and splits


def label_counts(examples: Iterable[TextExample], taxonomy: str | Taxonomy) -> dict[str, int]:
    """Examples per label, in the taxonomy's order (a multi-label example counts for each)."""
    tax = get_taxonomy(taxonomy)
    counts = Counter(label for ex in examples for label in ex.labels)
    return {label: counts.get(label, 0) for label in tax.labels}


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.items())


def train_eval_split(
    examples: Sequence[TextExample], eval_fraction: float, seed: int = 42
) -> tuple[list[TextExample], list[TextExample]]:
    """A seeded split, stratified by each text's rarest label, that never splits one text.

    Identical texts (MERR-fine and EMER overlap; judges see repeated explanations) go to the
    same side, so the evaluation never scores a sentence the model was trained on.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ConfigError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    by_text: dict[str, list[TextExample]] = defaultdict(list)
    for ex in examples:
        by_text[ex.text].append(ex)
    frequency = Counter(label for ex in examples for label in ex.labels)
    strata: dict[str, list[str]] = defaultdict(list)
    for text, group in by_text.items():
        labels = {label for ex in group for label in ex.labels}
        strata[min(sorted(labels), key=lambda lab: frequency[lab])].append(text)
    rng = random.Random(seed)
    eval_texts: set[str] = set()
    for key in sorted(strata):
        texts = strata[key]
        rng.shuffle(texts)
        n_eval = int(round(len(texts) * eval_fraction))
        if eval_fraction > 0 and n_eval == 0 and len(texts) >= 2:
            n_eval = 1
        n_eval = min(n_eval, max(len(texts) - 1, 0))
        eval_texts.update(texts[:n_eval])
    train = [ex for ex in examples if ex.text not in eval_texts]
    evaluation = [ex for ex in examples if ex.text in eval_texts]
    return train, evaluation


def iter_texts(path: PathLike, *, text_key: str = "text") -> Iterator[tuple[str, str | None, str]]:
    """`(location, id, text)` from a JSONL/JSON file with `text_key`, or a plain text file (one per line)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        for where, record in iter_json_records(path):
            if text_key not in record:
                raise RecordError(f"{where}: missing key {text_key!r}")
            value = record[text_key]
            if not isinstance(value, str):
                raise RecordError(f"{where}: {text_key!r} must be a string")
            rid = record.get("id")
            yield where, None if rid is None else str(rid), value
        return
    for number, line in enumerate(read_text_file(path).split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield f"{path}:{number}", None, line
