"""The SFT GPU benchmark runs its CPU smoke version where there is no CUDA (so the script stays tested)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers.paths import REPO, run_script_main


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the script runs the real-size benchmark")
def test_bench_sft_cpu_smoke(tmp_path, capsys):
    assert (
        run_script_main(REPO / "bench" / "bench_sft_gpu.py", ["--steps", "1", "--json", str(tmp_path / "out.json")])
        == 0
    )
    assert "CUDA is not available" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["preset"] == "humanomni-tiny" and [r["batch"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert row["step_s"] > 0 and row["samples_s"] > 0 and row["speedup_vs_batch_1"] > 0
