"""`erv judge` end to end (in-process): records, resume, cache, refusal to mix runs."""

from __future__ import annotations

import json

import pytest

from erv.cli import main as erv_main
from erv.data.records import read_judgments
from erv.errors import ConfigError
from erv.judge.client import JudgeConfig
from erv.judge.prompts import explanation_emotion_prompt, parse_emotion_reply
from erv.judge.run import run_judge
from erv.testing.judge_server import JudgeTestServer, ServerConfig
from tests.helpers.judge import write_predictions
from tests.helpers.paths import read_jsonl

KEY_ENV = "ERV_TEST_RUN_KEY"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-run-test-key")


@pytest.fixture
def server():
    with JudgeTestServer(ServerConfig(seed=21, rate_out_of_list=0.1, rate_garbage=0.1)) as srv:
        yield srv


def _args(pred, out, server, *extra):
    return [
        "judge",
        "--predictions",
        str(pred),
        "--dataset",
        "DFEW",
        "--out",
        str(out),
        "--model",
        "test-judge",
        "--base-url",
        server.base_url,
        "--api-key-env",
        KEY_ENV,
        "--timeout",
        "5",
        "--max-retries",
        "1",
        "--no-progress",
        *extra,
    ]


def _explanation(record):
    return record["response"].split("<think>")[1].split("</think>")[0].strip()


def test_records_follow_the_contract(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, 30, no_think_every=10)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "judged 27 / cached 0 / failed 3 / skipped 0"
    judged = read_jsonl(out)
    assert [j["id"] for j in judged] == [r["id"] for r in records]  # one per id, predictions order
    null_labels = 0
    for rec, j in zip(records, judged, strict=True):
        assert {"id", "judge", "explanation_emotion", "raw", "error"} <= set(j)
        assert j["judge"] == "test-judge" and j["dataset"] == "DFEW" and j["prompt"] == "paper"
        if "<think>" not in rec["response"]:
            assert j["error"].startswith("no explanation") and j["raw"] is None and j["explanation_emotion"] is None
            continue
        expected_raw = server.expected_reply(explanation_emotion_prompt(_explanation(rec), "DFEW"))
        assert j["error"] is None and j["raw"] == expected_raw
        assert j["explanation_emotion"] == parse_emotion_reply(expected_raw, "DFEW")
        null_labels += j["explanation_emotion"] is None  # out of taxonomy or garbage: kept raw, never coerced
    assert null_labels > 0
    assert server.request_count == 27  # none for the three samples without <think>
    # The shared reader accepts the file.
    assert len(read_judgments(out, "DFEW")) == 30


def test_rerun_over_a_finished_file_makes_zero_requests(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 20)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    before = out.read_text()
    server.reset_stats()
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    assert server.request_count == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "judged 0 / cached 0 / failed 0 / skipped 20"
    assert out.read_text() == before


def test_cache_makes_a_rerun_after_deleting_the_output_free(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 20)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server)) == 0  # default cache: J.jsonl.cache.sqlite
    first = read_jsonl(out)
    assert (tmp_path / "J.jsonl.cache.sqlite").exists()
    out.unlink()
    server.reset_stats()
    capsys.readouterr()
    assert erv_main(_args(pred, out, server)) == 0
    assert server.request_count == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "judged 0 / cached 20 / failed 0 / skipped 0"
    second = read_jsonl(out)
    assert [(j["id"], j["explanation_emotion"], j["raw"]) for j in second] == [
        (j["id"], j["explanation_emotion"], j["raw"]) for j in first
    ]
    assert all(j["cached"] for j in second)


