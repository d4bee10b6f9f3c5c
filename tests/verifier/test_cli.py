"""`erv verifier ...` through the `erv` dispatcher: data import, help, clear one-line errors."""

from __future__ import annotations

import json

import pytest

from erv.cli import main as erv_main


def test_help_lists_subcommands(capsys):
    assert erv_main(["verifier", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("data", "train", "eval", "predict", "augment"))


def test_data_imports_mixed_sources_splits_and_reports(tmp_path, capsys):
    csv = tmp_path / "gt-eng.csv"
    csv.write_text(
        "names,emotions,subtitles,reasons\n"
        + "".join(f"s{i},{'happy' if i % 2 else 'worried'},x,Reason number {i} here.\n" for i in range(10))
    )
    merr = tmp_path / "MERR_fine_grained.json"
    merr.write_text(
        json.dumps(
            {
                f"m{i}": {"pseu_emotion": "doubt" if i == 0 else "sad", "smp_reason_caption": f"Caption {i}."}
                for i in range(6)
            }
        )
    )
    out, held, summary = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "summary.json"
    argv = [
        "verifier",
        "data",
        "--inputs",
        str(csv),
        str(merr),
        "--taxonomy",
        "MAFW",
        "--out",
        str(out),
        "--eval_out",
        str(held),
        "--eval_fraction",
        "0.2",
        "--summary_json",
        str(summary),
    ]
    assert erv_main(argv) == 2  # 'doubt' is no MAFW label: one clear line, exit 2
    assert "label 'doubt' is not a MAFW label" in capsys.readouterr().err

    assert erv_main(argv + ["--drop_unknown_labels"]) == 0
    printed = capsys.readouterr().out
    assert "dropped unknown labels 'doubt'×1" in printed
    train = [json.loads(line) for line in out.read_text().splitlines()]
    held_out = [json.loads(line) for line in held.read_text().splitlines()]
    assert len(train) + len(held_out) == 15 and held_out
    report = json.loads(summary.read_text())
    assert report["import"]["dropped_labels"] == {"doubt": 1}
    assert sum(report["label_counts"].values()) == len(train)
    assert report["label_counts"]["anxiety"] > 0


def test_user_errors_are_one_line(tmp_path, capsys):
    assert erv_main(["verifier", "eval", "--model", str(tmp_path / "none"), "--data", "x.jsonl"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert erv_main(["verifier", "predict", "--input", "x"]) == 2
    assert "missing --model, --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse, as `erv judge`
        erv_main(["verifier", "augment", "pseudo-label", "--dataset", "MAFW"])
    assert exit_info.value.code == 2 and "arguments are required: --out" in capsys.readouterr().err
    assert erv_main(["verifier", "fly"]) == 2
    bad = tmp_path / "recipe.yaml"
    bad.write_text("learning_rate: 1.0e-5\nnot_a_field: 3\n")
    assert erv_main(["verifier", "train", "--config", str(bad)]) == 2
    assert "not_a_field" in capsys.readouterr().err


def test_data_with_no_usable_example_is_an_error_not_an_empty_file(tmp_path, capsys):
    judged = tmp_path / "pseudo.jsonl"
    judged.write_text(
        json.dumps({"id": "1", "text": "x", "labels": None, "raw": None, "error": "HTTP 500", "judge": "m"}) + "\n"
    )
    out = tmp_path / "train.jsonl"
    assert erv_main(["verifier", "data", "--inputs", str(judged), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no example in" in err and "skipped 1 (judge error)" in err and "nothing written" in err
    assert not out.exists()


def test_train_checks_the_backbone_before_reading_the_data(tmp_path, capsys):
    argv = ["verifier", "train", "--model_name_or_path", str(tmp_path / "missing-backbone")]
    assert erv_main([*argv, "--train_files", str(tmp_path / "missing-data.jsonl")]) == 2
    assert "missing-backbone does not exist" in capsys.readouterr().err  # not the data file's error


def test_verifier_commands_choose_torch_threads(tmp_path, monkeypatch):
    """Default threads on a busy 2-core machine made a tiny training run 100x slower."""
    import torch

    seen = []
    monkeypatch.setattr("erv.verifier.train.main", lambda argv: seen.append(torch.get_num_threads()) or 0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("erv.io.threads._usable_cores", lambda: 2)
    monkeypatch.setattr("erv.io.threads._runnable_others", lambda: 1)  # someone else keeps one core busy
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's default on 2 cores
    try:
        assert erv_main(["verifier", "train", "--config", "unused.yaml"]) == 0
        assert seen == [1] and torch.get_num_threads() == 2  # restored after the command
    finally:
        torch.set_num_threads(previous)
