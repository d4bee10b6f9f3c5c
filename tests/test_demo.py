"""`erv demo --quick`: every stage of the real pipeline runs and leaves its files."""

import json

import pytest

from erv.cli import main as erv_main
from erv.demo.pipeline import GRPO_RUNS, ROWS

STAGES = 8


@pytest.mark.slow
def test_quick_demo_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    assert erv_main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert f"[{STAGES}/{STAGES}] report: done" in printed and "wrote" in printed

    # 1. the world, through erv data prepare
    records = out / "data" / "records"
    sft = json.loads((records / "sft.json").read_text())
    assert sft and all(r["conversations"][1]["value"].startswith("<think>") for r in sft)
    assert json.loads((records / "grpo_train.json").read_text())
    test = (records / "test.jsonl").read_text().splitlines()
    assert (out / "data" / "label" / "single_testset_5.csv").is_file()
    assert (out / "models" / "release" / "checkpoint" / "model.safetensors").is_file()
    # 2-4. the trainers' checkpoints and logged histories
    assert (out / "runs" / "sft" / "model.safetensors").is_file()
    assert (out / "models" / "verifier" / "model.safetensors").is_file()
    for name in GRPO_RUNS:
        assert (out / "runs" / name / "model.safetensors").is_file()
        state = json.loads((out / "runs" / name / "trainer_state.json").read_text())
        assert state["global_step"] == 2
    erv_rewards = {k for entry in state["log_history"] for k in entry if k.startswith("rewards/")}
    assert "rewards/explanation_reward/mean" in erv_rewards
    baseline_log = json.loads((out / "runs" / "grpo_baseline" / "trainer_state.json").read_text())["log_history"]
    assert not any("explanation" in k for entry in baseline_log for k in entry)
    # 5-6. predictions and judgments of every row, one per test clip
    for name in ROWS:
        assert len((out / "predictions" / f"{name}.jsonl").read_text().splitlines()) == len(test)
        assert len((out / "judgments" / f"{name}.jsonl").read_text().splitlines()) == len(test)
        assert (out / "plots" / f"confusion_{name}.png").is_file()
    # 7-8. metrics and report
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["table"]) == set(ROWS)
    for row in metrics["table"].values():
        assert row["n"] == len(test) and 0.0 <= row["war"] <= 1.0 and "ci95" in row and "confusion" in row
    assert set(metrics["paired"]["differences"]) >= {"eea", "fcr", "epc", "war", "uar"}
    assert len(metrics["examples"]) == 3 and all(set(e["rows"]) == set(ROWS) for e in metrics["examples"])
    assert [t["stage"] for t in metrics["timings"]][-1] == "report" and len(metrics["timings"]) == STAGES
    report = (out / "report.md").read_text()
    for heading in ("## Miniature Table 1", "## ERV GRPO minus baseline GRPO", "## Reading the table", "## Stages"):
        assert heading in report
    assert "GPT-4.1-mini" in report
    for plot in ("sft_loss", "rewards_grpo_baseline", "rewards_grpo_erv"):
        assert f"(plots/{plot}.png)" in report and (out / "plots" / f"{plot}.png").is_file()
    assert not list(out.rglob(".*.lock"))  # the judge and inference locks are gone


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert erv_main(["demo", "--out", str(out), "--quick"]) == 2
    assert (out / "notes.txt").read_text() == "keep me"


def test_the_local_judge_reads_only_the_explanation_of_the_paper_prompt(tmp_path):
    from erv.data.emotions import DFEW
    from erv.demo.pipeline import VerifierJudge
    from erv.judge.prompts import explanation_emotion_prompt
    from erv.testing.synthetic_text import save_tiny_verifier, word_tokenizer

    tokenizer = word_tokenizer("the man is cheerful furious calm".split())
    judge = VerifierJudge(save_tiny_verifier(tmp_path / "v", tokenizer, DFEW.labels, seed=0))

    def body(text):
        return {"messages": [{"role": "user", "content": text}]}

    reply = judge(body(explanation_emotion_prompt("The man is cheerful.", "DFEW")))
    assert reply in DFEW.labels
    # the same explanation gives the same label, whatever else the request says
    labels, probs = judge.verifier.taxonomy_proba(["The man is cheerful."], "DFEW")
    assert reply == labels[int(probs[0].argmax())]
    assert judge(body("no reason given")) == "unsure"  # outside the label list: stored as unjudged


def test_report_examples_read_the_records_as_the_metrics_do(tmp_path):
    from erv.demo.report import examples

    def write(path, rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    base = {"video": "v.mp4", "dataset": "DFEW", "gold": "happy"}
    preds = write(
        tmp_path / "p.jsonl",
        [
            {**base, "id": "00001", "response": "<think>smiles.</think><answer>happy</answer>"},
            {**base, "id": "00002", "response": None, "error": "media file not found"},
        ],
    )
    judged = write(
        tmp_path / "j.jsonl",
        [
            {"id": "1", "judge": "m", "explanation_emotion": "happy", "raw": "happy", "error": None},
            {"id": "1", "judge": "m", "explanation_emotion": None, "raw": None, "error": "timeout"},  # a later retry
        ],
    )
    shown = examples({"sft": preds}, {"sft": judged}, ["1", "2", "3"])
    assert [e["gold"] for e in shown] == ["happy", "happy", None]
    assert shown[0]["rows"]["sft"] == {
        "response": "<think>smiles.</think><answer>happy</answer>",
        "explanation_emotion": "happy",
    }
    assert shown[1]["rows"]["sft"] == {"response": None, "explanation_emotion": None}
    assert shown[2]["rows"]["sft"] == {"response": None, "explanation_emotion": None}
