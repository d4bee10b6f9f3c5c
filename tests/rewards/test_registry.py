"""The reward registry GRPO recipes name rewards by."""

from __future__ import annotations

import subprocess
import sys

import pytest

from erv.errors import ConfigError
from erv.rewards import REWARDS, ExplanationReward, accuracy_reward, build_reward, build_rewards, format_reward
from erv.testing.synthetic_text import save_tiny_verifier, word_tokenizer


def test_importing_the_rewards_loads_no_model_library():
    code = "import sys, erv.rewards; print(sorted(m for m in ('torch', 'transformers', 'openai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names_build_the_paper_rewards():
    assert list(REWARDS) == ["format", "accuracy", "explanation", "fgce"]
    assert build_reward("format") is format_reward
    assert build_reward("accuracy") is accuracy_reward
    bound = build_reward("accuracy", {"taxonomy": "MAFW", "verifier_threshold": 0.3})  # other rewards' options ignored
    assert bound(["<answer>Anger</answer>"], solution=["anger"]) == [1.0]


def test_unknown_names_list_the_registry():
    with pytest.raises(
        ConfigError,
        match=r"unknown reward 'answer'; registered rewards: format, accuracy, explanation, "
        r"fgce",
    ):
        build_rewards(["format", "answer"])
    with pytest.raises(ConfigError, match="no reward functions"):
        build_rewards([])


def test_dotted_paths_import_any_reward_function():
    assert build_reward("erv.rewards.basic:format_reward") is format_reward
    with pytest.raises(ConfigError, match="cannot import 'erv.nope'"):
        build_reward("erv.nope:reward")
    with pytest.raises(ConfigError, match="has no 'nope'"):
        build_reward("erv.rewards.basic:nope")


def test_explanation_reward_needs_a_verifier_that_exists(tmp_path):
    with pytest.raises(ConfigError, match="needs a verifier"):
        build_reward("explanation", {"taxonomy": "DFEW"})
    with pytest.raises(ConfigError, match="nope"):
        build_reward("explanation", {"verifier": str(tmp_path / "nope"), "taxonomy": "DFEW"})


def test_explanation_presets_and_overrides(tmp_path):
    tokenizer = word_tokenizer("he is sad happy angry neutral".split())
    save_tiny_verifier(tmp_path / "v", tokenizer, ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"])
    released = build_reward("explanation", {"verifier": str(tmp_path / "v"), "taxonomy": "DFEW"})
    assert isinstance(released, ExplanationReward)
    assert (released.threshold, released.top_k, released.neutral_rule) == (0.1, 2, "only")
    paper = build_reward(
        "explanation",
        {
            "verifier": str(tmp_path / "v"),
            "taxonomy": "DFEW",
            "explanation_preset": "paper",
            "neutral_filter": False,
            "sentence_level": False,
        },
    )
    assert (paper.threshold, paper.neutral_rule, paper.neutral_filter, paper.sentence_level) == (
        0.5,
        "any",
        False,
        False,
    )
    tuned = build_reward(
        "explanation",
        {
            "verifier": str(tmp_path / "v"),
            "taxonomy": "DFEW",
            "verifier_threshold": 0.3,
            "verifier_top_k": 1,
            "sentence_splitter": "punkt",
        },
    )
    assert (tuned.threshold, tuned.top_k, tuned.splitter) == (0.3, 1, "punkt")
    with pytest.raises(ConfigError, match="explanation_preset must be one of released, paper"):
        build_reward("explanation", {"verifier": str(tmp_path / "v"), "explanation_preset": "best"})
