"""What a resumed record was computed from: content hashes and the policy for changed inputs.

A resumable job skips the units an earlier run finished. Matching units by id alone is not
enough: the input behind an id can change between runs (an edited predictions file, a line
inserted at the top of a text file), and a skipped unit would then keep a result computed
from other content. So every record stores :data:`INPUT_HASH_KEY`, a hash of exactly what it
was computed from (the prompt sent to a judge, the text a verifier scored), and a resuming
job compares it with the hash of the current input:

- equal: the unit is done and skipped;
- different, or missing (a record of an older version, which cannot be checked): the record
  is *stale*. With ``on_changed="redo"`` (the default) the unit is computed again and the new
  record replaces the stale one when the file is compacted; with ``"refuse"`` the job stops
  before any work with a message naming the first stale record.

Who produced a record (the judge model, the verifier and its decision settings) is checked
file-wide by each job and refused on mismatch: two producers' results never share a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from erv.errors import ConfigError

INPUT_HASH_KEY = "input_hash"
ON_CHANGED = ("redo", "refuse")

Record = dict[str, Any]


def content_hash(*parts: object) -> str:
    """A stable hex digest of JSON-serialisable parts (sorted keys, no whitespace variation)."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def check_on_changed(policy: str) -> str:
    if policy not in ON_CHANGED:
        raise ConfigError(f"--on-changed must be one of {', '.join(ON_CHANGED)}, got {policy!r}")
    return policy


def is_current(record: Record, expected: str | None) -> bool:
    """Whether `record` was computed from the input whose hash is `expected`."""
    return expected is not None and record.get(INPUT_HASH_KEY) == expected


def succeeded(record: Record) -> bool:
    """Whether a job record holds a result (a failure stores its reason in `error`)."""
    return record.get("error") is None


def keep_record(chosen: dict[Hashable, Record], unit: Hashable, record: Record, expected: str | None) -> None:
    """Add one record of a resumed file to `chosen` (one record per unit, file order).

    A record computed from the current input beats a stale one; among records of the same
    standing the first success stands (later ones are leftovers of retries), else the latest
    failure.
    """
    previous = chosen.get(unit)
    if previous is None:
        chosen[unit] = record
        return
    before, now = is_current(previous, expected), is_current(record, expected)
    if before != now:
        if now:
            chosen[unit] = record
        return
    if not succeeded(previous):
        chosen[unit] = record


def stale_message(where: str, unit: object, what: str) -> str:
    """The refusal of ``on_changed="refuse"`` for the first stale record."""
    return (
        f"{where}: sample {unit!r} was computed from another {what} than the input now holds (or by an older "
        f"version that stored no input hash); pass --on-changed redo to compute it again, or use another --out"
    )


# ---------------------------------------------------------------- producers

FULL_HASH_LIMIT = 16 << 20
PIECES, PIECE_SIZE = 16, 64 << 10
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".txt", ".jinja", ".model", ".tiktoken")
_NOT_MODEL_FILES = {"trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}


def _hash_file(digest: Any, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as handle:
        if size <= FULL_HASH_LIMIT:
            digest.update(handle.read())
            return
        step = (size - PIECE_SIZE) // (PIECES - 1)
        for i in range(PIECES):
            handle.seek(i * step)
            digest.update(handle.read(PIECE_SIZE))


def folder_fingerprint(location: str | os.PathLike[str]) -> str:
    """A content fingerprint of a model folder: the files that define it (configs, tokenizer files,
    chat templates, weights), by content. Large files are hashed by their size and 16 evenly spaced
    64 KiB pieces: two checkpoints of one training run differ in every piece, and a 15 GB
    checkpoint costs a megabyte of reads instead of a minute. A hub id that is not a folder is its
    name. The folder's path is not part of it: a copied model is the same producer."""
    folder = Path(location)
    if not folder.is_dir():
        return "name:" + str(location)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix in _MODEL_FILE_SUFFIXES
        and p.name not in _NOT_MODEL_FILES
    )
    for path in files:
        try:
            _hash_file(digest, path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path} to fingerprint the model: {exc}") from exc
    return digest.hexdigest()[:32]
