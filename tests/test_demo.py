"""`erv demo` end to end: every stage runs offline and the report says what it measured."""

import json

import pytest

from erv.cli import main as erv_main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert erv_main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[7/7] report: done" in printed and "wrote" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert "## Evaluation" in report and "coherent" in report
    # the real model path ran on every clip; a random model's answers are unknown, never neutral
    tiny = metrics["evaluation"]["tiny-model"]
    assert metrics["tiny_model"]["samples"] == tiny["n"] == 21
    assert tiny["unknown"] == 21 and tiny["confusion"]["neutral"]["neutral"] == 0
    # the verifier really learned; the ERV reward and the judge both see the coherence difference
    assert metrics["verifier"]["held_out_macro_f1"] >= 0.9
    rewards, ev = metrics["rewards"], metrics["evaluation"]
    assert rewards["coherent"]["explanation (ERV)"] > rewards["answer-only"]["explanation (ERV)"] + 0.2
    assert ev["coherent"]["epc"] > ev["answer-only"]["epc"] + 0.3
    assert ev["coherent"]["war"] == ev["answer-only"]["war"] and ev["coherent"]["uar"] == ev["answer-only"]["uar"]
    assert rewards["coherent"]["accuracy"] == rewards["answer-only"]["accuracy"]
    assert not list(out.rglob(".*.lock"))  # the judge runs' locks are removed when they end
    for name in ("tiny-model", "answer-only", "coherent"):
        assert (out / f"judgments_{name}.jsonl").exists()
        assert (out / "plots" / f"confusion_predictions_{name}.png").exists()
