"""erv.io.jsonl: the crash-safe appender and atomic writes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from erv.errors import ConfigError, RecordError
from erv.io.jsonl import JsonlAppender, exclusive_output, iter_json_records, write_json
from tests.helpers.paths import subprocess_env


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


def test_lock_file_is_removed_when_the_job_ends(tmp_path):
    out = tmp_path / "J.jsonl"
    with exclusive_output(out, "erv judge"):
        assert (tmp_path / ".J.jsonl.lock").exists()
        with pytest.raises(ConfigError, match="another `erv judge` is writing"):
            with exclusive_output(out, "erv judge"):
                pass
    assert not (tmp_path / ".J.jsonl.lock").exists()
    with exclusive_output(out, "erv judge"):  # and the next job locks a fresh file
        assert (tmp_path / ".J.jsonl.lock").exists()
    assert os.listdir(tmp_path) == []


def test_a_lock_whose_file_was_removed_meanwhile_is_not_trusted(tmp_path):
    """A job that opened the lock file just before its holder removed it must lock the new file."""
    import fcntl

    out = tmp_path / "J.jsonl"
    lock = tmp_path / ".J.jsonl.lock"
    lock.write_text("")
    stale = open(lock, "a+")  # what a job that opened the file before the unlink holds
    lock.unlink()
    with exclusive_output(out, "erv judge"):
        fcntl.flock(stale.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # the unlinked file is free ...
        with pytest.raises(ConfigError, match="another"):  # ... but the live lock is held
            with exclusive_output(out, "erv judge"):
                pass
    stale.close()


def test_bom_and_folders(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_judgment(1)).encode() + b"\n")
    assert [r["id"] for _, r in iter_json_records(path)] == ["1"]  # Windows editors write a BOM
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([_judgment(2)]).encode())
    assert [r["id"] for _, r in iter_json_records(path)] == ["2"]
    with pytest.raises(RecordError, match="is a folder, expected a file"):
        list(iter_json_records(tmp_path))


def test_torn_tail_warning_is_one_plain_line(tmp_path):
    """Through the CLI a dropped torn line is reported as `erv ...: warning: ...`, no Python source line."""
    pred = tmp_path / "p.jsonl"
    judgments = tmp_path / "j.jsonl"
    judgments.write_text(json.dumps(_judgment(1, "sad")) + "\n" + '{"id": "2", "ju')
    pred.write_text(json.dumps({"id": "1", "gold": "sad", "response": "<answer>sad</answer>"}) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "erv.cli", "evaluate", "--predictions", str(pred), "--dataset", "DFEW"]
        + ["--judgments", str(judgments), "--bootstrap", "0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"erv evaluate: warning: {judgments}:2: ignoring an incomplete last line (interrupted write)"
    ]
