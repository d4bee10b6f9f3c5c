"""Readers for the datasets' own label files, as the datasets ship them.

- DFEW: `single_{train,test}set_{fold}.csv` — a header row, then `video_id,label_id` with ids
  1..7 in DFEW's order (happy, sad, neutral, angry, surprise, disgust, fear).
- MAFW: `Train & Test Set/single/no_caption/set_{fold}/{train,test}.txt` — `clip.mp4 label_word`
  per line; and `Labels/single-set.xlsx` — column 0 the clip name, column 12 the label id.
- EMER: a CSV with a sample name, an emotion word and a reason (V1 `gt-eng.csv`:
  names, emotions, subtitles, reasons; V2 `final-EMER-reason.csv`: choose the columns).
- RAVDESS and custom lists: `name label` per line (word or 1-based id).

All readers return `{sample_id: canonical_label}` (plus reasons for EMER) and raise
:class:`LabelFileError` naming the file and line of anything they cannot read. Sample ids are
file stems; numeric ids are compared without leading zeros (DFEW's csv says `1`, its clips
may be named `00001.mp4`), see :func:`canonical_id`.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.data.ids import VIDEO_EXTENSIONS, canonical_id
from erv.errors import LabelFileError, TaxonomyError
from erv.io.jsonl import read_text_file

PathLike = str | os.PathLike[str]


def _label_from_cell(value: object, tax: Taxonomy, where: str) -> str:
    """A label given as the dataset's 1-based id or as a word."""
    if isinstance(value, bool) or value is None:
        raise LabelFileError(f"{where}: empty label")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        try:
            return tax.label_from_id(int(text))
        except TaxonomyError as exc:
            raise LabelFileError(f"{where}: {exc}") from None
    label = normalize_label(text, tax)
    if label == UNKNOWN:
        raise LabelFileError(f"{where}: {text!r} is not {tax.a_label} ({tax.prompt_list()})")
    return label


def _is_label_cell(value: object, tax: Taxonomy) -> bool:
    """Whether a cell is meant as a label: a number (a label id, right or wrong) or a label word."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    text = str(value).strip()
    return bool(re.fullmatch(r"[\d\s,;]+", text)) or normalize_label(text, tax) != UNKNOWN


def _looks_like_sample(value: object) -> bool:
    """Whether a cell is meant as a sample id: every dataset's clip names carry a digit or an extension."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    text = str(value or "").strip().lower()
    return any(ch.isdigit() for ch in text) or text.endswith(VIDEO_EXTENSIONS)


def _is_header(name: object, label: object, tax: Taxonomy) -> bool:
    """A header or title row: neither a label in the label cell nor a sample id in the name cell.

    A data row with a bad label (`00001.mp4 ... 12`, `angre`, `1,3`) has a sample id, so it is
    reported as an error instead of being skipped like a header.
    """
    return not _is_label_cell(label, tax) and not _looks_like_sample(name)


def _add(out: dict[str, str], sample: str, label: str, where: str, first_seen: dict[str, str]) -> None:
    key = canonical_id(sample)
    if not key:
        raise LabelFileError(f"{where}: empty sample id")
    if key in out:
        raise LabelFileError(f"{where}: sample {sample!r} listed twice (first at {first_seen[key]})")
    out[key] = label
    first_seen[key] = where


def _open_text(path: Path) -> str:
    return read_text_file(path, what="label file", error=LabelFileError)


