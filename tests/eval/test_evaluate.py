import json
import subprocess
import sys
from pathlib import Path

import pytest

from erv.cli import main as erv_main
from erv.io.jsonl import write_jsonl

REPO = Path(__file__).resolve().parents[2]


def pred(i, gold, answer, think="He smiles.", dataset="DFEW"):
    response = f"<think>{think}</think>\n<answer>{answer}</answer>" if answer is not None else think
    return {"id": str(i), "video": f"/data/{i}.mp4", "dataset": dataset, "gold": gold, "response": response}


def judgment(i, emotion, error=None):
    return {
        "id": str(i),
        "judge": "gpt-4.1-mini",
        "explanation_emotion": emotion,
        "raw": emotion or "???",
        "error": error,
    }


@pytest.fixture()
def files(tmp_path):
    preds = [
        pred(1, "happy", "Happy"),
        pred(2, "sad", "sadness"),
        pred(3, "neutral", "calm"),
        pred(4, "angry", None),
        pred(5, "fear", "fear"),
    ]
    judg = [
        judgment(1, "happy"),
        judgment(2, "angry"),
        judgment(3, None, "HTTP 500 after 3 retries"),
        judgment(5, "fear"),
    ]  # 4 has no judgment at all
    write_jsonl(tmp_path / "p.jsonl", preds)
    write_jsonl(tmp_path / "j.jsonl", judg)
    (tmp_path / "labels.csv").write_text(
        "video_name,label\n" + "\n".join(f"{i},{g}" for i, g in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 7))) + "\n"
    )
    return tmp_path