def test_resume_retries_failures_and_repairs_duplicates_and_torn_lines(tmp_path, server):
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, 12)
    out = tmp_path / "J.jsonl"
    good = {
        "judge": "test-judge",
        "explanation_emotion": "sad",
        "raw": "sad",
        "error": None,
        "dataset": "DFEW",
        "prompt": "paper",
    }
    bad = {
        "judge": "test-judge",
        "explanation_emotion": None,
        "raw": None,
        "error": "RateLimitError: HTTP 429",
        "dataset": "DFEW",
    }
    from erv.judge.run import judge_input_hash

    good["input_hash"] = judge_input_hash(
        explanation_emotion_prompt(_explanation(records[0]), "DFEW"), records[0]["response"]
    )  # judged from the explanation the predictions still hold
    lines = [
        dict(good, id=records[0]["id"]),
        dict(bad, id=records[1]["id"]),
        dict(bad, id=records[0]["id"]),
        dict(good, id=records[0]["id"]),
        dict(bad, id=records[2]["id"]),
    ]
    out.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"id": "clip0003", "judge": "te')  # torn tail
    config = JudgeConfig(model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV, cache=None)
    with pytest.warns(UserWarning, match="incomplete last line"):
        summary = run_judge(pred, "DFEW", out, config, progress=False)
    assert (summary.skipped, summary.judged, summary.failed) == (1, 11, 0)
    final = read_jsonl(out)
    assert [j["id"] for j in final] == [r["id"] for r in records]
    assert final[0]["raw"] == "sad"  # the earlier success was kept, not re-asked
    assert all(j["error"] is None for j in final)
    assert server.request_count == 11


def test_limit_judges_a_prefix_and_later_runs_extend_it(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 10)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server, "--limit", "4", "--no-cache")) == 0
    assert len(read_jsonl(out)) == 4
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "judged 6 / cached 0 / failed 0 / skipped 4"
    assert len(read_jsonl(out)) == 10


def test_resuming_with_another_judge_model_or_dataset_is_refused(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 5)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server)) == 0
    before = out.read_text()
    args = _args(pred, out, server)
    args[args.index("--model") + 1] = "gemini-2.5-flash"
    assert erv_main(args) == 2
    err = capsys.readouterr().err
    assert "judged by 'test-judge'" in err and "gemini-2.5-flash" in err and "must not be mixed" in err
    args = _args(pred, out, server, "--prompt", "released")
    assert erv_main(args) == 2
    assert "prompt variant" in capsys.readouterr().err
    args = _args(pred, out, server)
    args[args.index("--dataset") + 1] = "MAFW"
    write_predictions(pred, 5, labels=("sadness", "anger"), dataset="MAFW")
    assert erv_main(args) == 2
    assert "written for dataset 'DFEW'" in capsys.readouterr().err
    assert out.read_text() == before


def test_judgments_of_other_predictions_are_refused(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 5)
    out = tmp_path / "J.jsonl"
    out.write_text(
        json.dumps(
            {"id": "someone-else", "judge": "test-judge", "explanation_emotion": "sad", "raw": "sad", "error": None}
        )
        + "\n"
    )
    assert erv_main(_args(pred, out, server)) == 2
    assert "'someone-else' is not in" in capsys.readouterr().err


