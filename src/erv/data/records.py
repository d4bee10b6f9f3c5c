"""Typed records of the framework's files, validated on reading.

Formats (docs/reference.md, "Record files"):
- SFT: `{"video", "conversations": [{"from": "human", ...},
  {"from": "gpt", "value": "<think>…</think>\\n<answer>L</answer>"}]}`
- GRPO / inference: the same with the gpt value a bare label;
- predictions JSONL: `id`, `video`, `dataset`, `gold`, `response` (+ extra keys);
- judgments JSONL: `id`, `judge`, `explanation_emotion` (label or null), `raw`, `error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.data.ids import canonical_id
from erv.errors import RecordError, TaxonomyError
from erv.io.jsonl import PathLike, iter_json_records

# ---------------------------------------------------------------- typed records


def _require_str(record: dict[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    if key not in record:
        raise RecordError(f"{where}: missing required key {key!r}")
    value = record[key]
    if isinstance(value, int) and not isinstance(value, bool) and key == "id":
        value = str(value)
    if not isinstance(value, str):
        raise RecordError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RecordError(f"{where}: {key!r} is empty")
    return value


@dataclass
class Prediction:
    id: str
    gold: str
    response: str
    video: str | None = None
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    @property
    def failed(self) -> bool:
        """Inference recorded an error for this sample instead of a response (`error` set, `response` null)."""
        return self.extra.get("error") is not None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "video": self.video,
            "dataset": self.dataset,
            "gold": self.gold,
            "response": self.response,
        }
        out.update(self.extra)
        return out


@dataclass
class Judgment:
    id: str
    judge: str | None
    explanation_emotion: str | None
    raw: str | None
    error: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.explanation_emotion is not None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "judge": self.judge,
            "explanation_emotion": self.explanation_emotion,
            "raw": self.raw,
            "error": self.error,
        }
        out.update(self.extra)
        return out


_PREDICTION_KEYS = {"id", "video", "dataset", "gold", "response"}
_JUDGMENT_KEYS = {"id", "judge", "explanation_emotion", "raw", "error"}


def parse_prediction(record: dict[str, Any], where: str, taxonomy: Taxonomy | None = None) -> Prediction:
    pid = _require_str(record, "id", where)
    gold_raw = record.get("gold")
    if gold_raw is None:
        raise RecordError(f"{where}: missing required key 'gold' (sample {pid})")
    response = record.get("response")
    if response is None and record.get("error") is not None:
        response = ""  # a sample inference could not predict (erv infer records why); scored apart
    if response is None:
        raise RecordError(f"{where}: missing required key 'response' (sample {pid})")
    if not isinstance(response, str):
        raise RecordError(f"{where}: 'response' must be a string (sample {pid})")
    gold = str(gold_raw)
    dataset = record.get("dataset")
    if taxonomy is not None:
        check_dataset(dataset, taxonomy, where, pid)
    tax = taxonomy
    if tax is None and dataset:
        try:
            tax = get_taxonomy(dataset)
        except TaxonomyError as exc:
            raise RecordError(f"{where}: {exc} (sample {pid})") from None
    if tax is not None:
        label = normalize_label(gold, tax)
        if label == UNKNOWN:
            raise RecordError(
                f"{where}: gold label {gold!r} of sample {pid} is not {tax.a_label} ({tax.prompt_list()})"
            )
        gold = label
    extra = {k: v for k, v in record.items() if k not in _PREDICTION_KEYS}
    return Prediction(pid, gold, response, record.get("video"), dataset, extra, where)


def check_dataset(dataset: object, taxonomy: Taxonomy, where: str, sample: str, what: str = "sample") -> None:
    """A record that names its dataset must name the one this run scores (`--dataset`).

    MAFW's "happiness" normalises to DFEW's "happy", so records of another dataset would
    otherwise pass the label checks and be scored with the wrong emotion list.
    """
    if dataset in (None, ""):
        return
    try:
        name = get_taxonomy(str(dataset)).name
    except TaxonomyError as exc:
        raise RecordError(f"{where}: {what} {sample}: {exc}") from None
    if name != taxonomy.name:
        raise RecordError(f"{where}: {what} {sample} is from dataset {dataset!r}, but --dataset is {taxonomy.name}")


def read_predictions(path: PathLike, taxonomy: str | Taxonomy | None = None) -> list[Prediction]:
    """Read and validate a predictions file; duplicate ids, unknown gold labels and (given a
    taxonomy) records of another dataset are errors.

    Ids are compared by :func:`erv.data.ids.canonical_id`: `00025` and `25` name one sample,
    so both in one file is a duplicate.
    """
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    seen: dict[str, tuple[str, str]] = {}
    out: list[Prediction] = []
    for where, record in iter_json_records(path):
        pred = parse_prediction(record, where, tax)
        key = canonical_id(pred.id)
        if key in seen:
            first_id, first_where = seen[key]
            if first_id != pred.id:  # "00025" and "25": one clip, predicted twice
                raise RecordError(f"{where}: id {pred.id!r} is the same sample as {first_id!r} at {first_where}")
            raise RecordError(f"{where}: duplicate id {pred.id!r} (first seen at {first_where})")
        seen[key] = (pred.id, where)
        out.append(pred)
    if not out:
        raise RecordError(f"{path}: file holds no predictions")
    return out


def parse_judgment(record: dict[str, Any], where: str, taxonomy: Taxonomy | None = None) -> Judgment:
    jid = _require_str(record, "id", where)
    if taxonomy is not None:
        check_dataset(record.get("dataset"), taxonomy, where, jid, "judgment of sample")
    emotion = record.get("explanation_emotion")
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        error = str(error)
    if emotion is not None:
        if not isinstance(emotion, str):
            raise RecordError(f"{where}: 'explanation_emotion' must be a string or null (sample {jid})")
        if taxonomy is not None:
            label = normalize_label(emotion, taxonomy)
            if label == UNKNOWN:
                raise RecordError(
                    f"{where}: explanation_emotion {emotion!r} of sample {jid} is not {taxonomy.a_label}"
                )
            emotion = label
    extra = {k: v for k, v in record.items() if k not in _JUDGMENT_KEYS}
    raw = record.get("raw")
    return Judgment(jid, record.get("judge"), emotion, raw if raw is None else str(raw), error, extra, where)


def read_judgments(
    path: PathLike, taxonomy: str | Taxonomy | None = None, *, tolerate_torn_tail: bool = True
) -> dict[str, Judgment]:
    """Read a judgments file into `{canonical id: judgment}` (:func:`erv.data.ids.canonical_id`).

    A resumable judge appends a new record when it retries an id, so an id may appear more
    than once: a successful judgment supersedes failed ones, and among failures the last one
    wins. Two successful judgments of one id that disagree are an error (two runs were mixed).
    With a taxonomy, a record that names another dataset is an error.
    """
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    out: dict[str, Judgment] = {}
    for where, record in iter_json_records(path, tolerate_torn_tail=tolerate_torn_tail):
        judgment = parse_judgment(record, where, tax)
        key = canonical_id(judgment.id)
        previous = out.get(key)
        if previous is not None and previous.ok:
            if judgment.ok and judgment.explanation_emotion != previous.explanation_emotion:
                raise RecordError(
                    f"{where}: id {judgment.id!r} already judged {previous.explanation_emotion!r} at "
                    f"{previous.where}, now {judgment.explanation_emotion!r}; mixed runs?"
                )
            continue
        out[key] = judgment
    return out


# ---------------------------------------------------------------- SFT / GRPO records


def _conversation_turns(record: dict[str, Any], where: str) -> tuple[str, str]:
    conv = record.get("conversations")
    if not isinstance(conv, list) or len(conv) < 2:
        raise RecordError(f"{where}: 'conversations' must be a list with a human and a gpt turn")
    human = conv[0]
    gpt = conv[1]
    for turn, role in ((human, "human"), (gpt, "gpt")):
        if not isinstance(turn, dict) or turn.get("from") != role or not isinstance(turn.get("value"), str):
            raise RecordError(f"{where}: expected a {role!r} turn with a string 'value', got {turn!r:.100}")
    return human["value"], gpt["value"]


def validate_sft_record(record: dict[str, Any], where: str, taxonomy: str | Taxonomy | None = None) -> None:
    """An SFT record: video + human prompt + gpt `<think>…</think><answer>label</answer>`."""
    from erv.data.completions import extract_answer, extract_think

    _require_str(record, "video", where)
    _, answer_turn = _conversation_turns(record, where)
    think, answer = extract_think(answer_turn), extract_answer(answer_turn)
    if think is None or answer is None:
        raise RecordError(f"{where}: SFT target must hold <think>…</think> and <answer>…</answer>")
    if taxonomy is not None:
        tax = get_taxonomy(taxonomy)
        if normalize_label(answer, tax) == UNKNOWN:
            raise RecordError(f"{where}: SFT answer {answer!r} is not {tax.a_label}")


def validate_grpo_record(record: dict[str, Any], where: str, taxonomy: str | Taxonomy | None = None) -> str:
    """A GRPO/inference record (gpt value = bare label); returns the canonical label."""
    _require_str(record, "video", where)
    _, label = _conversation_turns(record, where)
    if taxonomy is None:
        return label.strip()
    tax = get_taxonomy(taxonomy)
    canonical = normalize_label(label, tax)
    if canonical == UNKNOWN:
        raise RecordError(f"{where}: label {label!r} is not {tax.a_label} ({tax.prompt_list()})")
    return canonical


def record_id(record: dict[str, Any]) -> str:
    """A sample id: an explicit `id`, else the video file's stem (what the paper's scripts use)."""
    if record.get("id") not in (None, ""):
        return str(record["id"])
    video = record.get("video")
    if isinstance(video, str) and video:
        return Path(video).stem
    raise RecordError("record has neither 'id' nor 'video'")
