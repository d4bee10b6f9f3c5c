"""JudgeClient with the real openai SDK against the test server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from erv.errors import ConfigError
from erv.judge.client import JudgeClient, JudgeConfig
from erv.judge.prompts import (
    explanation_emotion_prompt,
    fgce_classify_prompt,
    fgce_score_prompt,
    parse_fgce_classification,
    parse_fgce_score,
)
from erv.testing.judge_server import JudgeTestServer, ServerConfig

KEY_ENV = "ERV_TEST_JUDGE_KEY"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-client-test-key-0000")
    return "sk-client-test-key-0000"


def _config(server: JudgeTestServer, **kw) -> JudgeConfig:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("max_retries", 2)
    return JudgeConfig(model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV, **kw)


def _prompts(n: int) -> list[str]:
    return [explanation_emotion_prompt(f"Explanation number {i}: she smiles and laughs.", "DFEW") for i in range(n)]


def test_answers_match_the_server_and_arrive_in_order(key):
    with JudgeTestServer(ServerConfig(seed=3, api_key=key)) as server:
        prompts = _prompts(12)
        with JudgeClient(_config(server)) as client:
            replies = client.complete_many(prompts)
        assert [r.text for r in replies] == [server.expected_reply(p) for p in prompts]
        assert all(r.ok and not r.cached and r.retries == 0 for r in replies)
        assert server.request_count == 12


def test_concurrency_is_bounded_and_used(key):
    with JudgeTestServer(ServerConfig(latency=0.15)) as server:
        with JudgeClient(_config(server, concurrency=8)) as client:
            start = time.perf_counter()
            replies = client.complete_many(_prompts(40))
            elapsed = time.perf_counter() - start
        stats = server.snapshot()
    assert all(r.ok for r in replies)
    assert stats.max_in_flight == 8
    assert elapsed < 40 * 0.15 / 3  # 5 waves of 0.15 s, far below the 6 s of a sequential loop


def test_server_and_client_sustain_more_than_32_connections(key):
    with JudgeTestServer(ServerConfig(latency=0.3)) as server:
        with JudgeClient(_config(server, concurrency=48)) as client:
            replies = client.complete_many(_prompts(96))
        assert all(r.ok for r in replies)
        assert server.snapshot().max_in_flight == 48


def test_transient_failures_are_retried_by_the_sdk(key):
    config = ServerConfig(seed=11, rate_429=0.25, rate_500=0.25, max_transient_faults=2, retry_after_ms=5)
    with JudgeTestServer(config) as server:
        prompts = _prompts(30)
        with JudgeClient(_config(server, max_retries=2)) as client:
            replies = client.complete_many(prompts)
        stats = server.snapshot()
    assert all(r.ok for r in replies), [r.error for r in replies if not r.ok]
    assert stats.outcomes["429"] + stats.outcomes["500"] > 0
    assert sum(r.retries for r in replies) == stats.outcomes["429"] + stats.outcomes["500"]


def test_failures_become_values_never_exceptions(key):
    config = ServerConfig(seed=5, rate_permanent_failure=0.3, rate_malformed=0.2, retry_after_ms=1)
    with JudgeTestServer(config) as server:
        prompts = _prompts(30)
        with JudgeClient(_config(server, max_retries=1)) as client:
            replies = client.complete_many(prompts)
        for prompt, reply in zip(prompts, replies, strict=True):
            if server.is_permanent_failure([{"role": "user", "content": prompt}]):
                assert reply.text is None and reply.error.startswith("InternalServerError: HTTP 500")
                assert "after 1 retries" in reply.error
        kinds = {r.error.split(":")[0] for r in replies if r.error}
        assert "InternalServerError" in kinds
        assert any("malformed response" in (r.error or "") for r in replies)


def test_timeouts_are_retried_then_reported(key):
    config = ServerConfig(rate_hang=1.0, hang_seconds=3.0)
    with JudgeTestServer(config) as server:
        with JudgeClient(_config(server, timeout=0.3, max_retries=1)) as client:
            start = time.perf_counter()
            [reply] = client.complete_many(_prompts(1))
            elapsed = time.perf_counter() - start
        assert server.snapshot().outcomes["hang"] == 2  # first try + one retry
    assert reply.error.startswith("APITimeoutError: request timed out after 0.3 s")
    assert elapsed < 2.5


def test_cache_stores_successes_only_and_makes_reruns_free(key, tmp_path):
    config = ServerConfig(seed=2, rate_permanent_failure=0.25, retry_after_ms=1)
    with JudgeTestServer(config) as server:
        prompts = _prompts(20)
        cfg = _config(server, max_retries=0, cache=tmp_path / "cache.sqlite")
        with JudgeClient(cfg) as client:
            first = client.complete_many(prompts)
        failures = sum(not r.ok for r in first)
        assert 0 < failures < 20
        server.reset_stats()
        with JudgeClient(cfg) as client:
            second = client.complete_many(prompts)
        assert server.request_count == failures  # only the failures are asked again
        assert [r.text for r in second if r.ok] == [r.text for r in first if r.ok]
        assert all(r.cached for r, f in zip(second, first, strict=True) if f.ok)
        # A different model, system message or json mode is another request: not a cache hit.
        server.reset_stats()
        with JudgeClient(cfg) as client:
            client.complete_many(prompts[:2], system="You are a careful rater.")
        assert server.request_count == 2


def test_client_works_across_event_loops_and_threads(key):
    """TRL awaits reward functions on its own loop in another thread; asyncio.run makes new loops."""
    with JudgeTestServer(ServerConfig(seed=9, latency=0.01)) as server:
        client = JudgeClient(_config(server, concurrency=4))
        prompts = _prompts(6)

        async def gather_some(ps):
            return await asyncio.gather(*(client.complete(p) for p in ps))

        first = asyncio.run(gather_some(prompts[:3]))  # loop 1 (then closed without aclose)
        second = asyncio.run(gather_some(prompts[3:]))  # loop 2

        # a long-lived loop in a background thread, used via run_coroutine_threadsafe (TRL's way)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            third = asyncio.run_coroutine_threadsafe(gather_some(prompts), loop).result(timeout=20)
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
        expected = [server.expected_reply(p) for p in prompts]
        assert [r.text for r in first + second] == expected
        assert [r.text for r in third] == expected

        # complete_many called from inside a running loop (a notebook) still works
        async def inside_a_loop():
            return client.complete_many(prompts[:2])

        assert [r.text for r in asyncio.run(inside_a_loop())] == expected[:2]
        client.close()


def test_fgce_round_trip_with_json_mode(key):
    with JudgeTestServer(ServerConfig(seed=4)) as server:
        context = "The speaker's voice cracks. She wipes her eyes. She is sad."
        with JudgeClient(_config(server)) as client:
            [stage1] = client.complete_many([fgce_classify_prompt("She wipes her eyes.", context)], json_mode=True)
            parsed = parse_fgce_classification(stage1.text)
            assert parsed["function"] in ("information extraction", "information analysis", "conclusion", "others")
            if parsed["function"] == "others":
                return
            [stage2] = client.complete_many(
                [fgce_score_prompt("She wipes her eyes.", parsed["function"], emotion="sad", context=context)],
                json_mode=True,
            )
            assert 1 <= parse_fgce_score(stage2.text) <= 5


def test_missing_key_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} is not set"):
        JudgeClient(JudgeConfig(api_key_env=KEY_ENV))


@pytest.mark.parametrize(
    "bad", [dict(concurrency=0), dict(timeout=0), dict(max_retries=-1), dict(model=" "), dict(max_tokens=0)]
)
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        JudgeConfig(**bad)


@pytest.mark.parametrize("url", ["not a url", "localhost:8000/v1", "ftp://host/v1", "http://host:port/v1"])
def test_invalid_base_url_is_refused_when_configured(url):
    with pytest.raises(ConfigError, match="--base-url"):
        JudgeConfig(base_url=url)


def test_an_html_page_is_reported_as_not_json(key):
    """A proxy's login page (HTTP 200, text/html) is no "reply without choices"."""
    with JudgeTestServer(ServerConfig(rate_html=1.0)) as server:
        with JudgeClient(_config(server, max_retries=0)) as client:
            [reply] = client.complete_many(_prompts(1))
    assert not reply.ok and "reply is not JSON (text/html" in reply.error and "<!DOCTYPE html>" in reply.error


def test_errors_no_retry_can_fix_are_fatal_and_stop_sending(key):
    with JudgeTestServer(ServerConfig(api_key="sk-another-key")) as server:
        with JudgeClient(_config(server, concurrency=4)) as client:
            replies = client.complete_many(_prompts(10))
        assert server.request_count == 1  # the first request goes alone; its 401 stops the rest
    assert all(r.fatal and "HTTP 401" in r.error for r in replies)
    with JudgeTestServer(ServerConfig(rate_500=1.0, retry_after_ms=1)) as server:
        with JudgeClient(_config(server, max_retries=0)) as client:
            replies = client.complete_many(_prompts(3))
        assert server.request_count == 3  # a server error may pass: not fatal
    assert not any(r.fatal for r in replies)
