"""Reading, validating and writing the framework's record files.

Formats (paper-notes §1, design.md "Files"):
- SFT: `{"video", "conversations": [{"from": "human", ...}, {"from": "gpt", "value": "<think>…</think>\\n<answer>L</answer>"}]}`
- GRPO / inference: the same with the gpt value a bare label;
- predictions JSONL: `id`, `video`, `dataset`, `gold`, `response` (+ extra keys);
- judgments JSONL: `id`, `judge`, `explanation_emotion` (label or null), `raw`, `error`.

Every file may be a JSON list or JSONL. Errors name the file and line (for a JSON list, the
element index). Writes are atomic (temp file + rename); appends write one whole line per
record and fsync, so a killed job leaves at most one torn last line, which resuming readers
drop with a warning instead of failing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from erv.emotions import Taxonomy, get_taxonomy, normalize_label, UNKNOWN
from erv.errors import ConfigError, RecordError, TaxonomyError

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------- raw reading


def iter_json_records(path: PathLike, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(location, record)` from a JSON list or JSONL file.

    `location` is "file:line" for JSONL and "file[index]" for a JSON list. Blank lines are
    skipped. `tolerate_torn_tail` drops an unparseable *last* line that has no newline (what a
    killed writer leaves) with a warning; anywhere else a bad line is an error.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        for index, record in enumerate(data):
            where = f"{path}[{index}]"
            if not isinstance(record, dict):
                raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record
        return
    lines = text.split("\n")
    torn_tail = not text.endswith("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if tolerate_torn_tail and torn_tail and number == len(lines):
                warnings.warn(f"{where}: ignoring an incomplete last line (interrupted write)", stacklevel=2)
                return
            raise RecordError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, record


def read_json_records(path: PathLike, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    records = [r for _, r in iter_json_records(path)]
    if not records and not allow_empty:
        raise RecordError(f"{path}: file holds no records")
    return records


# ---------------------------------------------------------------- atomic writing


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; keep the mode an ordinary write would give (an existing
        # file's mode, else 0666 less the umask) so collaborators can read the results.
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def dumps_record(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def write_jsonl(path: PathLike, records: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    for record in records:
        buffer.write(dumps_record(record))
        buffer.write("\n")
    atomic_write_text(path, buffer.getvalue())


def write_json(path: PathLike, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def _after_last_newline(fd: int, size: int, chunk: int = 1 << 16) -> int:
    """Offset just past the last newline of the file (0 if none), reading backwards in chunks."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


@contextlib.contextmanager
def exclusive_output(out: PathLike, command: str) -> Iterator[None]:
    """Refuse a second job on the same output while this one runs (advisory lock file).

    Two resumable jobs appending to one file would each skip what the other has not yet
    written and duplicate records; the lock makes the second one stop with a clear message.
    """
    out = Path(out)
    lock_path = out.with_name(f".{out.name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            yield
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{out}: another `{command}` is writing this file (lock {lock_path}); "
                              f"wait for it or use another --out") from None
        yield
    finally:
        handle.close()


