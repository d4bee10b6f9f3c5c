"""The import contracts in pyproject.toml hold, and they do catch a back-edge or a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -r requirements.txt)")
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    return subprocess.run(
        [str(exe), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.fixture
def copy_of_the_tree(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "src" / "erv", tmp_path / "src" / "erv", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_a_back_edge_breaks_the_layers(copy_of_the_tree: Path):
    add_import(copy_of_the_tree / "src/erv/io/jsonl.py", "import erv.demo  # a low stage reaching up")
    result = lint_imports(copy_of_the_tree)
    assert result.returncode != 0
    assert "Stages depend one way BROKEN" in result.stdout
    assert "erv.io.jsonl -> erv.demo" in result.stdout


def test_a_cycle_between_siblings_is_refused(copy_of_the_tree: Path):
    add_import(copy_of_the_tree / "src/erv/model/checkpoint.py", "from erv.model import modeling  # noqa")
    result = lint_imports(copy_of_the_tree)
    assert result.returncode != 0
    assert "No import cycles between sibling modules BROKEN" in result.stdout
