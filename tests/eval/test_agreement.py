"""`erv judge agreement`: agreement, Cohen's kappa and the EEA/EPC/FCR each judge implies."""

from __future__ import annotations

import json

import pytest

from erv.cli import main as erv_main
from erv.data.emotions import get_taxonomy
from erv.errors import RecordError
from erv.eval.agreement import _coherence, agreement_report, cohen_kappa


def test_kappa_matches_a_hand_computed_table():
    # 2x2 table [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    a = ["x"] * 25 + ["y"] * 25
    b = ["x"] * 20 + ["y"] * 5 + ["x"] * 10 + ["y"] * 15
    assert cohen_kappa(a, b, ["x", "y", "z"]) == pytest.approx(0.4)
    assert cohen_kappa(a, a, ["x", "y"]) == pytest.approx(1.0)
    assert cohen_kappa(["x"] * 4, ["x"] * 4, ["x", "y"]) is None  # chance agreement 1: undefined
    assert cohen_kappa([], [], ["x"]) is None


def test_coherence_definitions():
    # (gold, predicted answer, explanation emotion)
    samples = [
        ("sad", "sad", "sad"),
        ("sad", "angry", "angry"),
        ("sad", "unknown", "sad"),
        ("happy", "sad", "neutral"),
    ]
    m = _coherence(samples, get_taxonomy("DFEW"))
    assert m["eea"] == pytest.approx(2 / 4)  # e = g
    assert m["epc"] == pytest.approx(2 / 4)  # e = p; an unknown answer matches nothing
    assert m["fcr"] == pytest.approx(1 / 4)  # e = p = g
    assert m["fcr_given_correct"] == pytest.approx((1 / 4) / (1 / 4))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def files(tmp_path):
    preds = []
    golds = ["sad", "sad", "happy", "angry", "neutral", "fear"]
    answers = ["sad", "angry", "happy", "angry", "garbled", "fear"]
    for i, (g, p) in enumerate(zip(golds, answers, strict=True)):
        preds.append({"id": f"s{i}", "gold": g, "response": f"<think>t{i}</think><answer>{p}</answer>"})
    _write(tmp_path / "P.jsonl", preds)

    def judgment(i, label, judge, error=None, raw=None):
        return {"id": f"s{i}", "judge": judge, "explanation_emotion": label, "raw": raw or label, "error": error}

    a = [
        judgment(0, "sad", "gpt"),
        judgment(1, "angry", "gpt"),
        judgment(2, "happy", "gpt"),
        judgment(3, "sad", "gpt"),
        judgment(4, None, "gpt", raw="confusion"),
        judgment(5, "fear", "gpt"),
    ]
    b = [
        judgment(0, "sad", "gem"),
        judgment(1, "sad", "gem"),
        judgment(2, "happy", "gem"),
        judgment(3, "angry", "gem"),
        judgment(4, "neutral", "gem"),
        judgment(5, None, "gem", error="HTTP 500"),
    ]
    _write(tmp_path / "A.jsonl", a)
    _write(tmp_path / "B.jsonl", b)
    return tmp_path


