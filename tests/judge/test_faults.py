"""Fault tolerance of `erv judge` as a real process against a misbehaving server.

20% of requests fail with 429/500, some hang past the client's timeout, some bodies are
malformed, some replies are garbage or name an emotion outside the list, some prompts fail
for ever; the process is SIGKILLed mid-run and restarted. The server's decisions are
deterministic per (prompt, attempt), so the test knows exactly what the final file must hold.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from erv.judge.prompts import explanation_emotion_prompt, parse_emotion_reply
from erv.testing.judge_server import JudgeTestServer, ServerConfig, prompt_key
from tests.helpers.judge import erv_judge_cmd, run_erv_judge, write_predictions
from tests.helpers.paths import read_jsonl, subprocess_env

KEY = "sk-fault-test-0123456789"
N = 150


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _prompt_of(record: dict) -> str | None:
    if "<think>" not in record["response"]:
        return None
    return explanation_emotion_prompt(record["response"].split("<think>")[1].split("</think>")[0].strip(), "DFEW")


def _check_against_server(records, final, server) -> set[str]:
    """Exactly one record per id; a success iff the server's last decision for it was a reply.

    Returns the ids that failed although their prompt is not a permanent failure.
    """
    assert [j["id"] for j in final] == [r["id"] for r in records]  # none lost, none duplicated, in order
    stats = server.snapshot()
    transient = set()
    for rec, judgment in zip(records, final, strict=True):
        prompt = _prompt_of(rec)
        if prompt is None:
            assert judgment["error"].startswith("no explanation")
            continue
        last = stats.last_outcome[prompt_key(_messages(prompt))]
        if judgment["error"] is None:
            # a success is exactly what the server answered: a label, or null with the raw text
            assert last == "ok", (rec["id"], last)
            assert judgment["raw"] == server.expected_reply(prompt)
            assert judgment["explanation_emotion"] == parse_emotion_reply(judgment["raw"], "DFEW")
        else:
            assert last != "ok", (rec["id"], judgment)
            assert judgment["explanation_emotion"] is None and judgment["raw"] is None
            if server.is_permanent_failure(_messages(prompt)):
                assert "HTTP 500" in judgment["error"]
            else:
                transient.add(rec["id"])
    return transient


@pytest.mark.slow
def test_killed_and_restarted_job_ends_with_one_record_per_id(tmp_path):
    # 20% of requests 429/500, 3% hang past the timeout, 2% malformed bodies; per prompt 5%
    # garbage, 5% out-of-list labels, 4% permanent failures. From a prompt's 3rd attempt on,
    # only permanent failures remain, so the test can demand that retrying ends them.
    config = ServerConfig(
        seed=1234,
        latency=0.08,
        rate_429=0.10,
        rate_500=0.10,
        rate_hang=0.03,
        hang_seconds=2.0,
        rate_malformed=0.02,
        rate_garbage=0.05,
        rate_out_of_list=0.05,
        rate_permanent_failure=0.04,
        max_transient_faults=2,
        retry_after_ms=5,
        api_key=KEY,
    )
    pred = tmp_path / "P.jsonl"
    records = write_predictions(pred, N, no_think_every=25)
    no_think = N // 25
    out = tmp_path / "J.jsonl"
    env = subprocess_env(ERV_FAULT_KEY=KEY)
    with JudgeTestServer(config) as server:
        permanent = {
            r["id"] for r in records if _prompt_of(r) and server.is_permanent_failure(_messages(_prompt_of(r)))
        }
        assert permanent, "the seed should produce permanently failing prompts"
        base = [
            "--predictions",
            str(pred),
            "--dataset",
            "DFEW",
            "--out",
            str(out),
            "--model",
            "judge-under-test",
            "--base-url",
            server.base_url,
            "--api-key-env",
            "ERV_FAULT_KEY",
            "--timeout",
            "0.5",
            "--concurrency",
            "6",
            "--no-progress",
        ]

        # Run 1: SIGKILLed once part of the file is written.
        proc = subprocess.Popen(
            erv_judge_cmd(*base, "--max-retries", "0"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 40:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL, "the job finished before it could be killed"
        assert 40 <= len(read_jsonl(out)) < N
        assert server.wait_idle(timeout=10)  # the killed process's in-flight requests are over

        # Run 2: resumes without SDK retries, so transient faults end as errors too.
        second = run_erv_judge(*base, "--max-retries", "0", env=env)
        assert second.returncode == 1, second.stderr
        transient = _check_against_server(records, read_jsonl(out), server)
        assert transient, "the seed should produce transient failures"
        outcomes = server.snapshot().outcomes
        assert all(outcomes[k] for k in ("429", "500", "hang", "malformed")), outcomes
        assert KEY not in second.stdout + second.stderr

        # Run 3: only failed ids are asked again, with SDK retries. Every prompt's attempts now
        # start at the 2nd, past which only a malformed body at exactly the 2nd attempt (not
        # retried by the SDK) could fail transiently; this seed has none, so all succeed.
        failed = transient | permanent
        attempts_before = server.snapshot().attempts
        third = run_erv_judge(*base, "--max-retries", "2", env=env)
        assert third.returncode == 1  # the permanent failures remain
        attempts_after = server.snapshot().attempts
        asked = {k for k, v in attempts_after.items() if v > attempts_before.get(k, 0)}
        assert len(asked) == len(failed)  # nothing that had succeeded was asked again
        final = read_jsonl(out)
        assert _check_against_server(records, final, server) == set()
        assert {j["id"] for j in final if j["error"] and not j["error"].startswith("no explanation")} == permanent
        assert third.stdout.strip().splitlines()[-1] == (
            f"judged {len(transient)} / cached 0 / failed {len(permanent) + no_think} / "
            f"skipped {N - len(transient) - len(permanent) - no_think}"
        )
