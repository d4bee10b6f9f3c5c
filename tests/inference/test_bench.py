"""bench/bench_infer.py runs (its seconds-long smoke mode), so the benchmark stays usable."""

from __future__ import annotations

import json

from tests.helpers.paths import REPO, run_script_main

BENCH = REPO / "bench" / "bench_infer.py"


def test_bench_infer_smoke(tmp_path, capsys):
    assert run_script_main(BENCH, ["--smoke", "--reps", "1", "--json", str(tmp_path / "out.json")]) == 0
    assert "speed-up:" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["mode"] == "smoke" and result["batch_size"] == 2 and result["clips"] == 4
    assert result["baseline_samples_s"] > 0 and result["batched_samples_s"] > 0 and result["speedup"] > 0
