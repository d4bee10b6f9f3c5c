"""FGCEReward (CA-EMER's FG-CE) against the real openai SDK and a scripted test server.

The server's `rules` fix what the judge says about each hand-made sentence, so every reward
below is computed by hand from the weights (function: extraction 1, analysis 1, conclusion 2,
others 0; modality: one 1, pair 2, all three 3) and reward = (mean − 1) / 4.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from erv.errors import ConfigError
from erv.judge.client import JudgeClient, JudgeConfig
from erv.rewards import FGCEReward, fgce_reward_value, fgce_sentence_weight
from erv.testing.judge_server import JudgeTestServer, ServerConfig

KEY_ENV = "ERV_TEST_FGCE_KEY"

S1 = "The woman frowns deeply."  # extraction, visual (w 1), score 4
S2 = "Her voice trembles and rises at the end."  # analysis, audio-visual (w 2), score 3
S3 = "Together these cues suggest anger."  # conclusion, audio-visual-contextual (w 6), score 5
S4 = "The weather in the scene is nice."  # others (w 0), no stage 2
BAD_JSON = "She glances at the door."  # stage 1 reply is not JSON
BAD_SCORE = "He clenches his jaw."  # stage 2 reply is 7
FAILS = "The man shouts at the waiter."  # stage 1 fails with HTTP 500 every time

WEIGHTED = ((4 * 1 + 3 * 2 + 5 * 6) / (1 + 2 + 6) - 1) / 4  # 31/36
UNWEIGHTED = ((4 + 3 + 5 + 0) / 4 - 1) / 4  # 0.5


def classify_rule(sentence: str, function: str, modality: str) -> tuple[str, str]:
    reply = json.dumps({"function": function, "modality": modality, "confidence": 0.9})
    return r"Step to classify:\s*" + re.escape(sentence) + r"\s*\Z", reply


def score_rule(sentence: str, reply: str) -> tuple[str, str]:
    return r"(?:Step to grade|Conclusion step):\s*" + re.escape(sentence) + r"\s*\n", reply


RULES = (
    classify_rule(S1, "information extraction", "visual"),
    classify_rule(S2, "Information Analysis", "visual-audio"),  # case and order are normalised
    classify_rule(S3, "conclusion", "audio-visual-contextual"),
    classify_rule(S4, "others", "contextual"),
    (r"Step to classify:\s*" + re.escape(BAD_JSON) + r"\s*\Z", '{"function": "conclusion", "modality"'),
    classify_rule(BAD_SCORE, "information extraction", "visual"),
    (r"Step to classify:\s*" + re.escape(FAILS) + r"\s*\Z", 500),
    score_rule(S1, '{"score": 4}'),
    score_rule(S2, "3"),
    score_rule(S3, '```json\n{"score": 5}\n```'),
    score_rule(BAD_SCORE, '{"score": 7}'),
)


def completion(*sentences: str, answer: str = "angry") -> str:
    return f"<think>{' '.join(sentences)}</think>\n<answer>{answer}</answer>"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-fgce-test-key")


@pytest.fixture
def server():
    with JudgeTestServer(ServerConfig(seed=5, rules=RULES)) as srv:
        yield srv


def config(server: JudgeTestServer, **kw) -> JudgeConfig:
    base = dict(
        model="test-judge", base_url=server.base_url, api_key_env=KEY_ENV, max_retries=0, timeout=5, concurrency=16
    )
    base.update(kw)
    return JudgeConfig(**base)


# ---------------------------------------------------------------- the formula


def test_reward_value_weights_and_edges():
    items = [
        ("information extraction", "visual", 4),
        ("information analysis", "audio-visual", 3),
        ("conclusion", "audio-visual-contextual", 5),
        ("others", "contextual", 0),
    ]
    assert fgce_reward_value(items) == pytest.approx(31 / 36)
    assert fgce_reward_value(items, weighted=False) == pytest.approx(0.5)
    assert fgce_sentence_weight("conclusion", "audio-visual-contextual") == 6
    assert fgce_sentence_weight("others", "audio-visual") == 0
    assert fgce_reward_value([]) == 0.0 and fgce_reward_value([], weighted=False) == 0.0
    assert fgce_reward_value([("others", "visual", 0)]) == 0.0  # zero total weight -> 0
    assert fgce_reward_value([("others", "visual", 0)], weighted=False) == -0.25
    assert fgce_reward_value([("conclusion", "audio", 1)]) == 0.0
    assert fgce_reward_value([("conclusion", "audio", 5), ("information extraction", "visual", 1)]) == pytest.approx(
        ((5 * 2 + 1) / 3 - 1) / 4
    )


# ---------------------------------------------------------------- end to end


def test_weighted_and_unweighted_rewards_from_scripted_judge(server):
    comps = [completion(S1, S2, S3, S4)]
    weighted = FGCEReward(config(server), taxonomy="DFEW")
    assert weighted.compute(comps, solution=["angry"]) == [pytest.approx(WEIGHTED)]
    assert server.request_count == 4 + 3  # four classifications, three scores ("others" is not scored)
    stats = weighted.last_stats
    assert stats["sentences"] == 4 and stats["share_others"] == 0.25 and stats["requests"] == 7
    unweighted = FGCEReward(config(server), weighted=False, taxonomy="DFEW")
    assert unweighted.compute(comps, solution=["<answer> Angry </answer>"]) == [pytest.approx(UNWEIGHTED)]


def test_wrong_answer_invalid_and_empty_think_get_zero_without_calls(server, caplog):
    reward = FGCEReward(config(server), taxonomy="DFEW")
    comps = [
        completion(S1, S3, answer="sad"),
        completion(S1, S3, answer="confused"),
        None,
        42,
        "",
        "<answer>angry</answer>",
        "<think>  </think><answer>angry</answer>",
    ]
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        assert reward.compute(comps, solution=["angry"] * len(comps)) == [0.0] * len(comps)
    assert server.request_count == 0
    stats = reward.last_stats
    assert (stats["wrong_answer"], stats["invalid"], stats["no_think"], stats["judged"]) == (2, 3, 2, 0)
    assert "3 of 7 completions are empty or not text" in caplog.text


def test_malformed_replies_are_never_a_score(server, caplog):
    comps = [completion(S1, BAD_JSON), completion(S1, BAD_SCORE), completion(S3, BAD_SCORE)]
    lenient = FGCEReward(config(server), taxonomy="DFEW")
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        rewards = lenient.compute(comps, solution=["angry"] * 3)
    # The malformed sentence counts as "others": weight 0, so only S1 (4) or S3 (5) remains.
    assert rewards == [pytest.approx(0.75), pytest.approx(0.75), pytest.approx(1.0)]
    stats = lenient.last_stats
    assert stats["malformed_classification"] == 1 and stats["malformed_score"] == 2  # counted per sentence
    assert stats["malformed_samples"] == 3
    assert "malformed" in caplog.text
    unweighted = FGCEReward(config(server), taxonomy="DFEW", weighted=False)
    assert unweighted.compute(comps[:1], solution=["angry"]) == [pytest.approx(((4 + 0) / 2 - 1) / 4)]
    strict = FGCEReward(config(server), taxonomy="DFEW", malformed="none")
    assert strict.compute(comps + [completion(S1)], solution=["angry"] * 4) == [None, None, None, pytest.approx(0.75)]


def test_malformed_replies_are_not_cached(server, tmp_path):
    reward = FGCEReward(config(server, cache=tmp_path / "judge.sqlite"), taxonomy="DFEW")
    comps = [completion(S1, BAD_JSON)]
    reward.compute(comps, solution=["angry"])
    assert server.request_count == 3  # two classifications, one score
    reward.compute(comps, solution=["angry"])
    assert server.request_count == 4  # only the malformed reply is asked again
    assert reward.last_stats["cached"] == 2
    reward.close()


def test_judge_failure_gives_none_for_that_completion_only(server, caplog):
    reward = FGCEReward(config(server), taxonomy="DFEW")
    comps = [completion(S1, FAILS, S3), completion(S1, S3), completion(FAILS, answer="sad")]
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        rewards = reward.compute(comps, solution=["angry", "angry", "angry"])
    assert rewards[0] is None and rewards[2] == 0.0
    assert rewards[1] == pytest.approx(((4 * 1 + 5 * 6) / 7 - 1) / 4)
    assert reward.last_stats["judge_failures"] == 1
    assert "1 completions get reward None" in caplog.text and "HTTP 500" in caplog.text


def test_unreachable_judge_never_raises(tmp_path):
    cfg = JudgeConfig(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, max_retries=0, timeout=2)
    reward = FGCEReward(cfg, taxonomy="DFEW")
    assert reward.compute([completion(S1), completion(S1, answer="sad")], solution=["angry", "angry"]) == [None, 0.0]


def test_identical_requests_are_sent_once_per_call_and_cached_across_calls(server, tmp_path):
    reward = FGCEReward(config(server, cache=tmp_path / "judge.sqlite"), taxonomy="DFEW")
    c1 = completion(S1, S2, S3, S4)
    c3 = completion(S1, S3)  # same sentences, another explanation: new classifications
    rewards = reward.compute([c1, c1, c3, c1], solution=["angry"] * 4)
    assert rewards[:2] == [pytest.approx(WEIGHTED)] * 2 and rewards[3] == pytest.approx(WEIGHTED)
    # c1: 4 classify + 3 score; c3: 2 classify + S1's extraction score (its prompt holds the
    # explanation); S3's conclusion prompt has no explanation in it, so c1's request serves c3.
    assert server.request_count == 7 + 3
    assert reward.last_stats["unique_sentences"] == 6 and reward.last_stats["unique_scores"] == 4
    assert reward.compute([c1, c3], solution=["angry", "angry"]) == [pytest.approx(WEIGHTED), rewards[2]]
    assert server.request_count == 10 and reward.last_stats["cached"] == 10
    reward.close()


# ---------------------------------------------------------------- event loops and TRL


def test_awaited_inside_a_running_loop_and_sync_compute_inside_one(server):
    reward = FGCEReward(config(server), taxonomy="DFEW")

    async def main():
        awaited = await reward(completions=[completion(S1, S2, S3, S4)], solution=["angry"])
        blocking = reward.compute([completion(S1, S2, S3, S4)], solution=["angry"])  # a loop is running here
        await reward.judge.aclose()
        return awaited, blocking

    awaited, blocking = asyncio.run(main())
    assert awaited == blocking == [pytest.approx(WEIGHTED)]


def test_runs_on_a_trl_style_daemon_loop_with_the_trl_signature(server):
    from trl.trainer.utils import get_callable_name, is_async_callable, start_event_loop_in_daemon

    reward = FGCEReward(config(server))
    assert is_async_callable(reward) and get_callable_name(reward) == "fgce_reward"
    thread, loop, ready = start_event_loop_in_daemon(name="reward-loop")
    ready.wait()
    metrics: dict[str, list[float]] = {}
    try:
        for _ in range(2):  # the same loop serves every step, reusing one SDK client
            coro = reward(
                prompts=["p", "p"],
                completions=[
                    [{"role": "assistant", "content": completion(S1, S2, S3, S4)}],
                    completion(S1, answer="happy"),
                ],
                completion_ids=[[1], [2]],
                solution=["angry", "angry"],
                dataset=["DFEW", "DFEW"],
                trainer_state=None,
                log_extra=lambda *a: None,
                log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
            )
            rewards = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)
            assert rewards == [pytest.approx(WEIGHTED), 0.0]
    finally:
        asyncio.run_coroutine_threadsafe(reward.judge.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
    assert server.request_count == 7 * 2  # no cache configured: each step asks again
    assert metrics["fgce_reward/judged"] == [1.0, 1.0] and "fgce_reward/judge_failures" in metrics


def test_construction_errors(server, monkeypatch):
    with pytest.raises(ConfigError, match="malformed"):
        FGCEReward(config(server), malformed="neutral")
    with pytest.raises(ConfigError, match="JudgeClient"):
        FGCEReward("gpt-4.1-mini")
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        FGCEReward({"model": "m", "api_key_env": KEY_ENV})
    monkeypatch.setenv(KEY_ENV, "k")
    client = JudgeClient(config(server))
    reward = FGCEReward(client)
    with pytest.raises(ConfigError, match="no taxonomy"):
        reward.compute([completion(S1)], solution=["angry"])


def test_rules_file_for_the_command_line_test_server(tmp_path):
    from erv.testing.judge_server import load_rules

    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps([[r"Step to classify:\s*Hi\.\Z", '{"function": "others", "modality": "audio"}'], ["boom", 503]])
    )
    rules = load_rules(str(path))
    with JudgeTestServer(ServerConfig(rules=rules)) as srv:
        assert srv.expected_reply("Step to classify:\nHi.") == '{"function": "others", "modality": "audio"}'
        assert srv.scripted_reply("a boom here") == 503 and srv.scripted_reply("nothing") is None
        client = JudgeClient(config(srv))
        [reply] = client.complete_many(["boom"])
        assert not reply.ok and "HTTP 503" in reply.error
    path.write_text('[["(unclosed", "x"]]')
    with pytest.raises(ConfigError, match="bad regex"):
        load_rules(str(path))


def test_a_rejected_key_stops_training_instead_of_giving_none_rewards():
    with JudgeTestServer(ServerConfig(api_key="sk-not-this-one", rules=RULES)) as srv:
        reward = FGCEReward(config(srv), taxonomy="DFEW")
        with pytest.raises(ConfigError, match="FG-CE judge: the endpoint refuses the requests: .*HTTP 401"):
            reward.compute([completion(S1, S2, S3)] * 4, solution=["angry"] * 4)
        assert srv.request_count == 1