def test_report_counts_excluded_samples_and_metrics(files):
    report = agreement_report([files / "A.jsonl", files / "B.jsonl"], files / "P.jsonl", "DFEW")
    ja, jb = report["judges"]
    assert (ja["judged"], ja["unjudged"], jb["judged"], jb["unjudged"]) == (5, 1, 5, 1)
    # judge A on its 5 judged samples (s0..s3, s5): e=g for s0, s2, s5; e=p for s0, s1, s2, s5; e=p=g for s0, s2, s5
    assert (ja["eea"], ja["epc"], ja["fcr"]) == pytest.approx((3 / 5, 4 / 5, 3 / 5))
    # judge B on s0..s4: e=g for all five; e=p for s0, s2, s3 (s4's answer is unknown); e=p=g for s0, s2, s3
    assert (jb["eea"], jb["epc"], jb["fcr"]) == pytest.approx((5 / 5, 3 / 5, 3 / 5))
    [pair] = report["pairs"]
    assert pair["both_judged"] == 4
    assert pair["excluded"] == {"unjudged_by_a_only": 1, "unjudged_by_b_only": 1, "unjudged_by_both": 0}
    assert pair["agreement"] == pytest.approx(2 / 4)
    # both-judged labels: A = sad, angry, happy, sad; B = sad, sad, happy, angry
    p_e = (2 * 2 + 1 * 1 + 1 * 1) / 16
    assert pair["kappa"] == pytest.approx((0.5 - p_e) / (1 - p_e))
    assert pair["confusion"] == {"sad": {"sad": 1, "angry": 1}, "angry": {"sad": 1}, "happy": {"happy": 1}}
    on_a, on_b = pair["on_both_judged"]
    assert on_a["eea"] == pytest.approx(2 / 4) and on_b["eea"] == pytest.approx(4 / 4)


def test_cli_prints_a_table_and_writes_json(files, capsys):
    rc = erv_main(
        [
            "judge",
            "agreement",
            str(files / "A.jsonl"),
            str(files / "B.jsonl"),
            "--predictions",
            str(files / "P.jsonl"),
            "--dataset",
            "DFEW",
            "--json",
            str(files / "agree.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "A vs B: agreement 50.00%" in out and "Cohen's kappa" in out
    assert "(gpt)" in out and "(gem)" in out
    report = json.loads((files / "agree.json").read_text())
    assert report["pairs"][0]["both_judged"] == 4


def test_three_judges_give_three_pairs(files):
    report = agreement_report([files / "A.jsonl", files / "B.jsonl", files / "A.jsonl"], files / "P.jsonl", "DFEW")
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [(0, 1), (0, 2), (1, 2)]
    assert report["pairs"][1]["agreement"] == 1.0 and report["pairs"][1]["kappa"] == pytest.approx(1.0)


def test_judgments_of_other_samples_are_an_error(files, capsys):
    _write(files / "C.jsonl", [{"id": "zzz", "judge": "x", "explanation_emotion": "sad", "raw": "sad", "error": None}])
    with pytest.raises(RecordError, match="not in the predictions"):
        agreement_report([files / "A.jsonl", files / "C.jsonl"], files / "P.jsonl", "DFEW")
    assert (
        erv_main(
            [
                "judge",
                "agreement",
                str(files / "A.jsonl"),
                "--predictions",
                str(files / "P.jsonl"),
                "--dataset",
                "DFEW",
            ]
        )
        == 2
    )
    assert "at least two" in capsys.readouterr().err


def test_judgments_of_another_dataset_are_refused(files):
    rows = [json.loads(line) for line in (files / "B.jsonl").read_text().splitlines()]
    _write(files / "M.jsonl", [dict(r, dataset="MAFW") for r in rows])
    with pytest.raises(RecordError, match="is from dataset 'MAFW', but --dataset is DFEW"):
        agreement_report([files / "A.jsonl", files / "M.jsonl"], files / "P.jsonl", "DFEW")


def test_ids_match_by_the_one_rule(tmp_path):
    _write(
        tmp_path / "P.jsonl", [{"id": f"000{i}", "gold": "sad", "response": "<answer>sad</answer>"} for i in (1, 2)]
    )
    for name, label in (("A", "sad"), ("B", "angry")):
        rows = [
            {"id": str(i), "judge": name, "explanation_emotion": label, "raw": label, "error": None} for i in (1, 2)
        ]
        _write(tmp_path / f"{name}.jsonl", rows)
    report = agreement_report([tmp_path / "A.jsonl", tmp_path / "B.jsonl"], tmp_path / "P.jsonl", "DFEW")
    assert [j["judged"] for j in report["judges"]] == [2, 2] and report["pairs"][0]["agreement"] == 0.0
