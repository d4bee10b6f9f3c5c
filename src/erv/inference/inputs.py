"""The inference record file (`erv data prepare --format infer`) as validated work items.

Everything that can be checked without decoding a video is checked here, before a model is
loaded, with the file and line of the record: the JSON itself, an id (explicit, else the
video's stem as the paper's scripts use), a video path, an instruction, a gold label of the
dataset's taxonomy, and unique ids. Each item carries a hash of its record, which the output
records repeat: a resumed run redoes a clip whose record changed instead of keeping a
prediction made for other input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erv.data.emotions import UNKNOWN, get_taxonomy, normalize_label
from erv.data.records import record_id
from erv.errors import RecordError, TaxonomyError
from erv.io.identity import content_hash
from erv.io.jsonl import PathLike, iter_json_records
from erv.model.dataset import record_instruction


@dataclass(frozen=True)
class InferenceItem:
    """One clip to predict, in input order (`index`)."""

    index: int
    id: str
    video: str
    dataset: str | None
    gold: str
    record: dict[str, Any]
    input_hash: str


def _gold(record: dict[str, Any], where: str) -> str:
    if record.get("gold") is not None:
        return str(record["gold"])
    for key in ("solution", "answer"):
        if isinstance(record.get(key), str) and record[key].strip():
            return record[key]
    turns = record.get("conversations")
    if isinstance(turns, list):
        for turn in turns[1:]:
            if isinstance(turn, dict) and turn.get("from") == "gpt" and isinstance(turn.get("value"), str):
                return turn["value"]
    raise RecordError(f"{where}: no gold label (expected 'gold', 'solution' or a gpt turn in 'conversations')")


def _dataset_name(record: dict[str, Any], default: str | None, where: str) -> str | None:
    name = record.get("dataset") or default
    if name is None:
        return None
    try:
        canonical = get_taxonomy(str(name)).name
    except TaxonomyError as exc:
        raise RecordError(f"{where}: {exc}") from None
    if default is not None and canonical != get_taxonomy(default).name:
        raise RecordError(f"{where}: record is from dataset {name!r}, but --dataset is {default}")
    return canonical


def read_inference_items(path: PathLike, *, dataset: str | None = None) -> list[InferenceItem]:
    """Validated items of a JSON-list or JSONL record file (module doc); errors name file:line."""
    items: list[InferenceItem] = []
    seen: dict[str, str] = {}
    for where, record in iter_json_records(path):
        try:
            sample_id = record_id(record)
        except RecordError as exc:
            raise RecordError(f"{where}: {exc}") from None
        video = record.get("video")
        if not isinstance(video, str) or not video.strip():
            raise RecordError(f"{where}: sample {sample_id} has no 'video' path")
        record_instruction(record, where=where)
        name = _dataset_name(record, dataset, where)
        gold = _gold(record, where).strip()
        if gold.startswith("<answer>") and gold.endswith("</answer>"):
            gold = gold[len("<answer>") : -len("</answer>")].strip()
        if name is not None:
            label = normalize_label(gold, get_taxonomy(name))
            if label == UNKNOWN:
                raise RecordError(f"{where}: gold label {gold!r} of sample {sample_id} is not a {name} label")
            gold = label
        if sample_id in seen:
            raise RecordError(f"{where}: duplicate id {sample_id!r} (first at {seen[sample_id]})")
        seen[sample_id] = where
        item = InferenceItem(len(items), sample_id, video, name, gold, dict(record), content_hash(record))
        items.append(item)
    if not items:
        raise RecordError(f"{path}: file holds no records")
    return items
