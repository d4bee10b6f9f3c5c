"""bench/bench_grpo.py runs end to end (tiny sizes, seconds) and reports both comparisons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_grpo_smoke(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_grpo.py"), "--smoke", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    step, loss = results["step"], results["loss"]
    assert step["reference"]["completions"] == step["erv"]["completions"] > 0
    assert set(step["erv"]["split"]) == {"generation", "rewards", "scoring", "loss"}
    assert loss["shared_prefix"]["positions_per_pass"] < loss["plain"]["positions_per_pass"]
    assert "erv / reference" in run.stdout and "shared / plain" in run.stdout
