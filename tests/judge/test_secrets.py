"""A recognisable fake API key never appears in output, files, logs or error messages."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from erv.cli import main as erv_main
from erv.judge.client import JudgeClient, JudgeConfig, _Redactor
from erv.testing.judge_server import JudgeTestServer, ServerConfig
from tests.helpers.judge import run_erv_judge, write_predictions
from tests.helpers.paths import subprocess_env

SECRET = "sk-ERVSECRET-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c1e"
FRAGMENTS = (SECRET, SECRET[3:15], SECRET[-12:], "ERVSECRET")


def _assert_clean(text: str, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"key fragment {fragment!r} leaked into {where}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def logs():
    """Every log record of every logger at DEBUG, formatted with its arguments."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Keep(level=logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.parametrize("scenario", ["ok", "server_rejects_key", "unreachable", "server_echoes_key"])
def test_key_never_leaks_in_process(tmp_path, monkeypatch, capsys, logs, scenario):
    monkeypatch.setenv("ERV_SECRET_KEY", SECRET)
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 6)
    out = tmp_path / "J.jsonl"
    cache = tmp_path / "cache.sqlite"
    accepted = SECRET if scenario in ("ok", "server_echoes_key") else "sk-some-other-key"
    config = ServerConfig(api_key=accepted, echo_authorization=scenario == "server_echoes_key")
    with JudgeTestServer(config) as server:
        base_url = server.base_url if scenario != "unreachable" else f"http://127.0.0.1:{_free_port()}/v1"
        rc = erv_main(
            [
                "judge",
                "--predictions",
                str(pred),
                "--dataset",
                "DFEW",
                "--out",
                str(out),
                "--model",
                "m",
                "--base-url",
                base_url,
                "--api-key-env",
                "ERV_SECRET_KEY",
                "--max-retries",
                "1",
                "--timeout",
                "2",
                "--cache",
                str(cache),
                "--no-progress",
            ]
        )
        if scenario == "server_rejects_key":
            assert SECRET in server.snapshot().authorization_seen  # the key was really sent ...
    captured = capsys.readouterr()
    assert rc == {"ok": 0, "server_echoes_key": 0, "server_rejects_key": 2, "unreachable": 1}[scenario]
    if scenario == "server_rejects_key":  # an endpoint-wide error: one line, nothing recorded per sample
        assert "AuthenticationError: HTTP 401: Incorrect API key provided: ***" in captured.err  # ... and scrubbed
    if scenario == "unreachable":
        assert "cannot connect to http://127.0.0.1:" in out.read_text()
    if scenario == "server_echoes_key":  # a 200 reply that quotes the Authorization header
        raws = [json.loads(line)["raw"] for line in out.read_text().splitlines()]
        assert len(raws) == 6 and all("request authorised with: Bearer ***" in raw for raw in raws)
        assert cache.exists()
    _assert_clean(captured.out, "stdout")
    _assert_clean(captured.err, "stderr")
    _assert_clean(out.read_text(), "the judgments file")
    if cache.exists():
        _assert_clean(cache.read_bytes().decode("utf-8", "replace"), "the cache")
    assert logs, "expected the SDK to log at DEBUG"
    for record in logs:
        _assert_clean(record.getMessage(), f"log record of {record.name}")
        _assert_clean(repr(record.__dict__), f"log record attributes of {record.name}")


def test_key_never_leaks_from_the_cli_process_with_sdk_debug_logging(tmp_path):
    pred = tmp_path / "P.jsonl"
    write_predictions(pred, 4)
    out = tmp_path / "J.jsonl"
    env = subprocess_env(ERV_SECRET_KEY=SECRET, OPENAI_LOG="debug")
    with JudgeTestServer(ServerConfig(api_key="sk-another")) as server:
        proc = run_erv_judge(
            "--predictions",
            str(pred),
            "--dataset",
            "DFEW",
            "--out",
            str(out),
            "--model",
            "m",
            "--base-url",
            server.base_url,
            "--api-key-env",
            "ERV_SECRET_KEY",
            "--max-retries",
            "0",
            env=env,
        )
    assert proc.returncode == 2  # a rejected key stops the run: no retry can fix it
    assert "HTTP 401" in proc.stderr
    assert "DEBUG" in proc.stderr  # the SDK's debug logging was really on
    _assert_clean(proc.stdout, "stdout")
    _assert_clean(proc.stderr, "stderr (OPENAI_LOG=debug)")
    if out.exists():
        _assert_clean(out.read_text(), "the judgments file")


def test_client_objects_and_error_messages_hide_the_key(monkeypatch):
    monkeypatch.setenv("ERV_SECRET_KEY", SECRET)
    config = JudgeConfig(api_key_env="ERV_SECRET_KEY", base_url=f"http://127.0.0.1:{_free_port()}/v1", max_retries=0)
    client = JudgeClient(config)
    _assert_clean(repr(client) + repr(config) + str(config.to_dict()), "reprs")
    [reply] = client.complete_many(["hello"])
    assert reply.error.startswith("APIConnectionError: cannot connect")
    _assert_clean(reply.error, "the reply error")
    # A server that echoes parts of the key is scrubbed too.
    redact = _Redactor(SECRET)
    assert (
        redact(f"bad key {SECRET[:20]}...{SECRET[-6:]}") == f"bad key ***...{SECRET[-6:]}"
    )  # 6 chars: too short to matter
    assert redact(f"x{SECRET}y, {SECRET[5:13]}") == "x***y, ***"
    _assert_clean(client.describe_error(RuntimeError(f"boom {SECRET}")), "describe_error")
    client.close()
