"""bench/bench_infer.py runs (its seconds-long smoke mode), so the benchmark stays usable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_infer.py"


def test_bench_infer_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_infer", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--smoke", "--reps", "1", "--json", str(tmp_path / "out.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "speed-up:" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["mode"] == "smoke" and result["batch_size"] == 2 and result["clips"] == 4
    assert result["baseline_samples_s"] > 0 and result["batched_samples_s"] > 0 and result["speedup"] > 0