def test_a_second_job_on_the_same_output_is_refused(tmp_path, server):
    import fcntl

    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 3)
    out = tmp_path / "J.jsonl"
    with open(tmp_path / ".J.jsonl.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        config = JudgeConfig(model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV)
        with pytest.raises(ConfigError, match="another `erv judge` is writing"):
            run_judge(pred, "DFEW", out, config, progress=False)


def test_only_samples_without_explanation_need_no_endpoint(tmp_path, monkeypatch, capsys):
    pred = tmp_path / "P.jsonl"
    pred.write_text(
        json.dumps({"id": "a", "gold": "sad", "response": "<answer>sad</answer>"})
        + "\n"
        + json.dumps({"id": "b", "gold": "sad", "response": "<think>  </think><answer>sad</answer>"})
        + "\n"
    )
    out = tmp_path / "J.jsonl"
    monkeypatch.delenv(KEY_ENV)
    rc = erv_main(
        [
            "judge",
            "--predictions",
            str(pred),
            "--dataset",
            "DFEW",
            "--out",
            str(out),
            "--api-key-env",
            KEY_ENV,
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--no-progress",
        ]
    )
    assert rc == 0
    final = read_jsonl(out)
    assert [j["error"].split(":")[0] for j in final] == ["no explanation", "no explanation"]
    assert "empty" in final[1]["error"]
    assert capsys.readouterr().out.strip().splitlines()[-1] == "judged 0 / cached 0 / failed 2 / skipped 0"


def test_unclosed_think_is_judged_only_on_request(tmp_path, server):
    pred = tmp_path / "P.jsonl"
    pred.write_text(
        json.dumps({"id": "t", "gold": "sad", "response": "<think>He weeps quietly and looks down"}) + "\n"
    )
    config = JudgeConfig(model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV)
    run_judge(pred, "DFEW", tmp_path / "strict.jsonl", config, progress=False)
    assert read_jsonl(tmp_path / "strict.jsonl")[0]["error"].startswith("no explanation")
    run_judge(pred, "DFEW", tmp_path / "lenient.jsonl", config, progress=False, allow_unclosed_think=True)
    lenient = read_jsonl(tmp_path / "lenient.jsonl")[0]
    assert lenient["error"] is None
    assert lenient["raw"] == server.expected_reply(
        explanation_emotion_prompt("He weeps quietly and looks down", "DFEW")
    )


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        erv_main(["judge", "--help"])
    assert exc.value.code == 0
    assert "--predictions" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        erv_main(["judge", "agreement", "--help"])
    assert exc.value.code == 0
    assert "kappa" in capsys.readouterr().out


def test_paper_named_wrapper_script_forwards_to_erv_judge(tmp_path, server):
    import subprocess
    import sys

    from tests.helpers.paths import REPO, subprocess_env

    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 3)
    out = tmp_path / "J.jsonl"
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "tools" / "response_gpt_check.sh"),
            "--predictions",
            str(pred),
            "--dataset_name",
            "DFEW",
            "--out",
            str(out),
            "--model",
            "test-judge",
            "--base-url",
            server.base_url,
            "--api-key-env",
            KEY_ENV,
            "--no-progress",
        ],
        env=subprocess_env(PYTHON=sys.executable, **{KEY_ENV: "sk-run-test-key"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "judged 3 / cached 0 / failed 0 / skipped 0"
    assert len(read_jsonl(out)) == 3


def test_run_judge_works_from_inside_a_running_event_loop(tmp_path, server):
    """Notebooks and async apps call the sync API from a running loop, where asyncio.run refuses."""
    import asyncio

    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 6)
    config = JudgeConfig(model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV, timeout=5, max_retries=1)

    async def from_a_loop():
        return run_judge(pred, "DFEW", tmp_path / "J.jsonl", config, progress=False)

    summary = asyncio.run(from_a_loop())
    assert summary.judged == 6 and summary.failed == 0
    assert len(read_jsonl(tmp_path / "J.jsonl")) == 6


def _rewrite_explanation(pred, index, text):
    records = read_jsonl(pred)
    records[index]["response"] = f"<think>{text}</think>\n<answer>sad</answer>"
    pred.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_a_changed_explanation_is_judged_again_or_refused(tmp_path, server, capsys):
    """Resuming by id alone kept the judgment of the old explanation, and evaluate scored it."""
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 4)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    records = _rewrite_explanation(pred, 1, "She weeps and her voice breaks; everything says sadness.")
    before = out.read_text()
    capsys.readouterr()
    assert erv_main(_args(pred, out, server, "--no-cache", "--on-changed", "refuse")) == 2
    err = capsys.readouterr().err
    assert f"sample '{records[1]['id']}' was computed from another explanation" in err and "--on-changed redo" in err
    assert out.read_text() == before
    server.reset_stats()
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "judged 1 / cached 0 / failed 0 / skipped 3" and "1 judged again" in printed[-2]
    assert server.request_count == 1
    judged = read_jsonl(out)
    expected = explanation_emotion_prompt("She weeps and her voice breaks; everything says sadness.", "DFEW")
    assert [j["id"] for j in judged] == [r["id"] for r in records]
    assert judged[1]["raw"] == server.expected_reply(expected)


