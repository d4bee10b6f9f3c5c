"""Bad input to `erv infer`: one line naming the problem, exit status 2, nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest

from erv.cli import main as erv
from tests.helpers.paths import read_jsonl

FAST = ["--max-new-tokens", "4", "--num-workers", "0", "--no-progress"]


def fails(capsys, *args) -> str:
    assert erv(["infer", *FAST, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("erv infer: error: ")
    return err[0]


def test_a_malformed_record_line_is_named_with_file_and_line(capsys, tmp_path, release, good_records):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(good_records[0]) + "\n" + '{"id": "x", "video": \n', encoding="utf-8")
    line = fails(capsys, "--model", str(release), "--data", str(data), "--out", str(tmp_path / "P.jsonl"))
    assert f"{data}:2: invalid JSON" in line
    data.write_text(json.dumps({**good_records[0], "conversations": good_records[0]["conversations"][:1]}) + "\n")
    line = fails(capsys, "--model", str(release), "--data", str(data), "--out", str(tmp_path / "P.jsonl"))
    assert f"{data}:1: no gold label" in line
    assert not (tmp_path / "P.jsonl").exists()


def test_a_checkpoint_folder_that_does_not_exist(capsys, tmp_path, records_file):
    missing = tmp_path / "checkpoints" / "step-100"
    line = fails(capsys, "--model", str(missing), "--data", str(records_file), "--out", str(tmp_path / "P.jsonl"))
    assert line == f"erv infer: error: checkpoint folder {missing} does not exist"


def test_an_unwritable_output_folder(capsys, tmp_path, release, records_file):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    out = blocker / "P.jsonl"
    line = fails(capsys, "--model", str(release), "--data", str(records_file), "--out", str(out))
    assert f"--out {out}: {blocker} is a file, so nothing can be written under it" in line


@pytest.mark.parametrize(
    "option,message", [(("--batch-size", "0"), "--batch-size must be at least 1"), (("--limit", "0"), "--limit")]
)
def test_bad_run_options_are_refused_before_the_model_loads(
    capsys, tmp_path, release, records_file, monkeypatch, option, message
):
    import erv.model

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(erv.model, "load_model", no_loading)
    out = tmp_path / "P.jsonl"
    line = fails(capsys, "--model", str(release), "--data", str(records_file), "--out", str(out), *option)
    assert message in line and "got 0" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def other_checkpoint(tiny_fixture):
    """The reference fixture: another tiny HumanOmni checkpoint (its BERT folder passed explicitly)."""
    return tiny_fixture / "checkpoint", str(tiny_fixture / "bert-tiny")


def test_an_output_of_another_checkpoint_or_other_settings_is_refused(
    capsys, tmp_path, release, records_file, other_checkpoint
):
    out = tmp_path / "P.jsonl"
    base = ["--data", str(records_file), "--out", str(out), "--limit", "2"]
    assert erv(["infer", "--model", str(release), *base, *FAST]) == 0
    capsys.readouterr()
    before = out.read_text()

    other, bert = other_checkpoint
    line = fails(capsys, "--model", str(other), "--bert", bert, *base)
    assert "holds predictions of another checkpoint" in line and str(other) in line and "--overwrite" in line
    line = fails(capsys, "--model", str(release), *base, "--temperature", "0.3")
    assert "temperature: 0.0 in the file, 0.3 now" in line
    line = fails(capsys, "--model", str(release), *base, "--answer-only")
    assert "answer_only: False in the file, True now" in line
    assert out.read_text() == before  # untouched

    # the same checkpoint in another folder is the same producer: resumed, not refused
    moved = tmp_path / "moved"
    shutil.copytree(release.parent, moved)
    assert erv(["infer", "--model", str(moved / "checkpoint"), *base, *FAST]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "done 0 / skipped 2 / failed 0"

    assert erv(["infer", "--model", str(other), "--bert", bert, *base, *FAST, "--overwrite"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "done 2 / skipped 0 / failed 0"
    assert {r["run"] for r in read_jsonl(out)} != {json.loads(line)["run"] for line in before.splitlines()}


def test_records_of_another_run_without_a_header_are_refused(capsys, tmp_path, release, records_file):
    out = tmp_path / "P.jsonl"
    base = ["--model", str(release), "--data", str(records_file), "--out", str(out), "--limit", "1"]
    assert erv(["infer", *base, *FAST]) == 0
    capsys.readouterr()
    out.with_suffix(".meta.json").unlink()
    line = fails(capsys, *base, "--max-new-tokens", "5")
    assert f"{out}:1: written by another checkpoint or other generation settings" in line
