"""`erv infer` under torchrun (2 CPU processes, gloo): the same predictions as one process, and a
SIGKILL mid-run followed by the same command ends with every clip exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from erv.cli import main as erv
from erv.inference.store import shard_dir
from tests.helpers.inference import record, run_command, torchrun
from tests.helpers.paths import REPO, read_jsonl, subprocess_env, write_records

SETTINGS = ["--max-new-tokens", "16", "--num-workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, clip_dir):
    """16 clips (8 videos under two ids each) and a corrupt one, in a shuffled order."""
    records = [record(f"{i:05d}", clip_dir / f"clip{i % 8}.mp4", i) for i in range(16)]
    records.insert(5, record("corrupt", clip_dir / "corrupt.mp4", 3))
    order = [11, 3, 0, 16, 7, 14, 1, 9, 5, 12, 2, 15, 8, 4, 13, 6, 10]
    return write_records(tmp_path_factory.mktemp("sharded") / "test_set_5.jsonl", [records[i] for i in order])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, release, data):
    """The records one process writes, in-process."""
    out = tmp_path_factory.mktemp("single") / "P.jsonl"
    assert erv(["infer", "--model", str(release), "--data", str(data), "--out", str(out), *SETTINGS]) == 0
    records = read_jsonl(out)
    assert len(records) == 17 and sum(r["error"] is not None for r in records) == 1
    return records


@pytest.mark.slow
def test_eval_shard_with_two_processes_gives_the_predictions_of_one(tmp_path, release, data, reference):
    env = dict(subprocess_env(), NPROC_PER_NODE="2")
    result = run_command(
        [
            "bash",
            str(REPO / "eval_shard.sh"),
            str(release),
            str(data),
            str(tmp_path / "out"),
            *SETTINGS,
            "--batch-size",
            "3",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done 16 / skipped 0 / failed 1" in result.stdout
    assert read_jsonl(tmp_path / "out" / "test_set_5.jsonl") == reference  # same text, order, ids, run id
    assert not shard_dir(tmp_path / "out" / "test_set_5.jsonl").exists()
    metrics = (tmp_path / "out" / "test_set_5.metrics.json").read_text()
    assert '"n": 16' in metrics and '"failed": 1' in metrics


def _written(folder) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("rank-*.jsonl"))


@pytest.mark.slow
def test_sigkill_mid_run_then_the_same_command_finishes_exactly(tmp_path, release, data, reference):
    out = tmp_path / "P.jsonl"
    command = torchrun(
        2, "--model", str(release), "--data", str(data), "--out", str(out), *SETTINGS, "--batch-size", "1"
    )
    proc = subprocess.Popen(
        command, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 180
    try:
        while _written(shard_dir(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun's agent and both workers, at once
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    partial = _written(shard_dir(out)) + (len(read_jsonl(out)) if out.exists() else 0)
    assert 3 <= partial < 17

    result = run_command(command)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    done, skipped, failed = (int(part.split()[-1]) for part in summary.split(" / "))
    assert done + failed + skipped == 17 and skipped >= 1 and failed == 1
    final = read_jsonl(out)
    assert [r["id"] for r in final] == [r["id"] for r in reference]  # every id exactly once, input order
    assert final == reference
