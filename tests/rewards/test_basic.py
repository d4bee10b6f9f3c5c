"""Format and accuracy rewards: TRL signature, taxonomy from a column or the recipe, bad input."""

from __future__ import annotations

import logging

import pytest

from erv.errors import ConfigError, TaxonomyError
from erv.rewards import accuracy_reward, format_reward, make_accuracy_reward


def chat(text):
    return [{"role": "assistant", "content": text}]


def test_format_reward_is_the_paper_regex():
    completions = [
        "<think>He frowns.</think>\n<answer>anger</answer>",
        "<think>multi\nline</think><answer>sad</answer>",
        "<think>x</think><answer>sad</answer> trailing",
        "<answer>sad</answer>",
        "<THINK>x</THINK><ANSWER>sad</ANSWER>",  # case-sensitive like the paper's regex
        chat("<think>a</think> <answer>b</answer>"),
    ]
    assert format_reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_format_reward_counts_invalid_completions(caplog):
    logged = {}
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        out = format_reward(
            [None, "", 3, "<think>a</think><answer>b</answer>"], log_metric=lambda k, v: logged.__setitem__(k, v)
        )
    assert out == [0.0, 0.0, 0.0, 1.0]
    assert "3 of 4 completions" in caplog.text
    assert logged == {"format_reward/invalid_completions": 3.0}


def test_accuracy_with_a_dataset_column_per_sample():
    completions = [
        "<think>.</think><answer>Angry.</answer>",
        "<think>.</think><answer>anger</answer>",
        "<think>.</think><answer>worried</answer>",
        "<think>.</think><answer>happy</answer>",
    ]
    solution = ["angry", "<answer> anger </answer>", "anxiety", "<answer>sad</answer>"]
    out = accuracy_reward(completions, solution, dataset=["DFEW", "MAFW", "MAFW", "DFEW"])
    assert out == [1.0, 1.0, 1.0, 0.0]


def test_accuracy_with_a_recipe_taxonomy_and_chat_completions():
    reward = make_accuracy_reward(taxonomy="MAFW")
    assert reward.__name__ == "accuracy_reward"
    out = reward(
        prompts=["p"] * 3,
        completions=[
            chat("<answer>sad</answer>"),
            chat("<answer>sadness</answer>"),
            chat("<answer>helpless</answer>"),
        ],
        completion_ids=[[1]] * 3,
        solution=["sadness", "sadness", "helplessness"],
        trainer_state=None,
    )
    assert out == [1.0, 1.0, 1.0]
    # a column still wins over the recipe default
    assert reward(["<answer>angry</answer>"], ["angry"], taxonomy=["DFEW"]) == [1.0]


def test_unknown_or_missing_answer_is_wrong_never_neutral():
    reward = make_accuracy_reward("DFEW")
    completions = [
        "<think>calm</think><answer>calm</answer>",
        "<think>.</think>",
        "neutral",
        "<answer>happy/sad</answer>",
        None,
        "<answer>neutral</answer>",
    ]
    assert reward(completions, ["neutral"] * 6) == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_taxonomy_is_never_guessed_from_the_video_path():
    with pytest.raises(ConfigError, match="no taxonomy"):
        accuracy_reward(["<answer>sad</answer>"], ["sad"], video=["/data/MAFW/clips/001.mp4"])


def test_bad_gold_and_bad_taxonomy_names_raise_with_the_sample():
    reward = make_accuracy_reward("MAFW")
    with pytest.raises(TaxonomyError, match="sample 1"):
        reward(["<answer>sad</answer>"] * 2, ["sadness", "melancholy"])
    with pytest.raises(TaxonomyError, match="sample 0"):
        accuracy_reward(["<answer>sad</answer>"], ["sad"], dataset=["AFEW"])
    with pytest.raises(TaxonomyError):
        make_accuracy_reward("AFEW")
    with pytest.raises(ConfigError, match="values"):
        accuracy_reward(["<answer>sad</answer>"] * 2, ["sad"] * 2, dataset=["DFEW"])


def test_trl_sees_the_reward_names():
    from trl.trainer.utils import get_callable_name, is_async_callable

    reward = make_accuracy_reward("DFEW")
    assert get_callable_name(reward) == "accuracy_reward" and not is_async_callable(reward)
    assert get_callable_name(format_reward) == "format_reward"