class JsonlAppender:
    """Append records to a JSONL file, one complete line per `os.write`, fsynced.

    Used by resumable jobs (judge, inference): after a crash every record already appended
    is whole, except possibly a torn last line. Opening an appender on such a file cuts the
    torn piece off (with a warning) so that the file is valid JSONL again; the record it
    belonged to was never complete and is redone by the resuming job.
    """

    def __init__(self, path: PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            keep = _after_last_newline(self._fd, size)
            warnings.warn(f"{self.path}: removing an incomplete last line left by an interrupted write "
                          f"({size - keep} bytes)", stacklevel=2)
            os.ftruncate(self._fd, keep)

    def append(self, record: dict[str, Any]) -> None:
        self.append_many([record])

    def append_many(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(dumps_record(r) + "\n" for r in records).encode("utf-8")
        if not data:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "video": self.video, "dataset": self.dataset, "gold": self.gold, "response": self.response}
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
        out = {"id": self.id, "judge": self.judge, "explanation_emotion": self.explanation_emotion,
               "raw": self.raw, "error": self.error}
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
    if response is None:
        raise RecordError(f"{where}: missing required key 'response' (sample {pid})")
    if not isinstance(response, str):
        raise RecordError(f"{where}: 'response' must be a string (sample {pid})")
    gold = str(gold_raw)
    dataset = record.get("dataset")
    tax = taxonomy
    if tax is None and dataset:
        try:
            tax = get_taxonomy(dataset)
        except TaxonomyError as exc:
            raise RecordError(f"{where}: {exc} (sample {pid})") from None
    if tax is not None:
        label = normalize_label(gold, tax)
        if label == UNKNOWN:
            raise RecordError(f"{where}: gold label {gold!r} of sample {pid} is not a {tax.name} label ({tax.prompt_list()})")
        gold = label
    extra = {k: v for k, v in record.items() if k not in _PREDICTION_KEYS}
    return Prediction(pid, gold, response, record.get("video"), dataset, extra, where)


def read_predictions(path: PathLike, taxonomy: str | Taxonomy | None = None) -> list[Prediction]:
    """Read and validate a predictions file; duplicate ids and unknown gold labels are errors."""
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    seen: dict[str, str] = {}
    out: list[Prediction] = []
    for where, record in iter_json_records(path):
        pred = parse_prediction(record, where, tax)
        if pred.id in seen:
            raise RecordError(f"{where}: duplicate id {pred.id!r} (first seen at {seen[pred.id]})")
        seen[pred.id] = where
        out.append(pred)
    if not out:
        raise RecordError(f"{path}: file holds no predictions")
    return out


def parse_judgment(record: dict[str, Any], where: str, taxonomy: Taxonomy | None = None) -> Judgment:
    jid = _require_str(record, "id", where)
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
                raise RecordError(f"{where}: explanation_emotion {emotion!r} of sample {jid} is not a {taxonomy.name} label")
            emotion = label
    extra = {k: v for k, v in record.items() if k not in _JUDGMENT_KEYS}
    raw = record.get("raw")
    return Judgment(jid, record.get("judge"), emotion, raw if raw is None else str(raw), error, extra, where)


def read_judgments(path: PathLike, taxonomy: str | Taxonomy | None = None, *,
                   tolerate_torn_tail: bool = True) -> dict[str, Judgment]:
    """Read a judgments file into `{id: judgment}`.

    A resumable judge appends a new record when it retries an id, so an id may appear more
    than once: a successful judgment supersedes failed ones, and among failures the last one
    wins. Two successful judgments of one id that disagree are an error (two runs were mixed).
    """
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    out: dict[str, Judgment] = {}
    for where, record in iter_json_records(path, tolerate_torn_tail=tolerate_torn_tail):
        judgment = parse_judgment(record, where, tax)
        previous = out.get(judgment.id)
        if previous is not None and previous.ok:
            if judgment.ok and judgment.explanation_emotion != previous.explanation_emotion:
                raise RecordError(
                    f"{where}: id {judgment.id!r} already judged {previous.explanation_emotion!r} at "
                    f"{previous.where}, now {judgment.explanation_emotion!r}; mixed runs?")
            continue
        out[judgment.id] = judgment
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
    from erv.completions import extract_answer, extract_think

    _require_str(record, "video", where)
    _, answer_turn = _conversation_turns(record, where)
    think, answer = extract_think(answer_turn), extract_answer(answer_turn)
    if think is None or answer is None:
        raise RecordError(f"{where}: SFT target must hold <think>…</think> and <answer>…</answer>")
    if taxonomy is not None:
        tax = get_taxonomy(taxonomy)
        if normalize_label(answer, tax) == UNKNOWN:
            raise RecordError(f"{where}: SFT answer {answer!r} is not a {tax.name} label")


def validate_grpo_record(record: dict[str, Any], where: str, taxonomy: str | Taxonomy | None = None) -> str:
    """A GRPO/inference record (gpt value = bare label); returns the canonical label."""
    _require_str(record, "video", where)
    _, label = _conversation_turns(record, where)
    if taxonomy is None:
        return label.strip()
    tax = get_taxonomy(taxonomy)
    canonical = normalize_label(label, tax)
    if canonical == UNKNOWN:
        raise RecordError(f"{where}: label {label!r} is not a {tax.name} label ({tax.prompt_list()})")
    return canonical


def record_id(record: dict[str, Any]) -> str:
    """A sample id: an explicit `id`, else the video file's stem (what the paper's scripts use)."""
    if record.get("id") not in (None, ""):
        return str(record["id"])
    video = record.get("video")
    if isinstance(video, str) and video:
        return Path(video).stem
    raise RecordError("record has neither 'id' nor 'video'")