def run(args, capsys):
    code = erv_main(["evaluate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract(files, capsys):
    code, out, _ = run(
        [
            "--predictions",
            files / "p.jsonl",
            "--dataset",
            "dfew",
            "--judgments",
            files / "j.jsonl",
            "--json",
            files / "m.json",
            "--plots",
            files / "plots",
            "--report",
            files / "r.md",
            "--bootstrap",
            "200",
        ],
        capsys,
    )
    assert code == 0
    m = json.loads((files / "m.json").read_text())
    assert m["n"] == 5 and m["unknown"] == 2  # "calm" is no DFEW label, 4 has no answer
    assert m["war"] == pytest.approx(3 / 5)
    assert m["uar"] == pytest.approx(3 / 5)  # five classes present, recall 1,1,0,0,1
    assert m["confusion"]["neutral"]["unknown"] == 1 and m["confusion"]["neutral"]["neutral"] == 0  # never neutral
    assert (m["judged"], m["unjudged"]) == (3, 2)
    assert m["eea"] == pytest.approx(2 / 3) and m["epc"] == pytest.approx(2 / 3) and m["fcr"] == pytest.approx(2 / 3)
    assert m["fcr_given_correct"] == pytest.approx(2 / 3)
    for key in ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct"):
        low, high = m["ci95"][key]
        assert 0 <= low <= m[key] <= high <= 1
    assert sorted(m["unknown_ids"]) == ["3", "4"]
    assert "WAR" in out and "FCR" in out and "unknown" in out
    assert (files / "plots" / "confusion_p.png").stat().st_size > 1000
    assert "| p.jsonl | 5 | 2 |" in (files / "r.md").read_text()


def test_malformed_line(files, capsys):
    (files / "p.jsonl").write_text((files / "p.jsonl").read_text() + "{oops\n")
    code, _, err = run(["--predictions", files / "p.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "p.jsonl:6: invalid JSON" in err


def test_duplicate_id(files, capsys):
    write_jsonl(files / "d.jsonl", [pred(1, "happy", "happy"), pred(1, "sad", "sad")])
    code, _, err = run(["--predictions", files / "d.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "duplicate id '1'" in err


def test_unknown_gold(files, capsys):
    write_jsonl(files / "g.jsonl", [pred(1, "contempt", "happy")])
    code, _, err = run(["--predictions", files / "g.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "gold label 'contempt' of sample 1 is not a DFEW label" in err


def test_empty_file(files, capsys):
    (files / "e.jsonl").write_text("\n")
    code, _, err = run(["--predictions", files / "e.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "holds no predictions" in err


def test_dataset_mismatch(files, capsys):
    write_jsonl(files / "x.jsonl", [pred(1, "anger", "anger", dataset="MAFW")])
    code, _, err = run(["--predictions", files / "x.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "from dataset 'MAFW', but --dataset is DFEW" in err


def test_missing_ids_against_labels(files, capsys):
    labels = files / "labels.csv"
    labels.write_text(labels.read_text() + "6,1\n")  # labelled, never predicted
    write_jsonl(
        files / "p2.jsonl",
        [
            *map(
                lambda r: r,
                [
                    pred(1, "happy", "happy"),
                    pred(2, "sad", "sad"),
                    pred(3, "neutral", "neutral"),
                    pred(4, "angry", "angry"),
                    pred(5, "fear", "fear"),
                    pred(99, "sad", "sad"),
                ],
            )
        ],
    )
    args = ["--predictions", files / "p2.jsonl", "--dataset", "DFEW", "--labels", labels, "--json", files / "m.json"]
    code, _, err = run(args, capsys)
    assert code == 2
    assert "1 predictions with no label: 99" in err and "1 labelled samples with no prediction: 6" in err
    code, _, err = run(args + ["--allow-missing"], capsys)
    assert code == 0 and "warning:" in err and "(excluded)" in err
    m = json.loads((files / "m.json").read_text())
    assert m["n"] == 5 and m["war"] == 1.0
    assert m["excluded"]["labels_without_prediction"] == ["6"] and m["excluded"]["predictions_without_label"] == ["99"]


def test_gold_disagreeing_with_label_file(files, capsys):
    labels = files / "labels.csv"
    labels.write_text(labels.read_text().replace("5,7", "5,6"))
    code, _, err = run(["--predictions", files / "p.jsonl", "--dataset", "DFEW", "--labels", labels], capsys)
    assert code == 2 and "sample 5 has gold 'fear' but" in err and "says 'disgust'" in err


def test_judgments_for_unknown_ids(files, capsys):
    write_jsonl(files / "j2.jsonl", [judgment(1, "happy"), judgment(42, "sad")])
    args = ["--predictions", files / "p.jsonl", "--dataset", "DFEW", "--judgments", files / "j2.jsonl"]
    code, _, err = run(args, capsys)
    assert code == 2 and "1 judgments with no prediction: 42" in err
    assert run(args + ["--allow-missing", "--bootstrap", "0"], capsys)[0] == 0


def test_several_folds(files, capsys):
    write_jsonl(files / "f1.jsonl", [pred(1, "happy", "happy"), pred(2, "sad", "happy")])
    write_jsonl(files / "f2.jsonl", [pred(3, "happy", "happy"), pred(4, "sad", "sad")])
    write_jsonl(files / "j1.jsonl", [judgment(1, "happy"), judgment(2, "sad")])
    write_jsonl(files / "j2.jsonl", [judgment(3, "happy"), judgment(4, "happy")])
    code, out, _ = run(
        [
            "--predictions",
            files / "f1.jsonl",
            files / "f2.jsonl",
            "--dataset",
            "DFEW",
            "--judgments",
            files / "j1.jsonl",
            files / "j2.jsonl",
            "--json",
            files / "m.json",
            "--bootstrap",
            "100",
        ],
        capsys,
    )
    assert code == 0 and "2 folds: mean ± std" in out
    m = json.loads((files / "m.json").read_text())
    assert [f["war"] for f in m["folds"]] == [0.5, 1.0]
    assert m["mean"]["war"] == pytest.approx(0.75) and m["std"]["war"] == pytest.approx(0.3535534, abs=1e-6)
    assert m["mean"]["eea"] == pytest.approx(0.75)
    code, _, err = run(
        [
            "--predictions",
            files / "f1.jsonl",
            files / "f2.jsonl",
            "--dataset",
            "DFEW",
            "--judgments",
            files / "j1.jsonl",
        ],
        capsys,
    )
    assert code == 2 and "give one per fold" in err


def test_eval_score_script_has_the_same_interface(files):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "eval_score.py"),
            "--predictions",
            str(files / "p.jsonl"),
            "--dataset",
            "DFEW",
            "--json",
            str(files / "m2.json"),
            "--bootstrap",
            "50",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((files / "m2.json").read_text())["war"] == pytest.approx(0.6)
    proc = subprocess.run(
        [sys.executable, str(REPO / "eval_score.py"), "--predictions", str(files / "nope.jsonl"), "--dataset", "DFEW"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("eval_score.py: error:") and "Traceback" not in proc.stderr


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        erv_main(["evaluate", "--help"])
    assert exc.value.code == 0 and "--allow-missing" in capsys.readouterr().out


def test_ids_naming_one_clip_twice_are_an_error_against_labels(files, capsys):
    write_jsonl(files / "z.jsonl", [pred("00001", "happy", "happy"), pred(1, "happy", "sad")])
    code, _, err = run(
        ["--predictions", files / "z.jsonl", "--dataset", "DFEW", "--labels", files / "labels.csv", "--allow-missing"],
        capsys,
    )
    assert code == 2 and "id '1' is the same sample as '00001'" in err


def _two_folds(files, name="predictions.jsonl"):
    (files / "fold1").mkdir()
    (files / "fold2").mkdir()
    write_jsonl(files / "fold1" / name, [pred(1, "happy", "happy"), pred(2, "sad", "happy")])
    write_jsonl(files / "fold2" / name, [pred(3, "happy", "happy"), pred(4, "sad", "sad")])
    return [files / "fold1" / name, files / "fold2" / name]


def test_folds_with_the_same_file_name_get_distinct_plots_and_rows(files, capsys):
    folds = _two_folds(files)
    args = ["--predictions", *folds, "--dataset", "DFEW", "--plots", files / "plots", "--report", files / "r.md"]
    code, _, _ = run([*args, "--bootstrap", "0"], capsys)
    assert code == 0
    assert sorted(p.name for p in (files / "plots").iterdir()) == [
        "confusion_fold1_predictions.png",
        "confusion_fold2_predictions.png",
    ]
    report = (files / "r.md").read_text()
    assert "| fold1/predictions.jsonl | 2 |" in report and "| fold2/predictions.jsonl | 2 |" in report


def test_outputs_are_checked_before_anything_is_computed_or_printed(files, capsys):
    (files / "taken").write_text("x")
    for flag, target in (("--json", files / "taken" / "m.json"), ("--plots", files / "taken")):
        code, out, err = run(["--predictions", files / "p.jsonl", "--dataset", "DFEW", flag, target], capsys)
        assert code == 2 and out == "" and "taken" in err and "Traceback" not in err


def test_judgment_ids_match_prediction_ids_by_the_one_rule(files, capsys):
    write_jsonl(files / "z.jsonl", [pred("0001", "happy", "happy"), pred("0002", "sad", "sad")])
    write_jsonl(files / "jz.jsonl", [judgment(1, "happy"), judgment(2, "angry")])
    code, out, err = run(
        ["--predictions", files / "z.jsonl", "--dataset", "DFEW", "--judgments", files / "jz.jsonl", "--json"]
        + [files / "m.json", "--bootstrap", "0"],
        capsys,
    )
    assert code == 0, err
    m = json.loads((files / "m.json").read_text())
    assert (m["judged"], m["eea"]) == (2, 0.5)


def test_ids_naming_one_clip_twice_are_an_error_without_labels_too(files, capsys):
    write_jsonl(files / "z.jsonl", [pred("00025", "happy", "happy"), pred(25, "happy", "sad")])
    code, _, err = run(["--predictions", files / "z.jsonl", "--dataset", "DFEW"], capsys)
    assert code == 2 and "id '25' is the same sample as '00025'" in err


def test_judgments_of_another_dataset_are_refused(files, capsys):
    write_jsonl(files / "jm.jsonl", [dict(judgment(1, "happiness"), dataset="MAFW")])
    code, _, err = run(
        ["--predictions", files / "p.jsonl", "--dataset", "DFEW", "--judgments", files / "jm.jsonl"], capsys
    )
    assert code == 2 and "is from dataset 'MAFW', but --dataset is DFEW" in err


def test_fold_means_say_how_many_folds_they_cover(files, capsys):
    folds = _two_folds(files)
    write_jsonl(files / "j1.jsonl", [judgment(1, "happy"), judgment(2, "sad")])
    write_jsonl(files / "j2.jsonl", [judgment(3, None, "HTTP 500"), judgment(4, None, "HTTP 500")])
    code, out, _ = run(
        ["--predictions", *folds, "--dataset", "DFEW", "--judgments", files / "j1.jsonl", files / "j2.jsonl"]
        + ["--bootstrap", "0", "--json", files / "m.json", "--report", files / "r.md"],
        capsys,
    )
    assert code == 0
    eea = next(line for line in out.splitlines() if line.strip().startswith("EEA") and "±" in line)
    assert "(over 1 of 2 folds" in eea
    war = next(line for line in out.splitlines() if line.strip().startswith("WAR") and "±" in line)
    assert "folds" not in war  # WAR has a value in both folds
    assert json.loads((files / "m.json").read_text())["folds_in_mean"]["eea"] == 1
    assert "(1 of 2 folds)" in (files / "r.md").read_text()


def test_markdown_report_escapes_pipes_and_says_when_there_is_no_bootstrap(files, capsys):
    args = ["--predictions", files / "p.jsonl", "--dataset", "DFEW", "--judgments", files / "j.jsonl"]
    assert run([*args, "--report", files / "r.md", "--bootstrap", "0"], capsys)[0] == 0
    report = (files / "r.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| predictions"))
    assert "FCR\\|correct" in header and header.count(" | ") == 8  # 9 cells: the pipe no longer splits one
    assert "no bootstrap intervals" in report and "brackets" not in report
    assert run([*args, "--report", files / "r2.md", "--bootstrap", "50"], capsys)[0] == 0
    assert "brackets: 95% bootstrap interval" in (files / "r2.md").read_text()
