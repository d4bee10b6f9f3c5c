"""The GPU benchmark script runs its CPU smoke version where there is no CUDA (so the script stays tested)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers.paths import REPO, run_script_main

BENCH = REPO / "bench" / "bench_model_gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the script runs the real-size benchmark")
def test_bench_cpu_smoke(tmp_path, capsys):
    assert run_script_main(BENCH, ["--reps", "1", "--json", str(tmp_path / "out.json")]) == 0
    assert "CUDA is not available" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["preset"] == "humanomni-tiny" and [r["batch"] for r in result["rows"]] == [1, 4]
    for row in result["rows"]:
        assert row["forward_samples_s"] > 0 and row["generate_tokens_s"] > 0 and row["generate_speedup"] > 0
