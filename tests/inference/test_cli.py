"""`erv infer` in one process: the prediction schema, failures as records, resuming, K samples."""

from __future__ import annotations

import json

import pytest

from erv.cli import main as erv
from erv.eval.evaluate import evaluate
from erv.inference.identity import header_path
from tests.helpers.inference import record
from tests.helpers.paths import read_jsonl, write_records

FAST = ["--max-new-tokens", "6", "--num-workers", "0", "--batch-size", "3", "--no-progress"]


def infer(capsys, *args):
    rc = erv(["infer", *FAST, *args])
    captured = capsys.readouterr()
    return rc, captured.out.strip().splitlines(), captured.err


@pytest.fixture
def mixed(tmp_path, clip_dir, good_records):
    """Five readable clips, then a corrupt one, a missing one and one without audio."""
    bad = [
        record("corrupt", clip_dir / "corrupt.mp4", 5),
        record("missing", clip_dir / "no-such-clip.mp4", 6),
        record("silent", clip_dir / "silent.mp4", 7),
    ]
    return write_records(tmp_path / "mixed.jsonl", good_records[:5] + bad)


def test_failures_are_recorded_and_counted_and_the_rest_is_predicted(capsys, tmp_path, release, mixed):
    out = tmp_path / "out" / "P.jsonl"
    workers = ["--num-workers", "2"]  # decoding (and its failures) in DataLoader worker processes
    rc, lines, err = infer(capsys, "--model", str(release), "--data", str(mixed), "--out", str(out), *workers)
    assert rc == 0
    assert lines[-1] == "done 5 / skipped 0 / failed 3"
    records = read_jsonl(out)
    assert [r["id"] for r in records] == ["00000", "00001", "00002", "00003", "00004", "corrupt", "missing", "silent"]
    for r in records[:5]:
        assert set(r) >= {"id", "video", "dataset", "gold", "response", "run", "input"}
        assert isinstance(r["response"], str) and r["error"] is None and r["dataset"] == "DFEW"
    errors = {r["id"]: r["error"] for r in records[5:]}
    assert all(r["response"] is None for r in records[5:])
    assert "corrupt" in errors["corrupt"] and "not found" in errors["missing"] and "no audio" in errors["silent"]
    assert "3 clip(s) failed" in err and "silent:" in err
    header = json.loads(header_path(out).read_text())
    assert header["run"] == records[0]["run"]
    assert header["model"]["checkpoint"]["path"] == str(release.resolve())
    assert header["settings"]["generation"]["max_new_tokens"] == 6 and header["settings"]["temperature"] == 0.0

    # evaluate: the failed clips are counted, not scored as wrong answers unless asked
    result = evaluate([str(out)], "DFEW", labels=[str(mixed)], n_resamples=0)
    assert result["n"] == 5 and result["failed"] == 3 and set(result["failed_ids"]) == set(errors)
    assert evaluate([str(out)], "DFEW", n_resamples=0, failed_as_wrong=True)["n"] == 8
    assert erv(["evaluate", "--predictions", str(out), "--dataset", "DFEW", "--bootstrap", "0"]) == 0
    warning = capsys.readouterr().err
    assert "3 failed at inference: corrupt, missing, silent (excluded; --failed-as-wrong scores them)" in warning

    # the same command again: predictions kept, failures retried (and recorded again)
    before = {r["id"]: r for r in records}
    rc, lines, _ = infer(capsys, "--model", str(release), "--data", str(mixed), "--out", str(out))
    assert rc == 0 and lines[-1] == "done 0 / skipped 5 / failed 3"
    assert {r["id"]: r for r in read_jsonl(out)} == before


