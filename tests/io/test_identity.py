"""erv.io.identity and ResumableJob: a resumed unit is tied to the input it was computed from."""

from __future__ import annotations

import json

import pytest

from erv.errors import ConfigError
from erv.io.identity import INPUT_HASH_KEY, content_hash, keep_record
from erv.io.jobs import ResumableJob
from erv.io.jsonl import iter_json_records


def test_content_hash_is_stable_and_sensitive():
    assert content_hash("a", {"x": 1, "y": [2]}) == content_hash("a", {"y": [2], "x": 1})
    assert content_hash("a") != content_hash("b") != content_hash("a", None)


def test_keep_record_prefers_the_current_input_then_the_first_success():
    chosen: dict = {}
    stale_ok = {"id": "1", INPUT_HASH_KEY: "old", "error": None, "v": "stale"}
    fresh_fail = {"id": "1", INPUT_HASH_KEY: "new", "error": "HTTP 500", "v": "fail"}
    fresh_ok = {"id": "1", INPUT_HASH_KEY: "new", "error": None, "v": "ok"}
    retry_leftover = {"id": "1", INPUT_HASH_KEY: "new", "error": None, "v": "later"}
    for record in (stale_ok, fresh_fail):
        keep_record(chosen, "1", record, "new")
    assert chosen["1"]["v"] == "fail"  # a stale success never beats a record of the current input
    for record in (fresh_ok, retry_leftover, stale_ok):
        keep_record(chosen, "1", record, "new")
    assert chosen["1"]["v"] == "ok"


def _job(out, texts, on_changed="redo"):
    expected = {str(i): content_hash(t) for i, t in enumerate(texts)}

    def load():
        chosen: dict = {}
        if out.exists():
            for _, record in iter_json_records(out, tolerate_torn_tail=True):
                keep_record(chosen, record["id"], record, expected.get(record["id"]))
        return list(chosen.values())

    job = ResumableJob(
        out, "test job", load=load, arrange=lambda rs: sorted(rs, key=lambda r: r["id"]), on_changed=on_changed
    )
    return job, expected


def _run(out, texts, on_changed="redo"):
    job, expected = _job(out, texts, on_changed)
    items = [(str(i), t) for i, t in enumerate(texts)]
    with job:
        todo = job.pending(items, lambda item: item[0], lambda item: expected[item[0]])
        job.write([{"id": i, "upper": t.upper(), INPUT_HASH_KEY: expected[i], "error": None} for i, t in todo])
    return job, [i for i, _ in todo]


def test_a_unit_whose_input_changed_is_redone_or_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    _run(out, ["a", "b", "c"])
    job, redone = _run(out, ["a", "B!", "c"])
    assert redone == ["1"] and (job.skipped, job.changed) == (2, 1)
    assert [json.loads(line)["upper"] for line in out.read_text().splitlines()] == ["A", "B!", "C"]
    before = out.read_text()
    with pytest.raises(ConfigError, match=r"sample '2' was computed from another input.*--on-changed redo"):
        _run(out, ["a", "B!", "changed"], on_changed="refuse")
    assert out.read_text() == before  # refused before any work
    assert not (tmp_path / ".out.jsonl.lock").exists()