def read_dfew_csv(path: PathLike, taxonomy: str | Taxonomy = "DFEW") -> dict[str, str]:
    """DFEW `single_*set_N.csv`: an optional header row, then `video_id,label_id`.

    The first row is a header only if it has neither a label nor a sample id (see
    :func:`_is_header`): a header-less file keeps its first sample, and a bad first data row
    is an error, not a header.
    """
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    rows = list(csv.reader(_open_text(path).splitlines()))
    for number, row in enumerate(rows, start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{path}:{number}"
        while len(row) > 2 and not row[-1].strip():
            row = row[:-1]  # trailing empty cells (a trailing comma)
        if number == 1 and _is_header(row[0], row[1] if len(row) > 1 else None, tax):
            continue
        if len(row) != 2:
            raise LabelFileError(f"{where}: expected 'video_id,label_id', got {','.join(row)!r}")
        _add(out, row[0], _label_from_cell(row[1], tax, where), where, seen)
    if not out:
        raise LabelFileError(f"{path}: no samples")
    return out


def read_name_label_txt(path: PathLike, taxonomy: str | Taxonomy) -> dict[str, str]:
    """`name label` per line (MAFW split files, RAVDESS lists); label = word or 1-based id."""
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for number, line in enumerate(_open_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise LabelFileError(f"{where}: expected 'clip label', got {line.strip()!r}")
        _add(out, parts[0], _label_from_cell(parts[1], tax, where), where, seen)
    if not out:
        raise LabelFileError(f"{path}: no samples")
    return out


def read_mafw_xlsx(
    path: PathLike, *, name_column: int = 0, label_column: int = 12, taxonomy: str | Taxonomy = "MAFW"
) -> dict[str, str]:
    """MAFW `single-set.xlsx`: column 0 = clip name, column 12 = label id (1..11).

    Title/header rows before the first sample are skipped: rows with neither a label nor a
    sample id (:func:`_is_header`). Any row with a sample id is data, so a bad label in the
    first data row is an error, as anywhere else. A compound label ("1,3") is an error here:
    the single-label set has none, and scoring a multi-label clip as single-label would be
    wrong.
    """
    from openpyxl import load_workbook

    path = Path(path)
    tax = get_taxonomy(taxonomy)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found")
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for non-xlsx input
        raise LabelFileError(f"{path}: cannot read as .xlsx ({exc})") from None
    sheet = book.worksheets[0]
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    started = False
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        if row is None or all(cell is None for cell in row):
            continue
        where = f"{path}:row {number}"
        name = row[name_column] if len(row) > name_column else None
        cell = row[label_column] if len(row) > label_column else None
        if not started and _is_header(name, cell, tax):
            continue  # title and header rows
        if name is None or cell is None or not str(cell).strip():
            raise LabelFileError(f"{where}: missing clip name or label (column {label_column})")
        try:
            label = _label_from_cell(cell, tax, where)
        except LabelFileError:
            if isinstance(cell, str) and "," in cell:
                raise LabelFileError(f"{where}: compound label {cell!r} in a single-label file") from None
            raise
        started = True
        _add(out, str(name), label, where, seen)
    book.close()
    if not out:
        raise LabelFileError(
            f"{path}: no samples found (clip name in column {name_column}, label in column {label_column})"
        )
    return out


@dataclass(frozen=True)
class ExplainedSample:
    id: str
    label: str
    reason: str
    subtitle: str | None = None


def read_emer_csv(
    path: PathLike,
    *,
    id_column: str = "names",
    label_column: str = "emotions",
    reason_column: str = "reasons",
    subtitle_column: str | None = "subtitles",
    taxonomy: str | Taxonomy = "EMER",
) -> list[ExplainedSample]:
    """EMER-style CSV with a header row; V1 `gt-eng.csv` column names are the defaults."""
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    reader = csv.DictReader(_open_text(path).splitlines(True))
    header = reader.fieldnames or []
    for column in (id_column, label_column, reason_column):
        if column not in header:
            raise LabelFileError(f"{path}: no column {column!r}; columns are {header}")
    out: list[ExplainedSample] = []
    seen: dict[str, str] = {}
    for index, row in enumerate(reader):
        where = f"{path}:{index + 2}"
        sample = (row.get(id_column) or "").strip()
        label = _label_from_cell(row.get(label_column), tax, where)
        reason = (row.get(reason_column) or "").strip()
        if not reason:
            raise LabelFileError(f"{where}: sample {sample!r} has an empty {reason_column!r}")
        key = canonical_id(sample)
        if not key:
            raise LabelFileError(f"{where}: empty {id_column!r}")
        if key in seen:
            raise LabelFileError(f"{where}: sample {sample!r} listed twice (first at {seen[key]})")
        seen[key] = where
        subtitle = (row.get(subtitle_column) or "").strip() if subtitle_column else None
        out.append(ExplainedSample(key, label, reason, subtitle or None))
    if not out:
        raise LabelFileError(f"{path}: no samples")
    return out


def read_label_file(path: PathLike, dataset: str | Taxonomy) -> dict[str, str]:
    """Read any supported label file by its extension: .csv (DFEW layout), .txt, .xlsx."""
    path = Path(path)
    tax = get_taxonomy(dataset)
    if path.is_dir():
        raise LabelFileError(f"{path}: is a folder, expected a label file")
    if not path.exists():
        raise LabelFileError(f"{path}: label file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_dfew_csv(path, tax)
    if suffix in (".txt", ".lst", ".tsv"):
        return read_name_label_txt(path, tax)
    if suffix in (".xlsx", ".xlsm"):
        return read_mafw_xlsx(path, taxonomy=tax)
    if suffix in (".json", ".jsonl"):
        return read_record_labels(path, tax)
    raise LabelFileError(f"{path}: unsupported label file type {suffix!r} (csv, txt, xlsx, json, jsonl)")


def read_record_labels(path: PathLike, taxonomy: str | Taxonomy) -> dict[str, str]:
    """Gold labels from GRPO/inference records or predictions (`erv data prepare` output)."""
    from erv.data.records import record_id
    from erv.io.jsonl import iter_json_records

    tax = get_taxonomy(taxonomy)
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for where, record in iter_json_records(path):
        if "gold" in record:
            raw = record["gold"]
        elif isinstance(record.get("conversations"), list) and len(record["conversations"]) > 1:
            from erv.data.completions import extract_answer

            value = record["conversations"][1].get("value", "")
            raw = extract_answer(value) or value
        else:
            raise LabelFileError(f"{where}: record has neither 'gold' nor a gpt turn")
        try:
            sample = record_id(record)
        except Exception as exc:
            raise LabelFileError(f"{where}: {exc}") from None
        _add(out, sample, _label_from_cell(raw, tax, where), where, seen)
    if not out:
        raise LabelFileError(f"{path}: no samples")
    return out


# ---------------------------------------------------------------- fold files


def _find_unique(root: Path, pattern: str, what: str) -> Path:
    direct = root / pattern
    if direct.is_file():
        return direct
    hits = sorted(p for p in root.rglob(pattern) if p.is_file())
    if not hits:
        raise LabelFileError(f"{root}: no {what} ({pattern}) found")
    if len(hits) > 1:
        raise LabelFileError(f"{root}: several {what} files match {pattern}: {', '.join(map(str, hits[:5]))}")
    return hits[0]


def fold_label_file(dataset: str, label_dir: PathLike, fold: int, split: str) -> Path:
    """The shipped label file of a DFEW/MAFW fold (1..5) and split ("train" | "test")."""
    tax = get_taxonomy(dataset)
    if fold not in (1, 2, 3, 4, 5):
        raise LabelFileError(f"fold must be 1..5, got {fold}")
    if split not in ("train", "test"):
        raise LabelFileError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(label_dir)
    if not root.is_dir():
        raise LabelFileError(f"{root}: label folder not found")
    if tax.name == "DFEW":
        return _find_unique(root, f"single_{split}set_{fold}.csv", f"DFEW fold {fold} {split} labels")
    if tax.name == "MAFW":
        hits = sorted(
            p for p in root.rglob(f"set_{fold}/{split}.txt") if "single" in p.parts and "compound" not in p.parts
        )
        no_caption = [p for p in hits if "no_caption" in p.parts]
        hits = no_caption or hits
        if len(hits) != 1:
            raise LabelFileError(f"{root}: expected one single/no_caption/set_{fold}/{split}.txt, found {len(hits)}")
        return hits[0]
    raise LabelFileError(f"{tax.name} has no fold files; pass --labels")
