"""`erv verifier augment pseudo-label|complement` end to end against the test server (real openai SDK)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from erv.cli import main as erv_main
from erv.errors import ConfigError, TaxonomyError
from erv.judge.client import JudgeConfig
from erv.judge.prompts import complement_prompt, parse_multi_emotion_reply, pseudo_label_prompt
from erv.testing.judge_server import JudgeTestServer, ServerConfig
from erv.verifier.augment import dedupe_key, run_complement
from erv.verifier.data import ImportReport, label_counts, load_examples
from tests.helpers.judge import write_predictions
from tests.helpers.paths import read_jsonl, subprocess_env

KEY_ENV = "ERV_TEST_AUGMENT_KEY"
DFEW = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-augment-test-key")


def judge_args(server: JudgeTestServer, *extra: str) -> list[str]:
    return [
        "--model",
        "test-judge",
        "--base-url",
        server.base_url,
        "--api-key-env",
        KEY_ENV,
        "--timeout",
        "5",
        "--max-retries",
        "0",
        "--no-progress",
        *extra,
    ]


def pseudo_args(pred, out, server, *extra):
    return [
        "verifier",
        "augment",
        "pseudo-label",
        "--predictions",
        str(pred),
        "--dataset",
        "DFEW",
        "--out",
        str(out),
        *judge_args(server, *extra),
    ]


def think(record):
    return record["response"].split("<think>")[1].split("</think>")[0].strip()


# ---------------------------------------------------------------- pseudo-label


def test_pseudo_label_records_counts_and_import(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, 30, no_think_every=10)
    out = tmp_path / "pseudo.jsonl"
    with JudgeTestServer(ServerConfig(seed=3, rate_out_of_list=0.25)) as server:
        assert erv_main(pseudo_args(pred, out, server)) == 0
        assert server.request_count == 27  # no request for the three predictions without <think>
        written = read_jsonl(out)
        with_text = [r for r in records if "<think>" in r["response"]]
        assert [w["id"] for w in written] == [r["id"] for r in with_text]
        outside = 0
        for rec, w in zip(with_text, written, strict=True):
            raw = server.expected_reply(pseudo_label_prompt(think(rec), "DFEW"))
            assert w["text"] == think(rec) and w["raw"] == raw and w["error"] is None and w["judge"] == "test-judge"
            assert w["labels"] == parse_multi_emotion_reply(raw, "DFEW")  # None when outside: never coerced
            outside += w["labels"] is None
    assert 0 < outside < 27
    assert any(w["labels"] and len(w["labels"]) == 2 for w in written)  # "up to two emotions"
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "labelled 27 / cached 0 / failed 0 / skipped 0"
    counts = {label: sum(label in (w["labels"] or []) for w in written) for label in DFEW}
    assert f"per class: {', '.join(f'{k} {v}' for k, v in counts.items())}" in printed
    assert f"outside the taxonomy {outside} (kept with labels null)" in printed[-3]
    # The verifier importer reads the file as it is: labelled texts kept, the rest skipped and counted.
    report = ImportReport()
    examples = load_examples(out, "DFEW", report=report)
    assert len(examples) == 27 - outside and report.skipped == {"judge reply outside the taxonomy": outside}
    assert label_counts(examples, "DFEW") == counts


def test_pseudo_label_resumes_after_partial_output(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 24)
    full, partial = tmp_path / "full.jsonl", tmp_path / "partial.jsonl"
    with JudgeTestServer(ServerConfig(seed=8, rate_out_of_list=0.2)) as server:
        assert erv_main(pseudo_args(pred, full, server, "--no-cache")) == 0
        lines = full.read_text().splitlines(keepends=True)
        # A killed run: 9 whole records (out of order, as concurrent replies arrive) and a torn line.
        partial.write_text("".join(lines[i] for i in (3, 0, 7, 1, 2, 8, 4, 6, 5)) + lines[9][:25])
        server.reset_stats()
        capsys.readouterr()
        with pytest.warns(UserWarning, match="incomplete last line"):
            assert erv_main(pseudo_args(pred, partial, server, "--no-cache")) == 0
        assert server.request_count == 24 - 9
        assert capsys.readouterr().out.strip().splitlines()[-1] == "labelled 15 / cached 0 / failed 0 / skipped 9"
        assert partial.read_text() == full.read_text()  # compacted, in input order, no duplicates
        server.reset_stats()
        assert erv_main(pseudo_args(pred, partial, server, "--no-cache")) == 0
        assert server.request_count == 0


def test_pseudo_label_survives_a_killed_process(tmp_path):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 40)
    out = tmp_path / "pseudo.jsonl"
    env = subprocess_env(**{KEY_ENV: "k"})
    with JudgeTestServer(ServerConfig(seed=4, latency=0.1)) as server:
        cmd = [sys.executable, "-m", "erv.cli", *pseudo_args(pred, out, server, "--concurrency", "2", "--no-cache")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 6):
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
        done_before = len({r["id"] for r in read_jsonl(out)})
        assert 6 <= done_before < 40
        server.wait_idle()
        server.reset_stats()
        server.config.latency = 0.0
        assert erv_main(pseudo_args(pred, out, server, "--no-cache")) == 0
        assert server.request_count == 40 - done_before
    written = read_jsonl(out)
    assert [w["id"] for w in written] == [f"clip{i:04d}" for i in range(40)]


def test_pseudo_label_retries_only_failures_and_refuses_mixing(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 20)
    out = tmp_path / "pseudo.jsonl"
    with JudgeTestServer(ServerConfig(seed=2, rate_permanent_failure=0.3)) as flaky:
        assert erv_main(pseudo_args(pred, out, flaky)) == 1
        failed = sum(r["error"] is not None for r in read_jsonl(out))
    assert 0 < failed < 20
    err = capsys.readouterr().err
    assert "API calls failed" in err and "re-run the same command" in err
    assert load_examples(out, "DFEW", report=(report := ImportReport())) and report.skipped["judge error"] == failed
    with JudgeTestServer(ServerConfig(seed=2)) as healthy:
        assert erv_main(pseudo_args(pred, out, healthy)) == 0
        assert healthy.request_count == failed
        assert all(r["error"] is None for r in read_jsonl(out)) and len(read_jsonl(out)) == 20
        args = pseudo_args(pred, out, healthy)
        args[args.index("test-judge")] = "other-judge"
        assert erv_main(args) == 2
    assert "must not be mixed" in capsys.readouterr().err


def test_pseudo_label_reads_explanation_files(tmp_path, capsys):
    src = tmp_path / "explanations.jsonl"
    src.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"text": "He slams the table and shouts."},
                {"id": 7, "explanation": "She weeps quietly."},
                {"id": "x", "text": "  "},
            ]
        )
    )
    out = tmp_path / "pseudo.jsonl"
    with JudgeTestServer(ServerConfig(seed=1, labels=("sad",))) as server:
        assert (
            erv_main(
                [
                    "verifier",
                    "augment",
                    "pseudo-label",
                    "--explanations",
                    str(src),
                    "--dataset",
                    "DFEW",
                    "--out",
                    str(out),
                    *judge_args(server),
                ]
            )
            == 0
        )
    assert [(r["id"], r["labels"]) for r in read_jsonl(out)] == [("#1", ["sad"]), ("7", ["sad"])]
    assert "2 explanations with text, 1 without (not sent)" in capsys.readouterr().out


# ---------------------------------------------------------------- complement


def write_train(path, rows):
    path.write_text("".join(json.dumps({"text": t, "labels": labels}) + "\n" for t, labels in rows))
    return path


@pytest.fixture
def train(tmp_path):
    rows = [(f"Her nose wrinkles at the smell of dish {i}.", ["disgust"]) for i in range(3)]
    rows += [("He backs away and his hands shake.", ["fear"]), ("She gasps and freezes.", ["fear", "surprise"])]
    rows += [(f"A broad smile, number {i}.", ["happy"]) for i in range(6)]
    return write_train(tmp_path / "train.jsonl", rows)


def complement_args(train, out, server, *extra):
    return [
        "verifier",
        "augment",
        "complement",
        "--data",
        str(train),
        "--dataset",
        "DFEW",
        "--out",
        str(out),
        "--classes",
        "disgust",
        "Fear",
        "happy",
        *judge_args(server, *extra),
    ]


def test_complement_reaches_targets_and_resumes_without_duplicates(tmp_path, train, capsys):
    out = tmp_path / "complement.jsonl"
    with JudgeTestServer(ServerConfig(seed=6)) as server:
        assert erv_main(complement_args(train, out, server, "--target", "8")) == 0
        first = read_jsonl(out)
        assert server.request_count >= 5 + 6 + 2  # disgust 3 -> 8, fear 2 -> 8, happy 6 -> 8 (+ any duplicates)
        printed = capsys.readouterr().out
        assert re.search(r"disgust\s+3\s+3\s+8\n", printed) and re.search(r"fear\s+2\s+2\s+8\n", printed)
        assert re.search(r"happy\s+6\s+6\s+8\n", printed)
        assert printed.strip().splitlines()[-1].endswith("classes at target 3 of 3")
        assert sum(1 for r in first if r["labels"] == ["disgust"]) == 5
        assert sum(1 for r in first if r["labels"] == ["fear"]) == 6
        for record in first:
            label = record["labels"][0]
            assert f" {label}: " in record["text"] and record["judge"] == "test-judge" and record["error"] is None
            assert len(record["shots"]) == 2 and record["shots"][0] != record["shots"][1]
        keys = [dedupe_key(r["text"]) for r in first]
        assert len(set(keys)) == len(keys)

        server.reset_stats()
        assert erv_main(complement_args(train, out, server, "--target", "8")) == 0
        assert server.request_count == 0  # already at the target: nothing to ask

        assert erv_main(complement_args(train, out, server, "--target", "11")) == 0
        second = read_jsonl(out)
        assert {r["id"] for r in first} < {r["id"] for r in second}
        for label in ("disgust", "fear", "happy"):
            assert (
                sum(1 for r in second if r["labels"] == [label]) == 11 - {"disgust": 3, "fear": 2, "happy": 6}[label]
            )
        keys = [dedupe_key(r["text"]) for r in second]
        assert len(set(keys)) == len(keys) and len({r["id"] for r in second}) == len(second)
    examples = load_examples(out, "DFEW") + load_examples(train, "DFEW")
    counts = label_counts(examples, "DFEW")
    assert counts["disgust"] == counts["fear"] == counts["happy"] == 11 and counts["surprise"] == 1


def test_complement_drops_duplicates_and_reports_a_stalled_class(tmp_path, train, capsys):
    stuck = "Her face and voice clearly show fear: he backs away and his hands shake."
    lock, disgust_calls = threading.Lock(), []

    seeds: list[int] = []

    def responder(body):
        with lock:
            seeds.append(body["seed"])
        if body["messages"][-1]["content"].endswith("Target Emotion: fear"):
            return stuck  # the "judge" knows one fear description only
        with lock:
            disgust_calls.append(body["seed"])
            first = len(disgust_calls) == 1
        # The first disgust reply repeats a training text (case, quotes and the cue differ).
        return (
            '"Description: HER NOSE WRINKLES AT THE SMELL OF DISH 0"' if first else f"New disgust text {body['seed']}."
        )

    out = tmp_path / "complement.jsonl"
    with JudgeTestServer(ServerConfig(seed=1, responder=responder)) as server:
        code = erv_main(
            [
                "verifier",
                "augment",
                "complement",
                "--data",
                str(train),
                "--dataset",
                "DFEW",
                "--out",
                str(out),
                "--classes",
                "disgust",
                "fear",
                "--target",
                "5",
                *judge_args(server),
            ]
        )
        assert server.request_count == 2 + 1 + 3 + 2 + 2  # disgust: rounds of 2, 1; fear: 3, 2, 2
    assert code == 1
    written = read_jsonl(out)
    assert [r["text"] for r in written if r["labels"] == ["fear"]] == [stuck]
    disgust = [r["text"] for r in written if r["labels"] == ["disgust"]]
    assert len(disgust) == 2 and all(t.startswith("New disgust text") for t in disgust)
    captured = capsys.readouterr()
    assert re.search(r"disgust\s+3\s+3\s+5\n", captured.out)
    assert re.search(r"fear\s+2\s+2\s+3\s+short by 2", captured.out)
    assert (
        "10 requests in 3 rounds" in captured.out and "7 duplicates dropped" in captured.out
    )  # 1 disgust + 2 + 2 + 2 fear
    assert "no progress in two rounds for fear" in captured.err
    # A re-run asks only new draws (the draw counters survive in OUT.draws.json), and still adds no duplicate.
    assert json.loads((tmp_path / "complement.jsonl.draws.json").read_text()) == {"disgust": 3, "fear": 7}
    first_run = set(seeds)
    seeds.clear()
    with JudgeTestServer(ServerConfig(seed=1, responder=responder)) as server:
        assert (
            erv_main(
                [
                    "verifier",
                    "augment",
                    "complement",
                    "--data",
                    str(train),
                    "--dataset",
                    "DFEW",
                    "--out",
                    str(out),
                    "--classes",
                    "disgust",
                    "fear",
                    "--target",
                    "5",
                    *judge_args(server),
                ]
            )
            == 1
        )
    assert len(seeds) == 2 + 2 and not set(seeds) & first_run
    assert read_jsonl(out) == written


def test_complement_prompts_show_two_examples_of_the_class(tmp_path, train):
    seen: list[dict] = []

    def responder(body):
        seen.append(body)
        return f"A fresh description {len(seen)} {body['seed']}."

    out = tmp_path / "c.jsonl"
    config = JudgeConfig(model="m", api_key_env=KEY_ENV, max_retries=0, temperature=0.7, cache=None)
    with JudgeTestServer(ServerConfig(responder=responder)) as server:
        config.base_url = server.base_url
        summary = run_complement([train], "DFEW", out, config, classes=["fear"], target=4, seed=3, progress=False)
    assert summary.after == {"fear": 4} and summary.before == {"fear": 2} and summary.generated == 2
    fear_texts = ["He backs away and his hands shake.", "She gasps and freezes."]
    for body in seen:
        assert body["temperature"] == 0.7 and isinstance(body["seed"], int)
        prompt = body["messages"][-1]["content"]
        assert prompt in (complement_prompt("fear", fear_texts), complement_prompt("fear", fear_texts[::-1]))
    assert len({body["seed"] for body in seen}) == len(seen)


def test_complement_refuses_what_cannot_work(tmp_path, train, capsys):
    out = tmp_path / "c.jsonl"
    config = JudgeConfig(model="m", api_key_env=KEY_ENV, base_url="http://127.0.0.1:9/v1", temperature=0.0)
    with pytest.raises(ConfigError, match="temperature must be above 0"):
        run_complement([train], "DFEW", out, config, classes=["fear"], target=4)
    config.temperature = 1.0
    with pytest.raises(TaxonomyError, match="'calm' is not a DFEW label"):
        run_complement([train], "DFEW", out, config, classes=["calm"], target=4)
    with pytest.raises(ConfigError, match=r"too few for: surprise \(1\)"):
        run_complement([train], "DFEW", out, config, classes=["surprise"], target=4)
    with pytest.raises(ConfigError, match="is also an input"):
        run_complement([train], "DFEW", train, config, classes=["fear"], target=4)
    with pytest.raises(ConfigError, match="--no-cache"):
        run_complement(
            [train],
            "DFEW",
            out,
            JudgeConfig(model="m", api_key_env=KEY_ENV, temperature=1.0, cache=tmp_path / "c.sqlite"),
            classes=["fear"],
            target=4,
            request_seed=False,
        )
    assert (
        erv_main(
            [
                "verifier",
                "augment",
                "complement",
                "--data",
                str(train),
                "--dataset",
                "DFEW",
                "--out",
                str(out),
                "--temperature",
                "0",
                "--api-key-env",
                KEY_ENV,
            ]
        )
        == 2
    )
    assert "temperature must be above 0" in capsys.readouterr().err
    assert erv_main(["verifier", "augment", "grow"]) == 2
    assert "pseudo-label, complement" in capsys.readouterr().err


def test_pseudo_label_relabels_a_changed_explanation_or_refuses(tmp_path, capsys):
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, 5)
    out = tmp_path / "pseudo.jsonl"
    with JudgeTestServer(ServerConfig(seed=3)) as server:
        assert erv_main(pseudo_args(pred, out, server, "--no-cache")) == 0
        records[2]["response"] = "<think>Tears run down her face and she sobs.</think><answer>sad</answer>"
        pred.write_text("".join(json.dumps(r) + "\n" for r in records))
        before = out.read_text()
        capsys.readouterr()
        assert erv_main(pseudo_args(pred, out, server, "--no-cache", "--on-changed", "refuse")) == 2
        assert "was computed from another explanation" in capsys.readouterr().err and out.read_text() == before
        server.reset_stats()
        assert erv_main(pseudo_args(pred, out, server, "--no-cache")) == 0
        assert server.request_count == 1
    printed = capsys.readouterr().out
    assert "1 labelled again (explanation changed)" in printed
    assert read_jsonl(out)[2]["text"] == "Tears run down her face and she sobs."
