"""`erv sft` on bad input: one line naming the problem, exit status 2, before any model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from erv.cli import main as erv_main
from tests.train.conftest import REPO, TINY_RECIPE, recipe_argv, write_records


def _error(capsys, argv) -> str:
    code = erv_main(["sft", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("erv sft: error: "), err
    return lines[0]


def test_unknown_tune_part(capsys, release, sft_data, tmp_path):
    line = _error(capsys, recipe_argv(release, sft_data, tmp_path / "o", tune_parts=["llm", "vision"]))
    assert "unknown tune_parts name 'vision'" in line and "vision_tower" in line and "bert_gate" in line


def test_missing_checkpoint_folder(capsys, release, sft_data, tmp_path):
    bad = dict(release, checkpoint=tmp_path / "no-such-checkpoint")
    line = _error(capsys, recipe_argv(bad, sft_data, tmp_path / "o"))
    assert "no-such-checkpoint does not exist" in line


def test_unknown_recipe_field(capsys, release, sft_data, tmp_path):
    line = _error(capsys, recipe_argv(release, sft_data, tmp_path / "o", learning_rat=0.1))
    assert "learning_rat" in line
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TINY_RECIPE.read_text() + "\nnum_framez: 8\n")
    argv = recipe_argv(release, sft_data, tmp_path / "o")
    argv[argv.index("--config") + 1] = str(recipe)
    assert "num_framez" in _error(capsys, argv)
    argv[argv.index("--config") + 1] = str(tmp_path / "missing.yaml")
    assert "missing.yaml" in _error(capsys, argv)


def test_bad_choice_on_the_command_line_and_in_the_recipe(capsys, release, sft_data, tmp_path):
    line = _error(capsys, recipe_argv(release, sft_data, tmp_path / "o", on_media_error="ignore"))
    assert "--on_media_error" in line and "invalid choice: 'ignore'" in line
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TINY_RECIPE.read_text().replace("on_media_error: skip", "on_media_error: ignore"))
    argv = recipe_argv(release, sft_data, tmp_path / "o")
    argv[argv.index("--config") + 1] = str(recipe)
    assert "on_media_error must be one of skip, error, got 'ignore'" in _error(capsys, argv)


def _records(sft_data, tmp_path, mutate):
    records = json.loads(sft_data.read_text())
    for rec in records:
        rec["video"] = str(sft_data.parent / rec["video"])
    mutate(records)
    return write_records(tmp_path / "records.json", records)


def test_record_without_assistant_turn_or_with_empty_answer(capsys, release, sft_data, tmp_path):
    def drop_turn(records):
        records[2]["conversations"] = records[2]["conversations"][:1]

    path = _records(sft_data, tmp_path, drop_turn)
    line = _error(capsys, recipe_argv(release, path, tmp_path / "o"))
    assert "records.json[2] (id s2): no answer" in line

    def empty(records):
        records[4]["conversations"][1]["value"] = ""

    path = _records(sft_data, tmp_path, empty)
    assert "records.json[4] (id s4): the assistant answer is empty" in _error(
        capsys, recipe_argv(release, path, tmp_path / "o")
    )


def test_missing_video_error_or_skip(capsys, release, sft_data, tmp_path):
    def vanish(records):
        records[1]["video"] = str(tmp_path / "gone.mp4")

    path = _records(sft_data, tmp_path, vanish)
    line = _error(capsys, recipe_argv(release, path, tmp_path / "o", on_media_error="error"))
    assert "records.json[1] (id s1): media file not found" in line and "gone.mp4" in line

    out = tmp_path / "skip"
    argv = recipe_argv(release, path, out, on_media_error="skip", max_steps=1, save_strategy="no")
    assert erv_main(["sft", *argv]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "on 5 of 6 records; skipped 1 for missing or unreadable media" in summary
    (row,) = [json.loads(line) for line in (out / "skipped_media.jsonl").read_text().splitlines()]
    assert row["record"].endswith("(id s1)") and row["path"].endswith("gone.mp4") and row["stage"] == "pre-check"


def test_resume_from_a_folder_that_is_not_a_checkpoint(capsys, release, sft_data, tmp_path):
    line = _error(capsys, recipe_argv(release, sft_data, tmp_path / "o", resume_from_checkpoint=tmp_path / "nope"))
    assert "is not a complete checkpoint folder" in line


@pytest.mark.parametrize("flag", ["--help"])
def test_help(capsys, flag):
    with pytest.raises(SystemExit) as exc:
        erv_main(["sft", flag])
    assert exc.value.code == 0 and "--tune_parts" in capsys.readouterr().out


def test_clip_failing_in_a_dataloader_worker_is_one_line(release, sft_data, tmp_path):
    """Without the pre-check the failure happens in a worker process; the message stays one line."""

    def vanish(records):
        for rec in records:
            rec["video"] = str(tmp_path / "gone.mp4")

    path = _records(sft_data, tmp_path, vanish)
    argv = recipe_argv(release, path, tmp_path / "o", on_media_error="error", check_media="false", max_steps=1)
    argv[argv.index("--dataloader_num_workers") + 1] = "1"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "erv.cli", "sft", *argv], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    (line,) = [row for row in run.stderr.splitlines() if row.startswith("erv sft: error: ")]
    assert line == run.stderr.strip().splitlines()[-1]  # the model's loading progress lines come first
    assert "(id s" in line and "media file not found" in line and "gone.mp4" in line
