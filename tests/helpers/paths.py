"""Where the repository is, JSONL files, subprocess environments, scripts loaded by path, and a
folder no file can be created in (for the tests of unwritable outputs)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def write_records(path: Path, records: list[dict]) -> Path:
    """`records` as a JSONL file (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    """This checkout's sources first, one thread per process, offline; `extra` on top."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def load_script(path: Path) -> ModuleType:
    """A script of the repository (bench/, scripts/) imported from its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script_main(path: Path, argv: list[str]) -> int:
    """`main(argv)` of a benchmark script; the torch thread count it may change is restored."""
    import torch

    threads = torch.get_num_threads()
    try:
        return load_script(path).main(argv)
    finally:
        torch.set_num_threads(threads)


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