def test_silence_for_missing_audio_is_marked(capsys, tmp_path, release, clip_dir):
    data = write_records(tmp_path / "silent.jsonl", [record("silent", clip_dir / "silent.mp4", 0)])
    out = tmp_path / "P.jsonl"
    rc, lines, _ = infer(
        capsys, "--model", str(release), "--data", str(data), "--out", str(out), "--on-missing-audio", "zeros"
    )
    assert rc == 0 and lines[-1] == "done 1 / skipped 0 / failed 0"
    (rec,) = read_jsonl(out)
    assert rec["audio_missing"] is True and isinstance(rec["response"], str)
    assert "predicted on silence" in lines[0]


def test_limit_then_the_rest_and_a_changed_record_is_predicted_again(capsys, tmp_path, release, good_records):
    data = write_records(tmp_path / "data.jsonl", good_records[:4])
    out = tmp_path / "P.jsonl"
    args = ["--model", str(release), "--data", str(data), "--out", str(out)]
    assert infer(capsys, *args, "--limit", "2")[1][-1] == "done 2 / skipped 0 / failed 0"
    assert [r["id"] for r in read_jsonl(out)] == ["00000", "00001"]
    assert infer(capsys, *args)[1][-1] == "done 2 / skipped 2 / failed 0"
    first = {r["id"]: r for r in read_jsonl(out)}

    changed = [dict(r) for r in good_records[:4]]
    changed[1]["conversations"] = [changed[1]["conversations"][0], {"from": "gpt", "value": "fear"}]
    write_records(data, changed)
    rc, lines, _ = infer(capsys, *args)
    assert lines[-1] == "done 1 / skipped 3 / failed 0" and "1 predicted again" in lines[0]
    again = {r["id"]: r for r in read_jsonl(out)}
    assert again["00001"]["gold"] == "fear" and again["00001"]["input"] != first["00001"]["input"]
    assert {k: v for k, v in again.items() if k != "00001"} == {k: v for k, v in first.items() if k != "00001"}


def test_several_samples_per_clip_keep_one_record_per_id(capsys, tmp_path, release, records_file):
    out = tmp_path / "P.jsonl"
    rc, lines, _ = infer(
        capsys,
        *("--model", str(release), "--data", str(records_file), "--out", str(out)),
        *("--temperature", "2.0", "--num-samples", "3", "--limit", "4"),
    )
    assert rc == 0 and lines[-1] == "done 4 / skipped 0 / failed 0"
    records = read_jsonl(out)
    assert len(records) == 4
    for r in records:
        assert len(r["samples"]) == 3 and r["response"] == r["samples"][0] and len(r["finish_reasons"]) == 3
    header = json.loads(header_path(out).read_text())
    assert header["settings"]["sampler"]["temperature"] == 2.0 and header["settings"]["num_samples"] == 3
    assert evaluate([str(out)], "DFEW", n_resamples=0)["n"] == 4  # one prediction per id for scoring


def test_shards_left_by_a_killed_run_of_any_size_are_folded_in(capsys, tmp_path, release, good_records):
    """What a killed 4-process run leaves (shards of ranks 0 and 3, one with a torn last line) is
    collected by a one-process run, which predicts only the rest."""
    from erv.inference.store import shard_path

    data = write_records(tmp_path / "data.jsonl", good_records[:6])
    reference = tmp_path / "reference.jsonl"
    assert infer(capsys, "--model", str(release), "--data", str(data), "--out", str(reference))[0] == 0
    done = read_jsonl(reference)

    out = tmp_path / "P.jsonl"
    lines = [json.dumps(r) + "\n" for r in done]
    shard_path(out, 0).parent.mkdir(parents=True)
    shard_path(out, 0).write_text(lines[4] + lines[1])
    shard_path(out, 3).write_text(lines[2] + lines[5][:40])  # killed while writing its second record
    with pytest.warns(UserWarning, match="rank-00003.jsonl:2: ignoring an incomplete last line"):
        rc, printed, _ = infer(capsys, "--model", str(release), "--data", str(data), "--out", str(out))
    assert rc == 0 and printed[-1] == "done 3 / skipped 3 / failed 0"
    assert read_jsonl(out) == done
    assert not shard_path(out, 0).parent.exists()
