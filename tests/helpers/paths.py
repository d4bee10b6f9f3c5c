"""A folder no file can be created in, for the tests of unwritable outputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def _can_create_in(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def unwritable_dir(tmp_path: Path) -> Path:
    """A read-only folder under `tmp_path`; as root (who may write anyway) /sys, which refuses new files."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if not _can_create_in(folder):
        return folder
    folder.chmod(0o755)
    if Path("/sys").is_dir() and not _can_create_in(Path("/sys")):
        return Path("/sys")
    pytest.skip("no unwritable folder available (root on a system with a writable /sys)")
