"""Record files on disk: JSON-list or JSONL reading with file:line errors, atomic writes,
a crash-safe appender and an output lock.

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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, ErvError, ErvWarning, RecordError

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------- raw reading


def iter_json_records(path: PathLike, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(location, record)` from a JSON list or JSONL file.

    `location` is "file:line" for JSONL and "file[index]" for a JSON list. Blank lines are
    skipped. `tolerate_torn_tail` drops an unparseable *last* line that has no newline (what a
    killed writer leaves) with a warning; anywhere else a bad line is an error.
    """
    path = Path(path)
    text = read_text_file(path)
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
                message = f"{where}: ignoring an incomplete last line (interrupted write)"
                warnings.warn(message, ErvWarning, stacklevel=2)
                return
            raise RecordError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, record


def read_text_file(
    path: PathLike, *, what: str = "file", name: str | None = None, error: type[ErvError] = RecordError
) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped); otherwise `error`, naming it.

    `what` is the kind of file the messages mention ("label file"); `name` how they name it
    (default: its path; "--prompt-file PATH" for an option's file).
    """
    path = Path(path)
    name = str(path) if name is None else name
    if not path.exists():
        raise error(f"{name}: {what} not found")
    if path.is_dir():
        raise error(f"{name}: is a folder, expected a {what}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{name}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise error(f"{name}: cannot read ({exc.strerror or exc})") from None


def read_json_records(path: PathLike, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    records = [r for _, r in iter_json_records(path)]
    if not records and not allow_empty:
        raise RecordError(f"{path}: file holds no records")
    return records


# ---------------------------------------------------------------- atomic writing


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write here ({exc.strerror or exc})") from None
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
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, a folder where the file should go, ...
            raise ConfigError(f"{path}: cannot write ({exc.strerror or exc})") from None
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


def lock_path_of(out: PathLike) -> Path:
    """The lock file a job on `out` holds while it runs (removed when it ends)."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


@contextlib.contextmanager
def exclusive_output(out: PathLike, command: str) -> Iterator[None]:
    """Refuse a second job on the same output while this one runs (advisory lock file).

    Two resumable jobs appending to one file would each skip what the other has not yet
    written and duplicate records; the lock makes the second one stop with a clear message.
    The lock file is removed when the job ends; it is unlinked while still locked, and a job
    that locked a file that was unlinked meanwhile locks the new one instead, so two jobs can
    never both hold "the" lock.
    """
    out = Path(out)
    lock_path = lock_path_of(out)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no locking
        yield
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create its folder ({exc.strerror or exc})") from None
    while True:
        try:
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise ConfigError(f"{out}: cannot create the lock file {lock_path} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(
                f"{out}: another `{command}` is writing this file (lock {lock_path}); wait for it or use another --out"
            ) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the previous holder removed this file after we opened it: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)  # still holding the lock: nobody else can be using this file
        except OSError:
            pass
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
            warnings.warn(
                f"{self.path}: removing an incomplete last line left by an interrupted write ({size - keep} bytes)",
                ErvWarning,
                stacklevel=2,
            )
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

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
