"""erv.io.jsonl: the crash-safe appender and atomic writes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from erv.io.jsonl import JsonlAppender, iter_json_records, write_json


def _judgment(i, emotion="happy", error=None):
    return {"id": str(i), "judge": "m", "explanation_emotion": emotion, "raw": emotion, "error": error}


def test_appender_repairs_a_torn_tail_and_survives_kill(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(_judgment(1)) + "\n" + '{"id": "2", "ju')
    with pytest.warns(UserWarning, match="removing an incomplete last line"):
        app = JsonlAppender(path)
    with app:
        app.append(_judgment(3))
    assert [r["id"] for _, r in iter_json_records(path)] == ["1", "3"]
    # A process killed between appends leaves only whole lines behind.
    script = textwrap.dedent(f"""
        import os, signal
        from erv.io.jsonl import JsonlAppender
        app = JsonlAppender({str(tmp_path / "k.jsonl")!r})
        for i in range(50):
            app.append({{"id": str(i), "x": "y" * 1000}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], check=False)
    ids = [r["id"] for _, r in iter_json_records(tmp_path / "k.jsonl")]
    assert ids == [str(i) for i in range(50)]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "a" / "m.json", {"x": 1})
    assert os.listdir(tmp_path / "a") == ["m.json"]


def test_atomic_write_keeps_ordinary_permissions(tmp_path):
    write_json(tmp_path / "m.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "m.json").st_mode & 0o777 == 0o666 & ~umask
    os.chmod(tmp_path / "m.json", 0o640)
    write_json(tmp_path / "m.json", {"x": 2})
    assert os.stat(tmp_path / "m.json").st_mode & 0o777 == 0o640
