"""The SFT GPU benchmark runs its CPU smoke version where there is no CUDA (so the script stays tested)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from tests.train.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the script runs the real-size benchmark")
def test_bench_sft_cpu_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_sft_gpu", REPO / "bench" / "bench_sft_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--steps", "1", "--json", str(tmp_path / "out.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "CUDA is not available" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["preset"] == "humanomni-tiny" and [r["batch"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert row["step_s"] > 0 and row["samples_s"] > 0 and row["speedup_vs_batch_1"] > 0