def test_evaluate_and_agreement_refuse_a_judgment_of_another_explanation(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 3)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    evaluate = ["evaluate", "--predictions", str(pred), "--dataset", "DFEW", "--judgments", str(out)]
    assert erv_main([*evaluate, "--bootstrap", "0"]) == 0
    _rewrite_explanation(pred, 2, "A different explanation written after judging.")
    capsys.readouterr()
    assert erv_main([*evaluate, "--bootstrap", "0"]) == 2
    assert "was made for another explanation" in capsys.readouterr().err
    assert erv_main(["judge", "agreement", str(out), str(out), "--predictions", str(pred), "--dataset", "DFEW"]) == 2
    assert "was made for another explanation" in capsys.readouterr().err


def test_legacy_records_without_input_hash_are_judged_again(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, 2)
    out = tmp_path / "J.jsonl"
    legacy = {"judge": "test-judge", "explanation_emotion": "sad", "raw": "sad", "error": None, "dataset": "DFEW"}
    out.write_text("".join(json.dumps(dict(legacy, id=r["id"])) + "\n" for r in records))
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "judged 2 / cached 0 / failed 0 / skipped 0"
    assert all(j["input_hash"] for j in read_jsonl(out))


def test_predictions_of_another_dataset_are_refused(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 2, dataset="DFEW", labels=("sad", "fear"))  # labels valid in both lists
    out = tmp_path / "J.jsonl"
    args = _args(pred, out, server)
    args[args.index("--dataset") + 1] = "MAFW"
    assert erv_main(args) == 2
    assert "sample clip0000 is from dataset 'DFEW', but --dataset is MAFW" in capsys.readouterr().err
    assert not out.exists()


def test_out_equal_to_predictions_is_refused_without_advising_to_delete_it(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 2)
    assert erv_main(_args(pred, pred, server)) == 2
    err = capsys.readouterr().err
    assert "is also an input of this command" in err and "delete" not in err


def test_a_rejected_key_stops_after_one_request(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 18)
    out = tmp_path / "J.jsonl"
    with JudgeTestServer(ServerConfig(api_key="sk-the-right-one")) as srv:
        assert erv_main(_args(pred, out, srv, "--concurrency", "8")) == 2
        assert srv.request_count == 1  # not 18 x 401
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "AuthenticationError: HTTP 401" in err and "nothing more was sent" in err
    assert read_jsonl(out) == []  # no sample is recorded as failed: the endpoint is, and it is said once
    assert not (tmp_path / ".J.jsonl.lock").exists()


def test_an_unknown_model_stops_after_one_request(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 6)
    with JudgeTestServer(ServerConfig(model="the-served-model")) as srv:
        assert erv_main(_args(pred, tmp_path / "J.jsonl", srv, "--no-cache")) == 2
        assert srv.request_count == 1
    assert "NotFoundError: HTTP 404" in capsys.readouterr().err


def test_summary_counts_the_whole_file_consistently(tmp_path, server, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 10, no_think_every=5)
    out = tmp_path / "J.jsonl"
    assert erv_main(_args(pred, out, server, "--limit", "6", "--no-cache")) == 0
    capsys.readouterr()
    assert erv_main(_args(pred, out, server, "--no-cache")) == 0
    first, last = capsys.readouterr().out.strip().splitlines()[-2:]
    final = read_jsonl(out)
    nulls = sum(1 for j in final if j["error"] is None and j["explanation_emotion"] is None)
    assert first.startswith(f"{out}: 10 samples in the file: judged {8 - nulls}, out-of-taxonomy replies {nulls}")
    assert "without explanation 2, API failures 0; this run: 3 requests sent" in first
    assert last == "judged 3 / cached 0 / failed 2 / skipped 5"


def test_no_key_creates_nothing_and_a_run_leaves_no_lock(tmp_path, server, monkeypatch, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 2)
    monkeypatch.delenv(KEY_ENV)
    assert erv_main(_args(pred, tmp_path / "new" / "J.jsonl", server)) == 2
    assert "is not set" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P.jsonl"]
    monkeypatch.setenv(KEY_ENV, "k")
    assert erv_main(_args(pred, tmp_path / "new" / "J.jsonl", server)) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["J.jsonl", "J.jsonl.cache.sqlite"]
