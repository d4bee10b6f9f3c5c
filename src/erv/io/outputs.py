"""Checks of output locations, made before a command does any work.

A command that computes for an hour and then cannot write its result — a read-only folder,
an `--out` under an existing file, an `--out` that is a folder — wastes the hour and, worse,
reports the failure with the name of an internal temporary file. So every command that
writes checks each output first, creating nothing: the path must not be (or, for a folder,
must be) a folder, no part of its parent may be a file, the nearest existing folder must
accept new files, and an existing file must be writable. An output that is also one of the
command's inputs is refused as well: writing it would destroy the input.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from erv.errors import ConfigError
from erv.io.jsonl import PathLike


def _nearest_existing(path: Path, what: str) -> Path:
    """The closest existing ancestor folder of `path`; ConfigError if an ancestor is a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} {path}: {parent} is a file, so nothing can be written under it")
            return parent
    return Path(path.anchor or ".")


def _check_can_create_in(folder: Path, path: Path, what: str) -> None:
    # os.access says "writable" to root on a read-only mount; creating a file is the real test.
    try:
        fd, probe = tempfile.mkstemp(prefix=".erv-write-check.", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: PathLike, what: str = "--out", *, inputs: Iterable[PathLike | None] = ()) -> Path:
    """Check that a file can be written at `path` (module doc); returns it as a Path."""
    path = Path(path).expanduser()
    if not str(path).strip():
        raise ConfigError(f"{what}: empty path")
    for source in inputs:
        if source is not None and (_same_file(path, Path(source)) or path.resolve() == Path(source).resolve()):
            raise ConfigError(f"{what} {path} is also an input of this command; write the output elsewhere")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file name")
    folder = _nearest_existing(path, what)
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{what} {path}: the file is not writable")
        folder = path.parent
    _check_can_create_in(folder, path, what)
    return path


def check_output_dir(path: PathLike, what: str = "--out") -> Path:
    """Check that `path` is a folder, or can be created as one, and accepts new files."""
    path = Path(path).expanduser()
    if not str(path).strip():
        raise ConfigError(f"{what}: empty path")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file; give a folder")
    folder = path if path.is_dir() else _nearest_existing(path, what)
    _check_can_create_in(folder, path, what)
    return path
