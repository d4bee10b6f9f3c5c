"""erv.io.outputs: output locations are checked before any work, and the check creates nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from erv.errors import ConfigError
from erv.io.outputs import check_output_dir, check_output_file
from tests.helpers.paths import unwritable_dir


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_writable_file_location_passes_and_nothing_is_created(tmp_path):
    assert check_output_file(tmp_path / "new" / "deeper" / "out.jsonl") == tmp_path / "new" / "deeper" / "out.jsonl"
    (tmp_path / "old.json").write_text("{}")
    check_output_file(tmp_path / "old.json")
    check_output_dir(tmp_path / "plots")
    assert _listing(tmp_path) == ["old.json"]


def test_bad_file_locations_name_the_path(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"--out .*folder is a folder; give a file name"):
        check_output_file(tmp_path / "folder")
    with pytest.raises(ConfigError, match=r"--json .*file.txt/m.json: .*file.txt is a file"):
        check_output_file(tmp_path / "file.txt" / "m.json", "--json")
    with pytest.raises(ConfigError, match=r"--out .*file.txt is also an input"):
        check_output_file(Path(os.path.relpath(tmp_path / "file.txt")), inputs=[tmp_path / "file.txt"])
    with pytest.raises(ConfigError, match=r"--plots .*file.txt is a file; give a folder"):
        check_output_dir(tmp_path / "file.txt", "--plots")
    with pytest.raises(ConfigError, match=r"--plots .*file.txt/p: .*is a file"):
        check_output_dir(tmp_path / "file.txt" / "p", "--plots")


def test_unwritable_locations_are_refused(tmp_path):
    locked = unwritable_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot write in"):
        check_output_file(locked / "sub" / "out.jsonl")
    with pytest.raises(ConfigError, match=r"cannot write in"):
        check_output_dir(locked / "plots")
