"""Algorithm 1 (the ERV explanation reward) pinned on hand-made sentence label sets.

Probabilities are injected through a fake classifier (`fake_verifier`: one table row per
sentence) so each case runs the real reward path: <think> extraction, splitting, batched
scoring, label-set selection and the neutral bookkeeping.
"""

from __future__ import annotations

import logging
import random
import warnings

import pytest
import torch

from erv.data.emotions import GOEMOTIONS_LABELS
from erv.errors import ConfigError, TaxonomyError
from erv.rewards import ExplanationReward, explanation_scores, score_label_sets
from erv.testing.synthetic_text import tiny_roberta, word_tokenizer
from erv.verifier.predict import select_label_sets
from tests.helpers.verifier import fake_verifier

HEAD = ("anger", "happiness", "neutral", "sadness", "surprise", "fear")  # a head over MAFW labels

TABLE = {
    "He is crying.": {"sadness": 0.9},
    "Tears run down his face.": {"sadness": 0.7, "neutral": 0.05},
    "He shouts at her.": {"anger": 0.8},
    "The room is dim.": {"neutral": 0.9},
    "He sits by the window.": {"neutral": 0.6},
    "He looks down, quietly.": {"neutral": 0.6, "sadness": 0.5},
    "Everything happens at once.": {"sadness": 0.9, "anger": 0.8, "fear": 0.7},
    "A faint hint of something.": {"fear": 0.02, "sadness": 0.05, "anger": 0.01},
    "He smiles and laughs.": {"happiness": 0.95},
}
GO_TABLE = {"He is crying.": {"sadness": 0.9}}


def think(*sentences: str, answer: str = "sadness") -> str:
    return f"<think>{' '.join(sentences)}</think>\n<answer>{answer}</answer>"


@pytest.fixture
def verifier():
    return fake_verifier(TABLE, HEAD, taxonomy="MAFW")


def reward_of(reward: ExplanationReward, completion: str, gold: str) -> float:
    return reward([completion], [gold])[0]


# ---------------------------------------------------------------- the pure definition


@pytest.mark.parametrize(
    "sets, gold, rule, filt, expected",
    [
        ([], "sadness", "only", True, 0.0),  # no sentence
        ([{"neutral"}, {"neutral"}], "sadness", "only", True, 0.0),  # all neutral: 0/0
        ([{"neutral"}, {"sadness"}, {"neutral", "sadness"}], "neutral", "only", True, 2 / 3),  # neutral gold: c/N
        ([{"neutral"}, {"sadness"}], "sadness", "only", True, 1.0),  # neutral sentence filtered
        ([{"neutral"}, {"sadness"}], "sadness", "only", False, 0.5),  # filter off: c/N
        ([{"neutral", "sadness"}, {"sadness"}, {"anger"}], "sadness", "only", True, 2 / 3),
        ([{"neutral", "sadness"}, {"sadness"}, {"anger"}], "sadness", "any", True, 1 / 2),
        ([{"neutral", "sadness"}], "sadness", "any", True, 0.0),  # only sentence is neutral
        ([{"anger"}, {"fear", "anger"}], "sadness", "only", True, 0.0),
    ],
)
def test_score_label_sets(sets, gold, rule, filt, expected):
    assert score_label_sets(sets, gold, neutral_rule=rule, neutral_filter=filt) == pytest.approx(expected)


def test_score_label_sets_stays_in_unit_interval_under_rule_any():
    sets = [{"neutral", "sadness"}, {"neutral", "sadness"}, {"sadness"}]
    assert score_label_sets(sets, "sadness", neutral_rule="any") == 1.0


def test_batched_scores_match_reference_on_random_label_sets():
    rng = random.Random(0)
    labels = ["anger", "neutral", "sadness", "fear"]
    for rule in ("only", "any"):
        for filt in (True, False):
            per_completion, golds = [], []
            for _ in range(200):
                n = rng.randint(0, 5)
                per_completion.append([set(rng.sample(labels, rng.randint(1, 2))) for _ in range(n)])
                golds.append(rng.choice(labels))
            flat = [s for sets in per_completion for s in sets]
            selected = torch.tensor([[lab in s for lab in labels] for s in flat], dtype=torch.bool).reshape(-1, 4)
            scores, _ = explanation_scores(
                selected,
                [len(s) for s in per_completion],
                [labels.index(g) for g in golds],
                labels.index("neutral"),
                neutral_rule=rule,
                neutral_filter=filt,
            )
            expected = [
                score_label_sets(s, g, neutral_rule=rule, neutral_filter=filt)
                for s, g in zip(per_completion, golds, strict=True)
            ]
            assert scores == pytest.approx(expected)


def test_select_label_sets_threshold_top_k_and_top1():
    probs = torch.tensor(
        [
            [0.9, 0.8, 0.7, 0.0],  # 3 over tau -> top 2
            [0.05, 0.02, 0.0, 0.01],  # none over tau -> top 1
            [0.3, 0.0, 0.2, 0.0],
        ]
    )  # 2 over tau -> both
    sel = select_label_sets(probs, 0.1, top_k=2, at_least_one=True)
    assert sel.tolist() == [[True, True, False, False], [True, False, False, False], [True, False, True, False]]
    assert select_label_sets(probs, 0.1, top_k=None, at_least_one=False)[1].sum() == 0


# ---------------------------------------------------------------- through the reward


def test_empty_or_missing_think_gets_zero(verifier):
    reward = ExplanationReward(verifier)
    out = reward(
        ["<think></think><answer>sadness</answer>", "<answer>sadness</answer>", "<think>   </think>"], ["sadness"] * 3
    )
    assert out == [0.0, 0.0, 0.0]
    assert reward.last_stats["no_think"] == 3
    assert reward.last_stats["sentences"] == 0


def test_all_neutral_explanation_gets_zero_for_emotional_gold(verifier):
    reward = ExplanationReward(verifier)
    assert reward_of(reward, think("The room is dim.", "He sits by the window."), "sadness") == 0.0
    assert reward.last_stats["share_neutral"] == 1.0


def test_neutral_gold_counts_all_sentences(verifier):
    reward = ExplanationReward(verifier)
    completion = think("The room is dim.", "He is crying.", "He looks down, quietly.")
    # {neutral}, {sadness}, {neutral, sadness}: 2 contain neutral out of N = 3
    assert reward_of(reward, completion, "neutral") == pytest.approx(2 / 3)
    assert reward.last_stats["gold_neutral"] == 1


def test_more_than_k_labels_keeps_the_top_k(verifier):
    reward = ExplanationReward(verifier)  # tau 0.1, k 2: {sadness .9, anger .8}, fear .7 dropped
    assert reward_of(reward, think("Everything happens at once."), "anger") == 1.0
    assert reward_of(reward, think("Everything happens at once."), "fear") == 0.0
    wide = ExplanationReward(verifier, top_k=3)
    assert reward_of(wide, think("Everything happens at once."), "fear") == 1.0


def test_no_label_over_tau_falls_back_to_top1(verifier):
    reward = ExplanationReward(verifier)
    assert reward_of(reward, think("A faint hint of something."), "sadness") == 1.0
    assert reward_of(reward, think("A faint hint of something."), "fear") == 0.0


def test_neutral_rules_only_and_any(verifier):
    completion = think("He looks down, quietly.", "He is crying.", "He shouts at her.")
    # sentence 1 = {neutral, sadness}: neutral under "any", not under "only" (released code)
    only = ExplanationReward(verifier, neutral_rule="only")
    any_ = ExplanationReward(verifier, neutral_rule="any")
    assert reward_of(only, completion, "sadness") == pytest.approx(2 / 3)
    assert reward_of(any_, completion, "sadness") == pytest.approx(1 / 2)
    assert only.last_stats["share_neutral"] == 0.0
    assert any_.last_stats["share_neutral"] == pytest.approx(1 / 3)


def test_threshold_changes_label_sets(verifier):
    quiet = think("He looks down, quietly.", "He is crying.")  # sentence 1: neutral .6, sadness .5
    low = ExplanationReward(verifier, neutral_filter=False)  # {neutral, sadness}, {sadness}
    high = ExplanationReward(verifier, threshold=0.55, neutral_filter=False)  # {neutral}, {sadness}
    assert reward_of(low, quiet, "sadness") == 1.0
    assert reward_of(high, quiet, "sadness") == 0.5


def test_neutral_filter_off(verifier):
    completion = think("The room is dim.", "He is crying.")
    assert reward_of(ExplanationReward(verifier), completion, "sadness") == 1.0
    assert reward_of(ExplanationReward(verifier, neutral_filter=False), completion, "sadness") == 0.5


def test_sentence_level_off_classifies_the_whole_explanation():
    whole = "He shouts at her. He is crying."
    table = {**TABLE, whole: {"anger": 0.7, "sadness": 0.05}}
    verifier = fake_verifier(table, HEAD, taxonomy="MAFW")
    completion = think("He shouts at her.", "He is crying.")
    assert reward_of(ExplanationReward(verifier), completion, "sadness") == 0.5
    flat = ExplanationReward(verifier, sentence_level=False)
    assert reward_of(flat, completion, "sadness") == 0.0
    assert reward_of(flat, completion, "anger") == 1.0
    assert flat.last_stats["sentences"] == 1


def test_splitter_choice():
    table = {
        "Dr.": {"neutral": 0.9},
        "Smith looks sad.": {"sadness": 0.9},
        "He cries.": {"sadness": 0.8},
        "Dr. Smith looks sad.": {"sadness": 0.9},
    }
    verifier = fake_verifier(table, HEAD, taxonomy="MAFW")
    completion = think("Dr. Smith looks sad. He cries.")
    regex = ExplanationReward(verifier, splitter="regex", neutral_filter=False)
    punkt = ExplanationReward(verifier, splitter="punkt", neutral_filter=False)
    assert regex.sentences(completion) == ["Dr.", "Smith looks sad.", "He cries."]
    with warnings.catch_warnings():  # without NLTK's punkt_tab data erv warns that it uses untrained Punkt
        warnings.simplefilter("ignore")
        assert punkt.sentences(completion) == ["Dr. Smith looks sad.", "He cries."]
        assert reward_of(punkt, completion, "sadness") == 1.0
    assert reward_of(regex, completion, "sadness") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="splitter"):
        ExplanationReward(verifier, splitter="spacy")


def test_goemotions_head_layout_maps_and_decides_over_all_28_columns():
    table = {
        "She beams with joy.": {"joy": 0.9},
        "She keeps glancing at the door.": {"nervousness": 0.6},
        "He admires the view, approvingly.": {"admiration": 0.9, "approval": 0.8, "joy": 0.5},
        "Nothing much happens.": {"neutral": 0.9},
    }
    verifier = fake_verifier(table, GOEMOTIONS_LABELS, taxonomy="MAFW")
    assert verifier.layout.kind == "goemotions" and verifier.neutral_index == 27
    reward = ExplanationReward(verifier)
    assert reward_of(reward, think("She beams with joy.", "Nothing much happens."), "happiness") == 1.0
    assert reward_of(reward, think("She keeps glancing at the door."), "anxiety") == 1.0
    # three labels over tau 0.1: top-2 are admiration and approval, so joy is not among them
    assert reward_of(reward, think("He admires the view, approvingly."), "happiness") == 0.0
    assert (
        reward_of(ExplanationReward(verifier, top_k=3), think("He admires the view, approvingly."), "happiness") == 1.0
    )


def test_dfew_gold_on_a_mafw_label_head(verifier):
    reward = ExplanationReward(verifier, taxonomy="DFEW")
    assert reward([think("He shouts at her.", answer="angry")], ["<answer> angry </answer>"]) == [1.0]
    # a per-sample taxonomy column wins over the constructor's
    out = reward([think("He is crying."), think("He is crying.")], ["sad", "sadness"], dataset=["DFEW", "MAFW"])
    assert out == [1.0, 1.0]


def test_paper_and_released_presets(verifier):
    paper = ExplanationReward.paper(verifier)
    released = ExplanationReward.released(verifier)
    default = ExplanationReward(verifier)
    assert (paper.threshold, paper.top_k, paper.neutral_rule) == (0.5, 2, "any")
    assert (released.threshold, released.top_k, released.neutral_rule) == (0.1, 2, "only")
    assert (default.threshold, default.neutral_rule) == (released.threshold, released.neutral_rule)
    assert ExplanationReward.from_preset("paper", verifier, threshold=0.4).threshold == 0.4
    completion = think("He looks down, quietly.", "He is crying.", "He shouts at her.")
    # paper: tau .5 drops sadness .5 from sentence 1 -> {neutral}: filtered; {sadness}; {anger}
    assert reward_of(paper, completion, "sadness") == 0.5
    with pytest.raises(ConfigError, match="preset"):
        ExplanationReward.from_preset("best", verifier)
    assert default.__name__ == "explanation_reward"
    assert ExplanationReward(verifier, name="erv").__name__ == "erv"


# ---------------------------------------------------------------- batching and bad input


def test_identical_sentences_are_scored_once_in_few_batches(verifier):
    model = verifier.model
    reward = ExplanationReward(verifier, batch_size=4)
    completions = [
        think("He is crying.", "He shouts at her.", "The room is dim."),
        think("He is crying.", "Tears run down his face."),
        think("He shouts at her.", "He is crying."),
    ] * 5
    out = reward(completions, ["sadness"] * len(completions))
    assert out == [pytest.approx(1 / 2), 1.0, pytest.approx(1 / 2)] * 5
    assert model.rows_seen == 4 and model.calls == 1
    assert reward.last_stats["sentences"] == 35 and reward.last_stats["unique_sentences"] == 4


def test_invalid_completions_get_zero_with_a_counted_warning(verifier, caplog):
    reward = ExplanationReward(verifier)
    completions = [
        None,
        17,
        "",
        "   ",
        [{"role": "assistant", "content": think("He is crying.")}],
        {"content": ["not text"]},
    ]
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        out = reward(completions, ["sadness"] * 6)
    assert out == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert reward.last_stats["invalid"] == 5
    assert "5 of 6 completions are empty or not text" in caplog.text
    assert reward.totals["invalid"] == 5


def test_unknown_gold_raises_naming_the_sample(verifier):
    reward = ExplanationReward(verifier)
    with pytest.raises(TaxonomyError, match="sample 1"):
        reward([think("He is crying."), think("He is crying.")], ["sadness", "melancholy"])


def test_gold_without_a_verifier_output_gets_none(caplog):
    verifier = fake_verifier(GO_TABLE, GOEMOTIONS_LABELS, taxonomy="MAFW")
    reward = ExplanationReward(verifier, taxonomy="RAVDESS")  # calm has no GoEmotions column
    with caplog.at_level(logging.WARNING, logger="erv.rewards"):
        out = reward([think("He is crying.")], ["calm"])
    assert out == [None]
    assert reward.last_stats["unmapped_gold"] == 1


def test_trl_call_signature_and_metric_logging(verifier):
    logged: dict[str, float] = {}
    reward = ExplanationReward(verifier)
    out = reward(
        prompts=[[{"role": "user", "content": "q"}]] * 2,
        completions=[
            [{"role": "assistant", "content": think("He is crying.")}],
            [{"role": "assistant", "content": think("He shouts at her.")}],
        ],
        completion_ids=[[1, 2], [3]],
        solution=["<answer> sadness </answer>"] * 2,
        video=["a.mp4", "b.mp4"],
        trainer_state=None,
        log_extra=lambda *a: None,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [1.0, 0.0]
    assert logged["explanation_reward/mean_sentences"] == 1.0
    assert {"explanation_reward/share_neutral", "explanation_reward/invalid"} <= logged.keys()


def test_no_taxonomy_anywhere_is_a_config_error():
    verifier = fake_verifier(GO_TABLE, GOEMOTIONS_LABELS)  # the released layout records no taxonomy
    reward = ExplanationReward(verifier)
    with pytest.raises(ConfigError, match="taxonomy"):
        reward([think("He is crying.")], ["sadness"])


def test_bad_options_fail_at_construction(verifier):
    with pytest.raises(ConfigError):
        ExplanationReward(verifier, neutral_rule="some")
    with pytest.raises(ConfigError):
        ExplanationReward(verifier, threshold=1.5)
    with pytest.raises(ConfigError):
        ExplanationReward(verifier, top_k=0)


def test_batched_reward_equals_per_sentence_scoring_with_a_real_model():
    """Dedup + length-sorted micro-batches change nothing: compare with one-at-a-time forwards."""
    words = "he she is sad angry happy calm looks away cries shouts smiles at the door window and".split()
    tok = word_tokenizer(words)
    model = tiny_roberta(tok, HEAD, seed=3)
    rng = random.Random(1)
    pool = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + "." for _ in range(12)]
    completions = [think(*rng.sample(pool, rng.randint(1, 5))) for _ in range(20)]
    from erv.verifier.model import Verifier

    reward = ExplanationReward(Verifier(model, tok, taxonomy="MAFW"), batch_size=3, max_batch_tokens=40)
    golds = [rng.choice(["sadness", "anger", "neutral", "happiness"]) for _ in completions]
    batched = reward(completions, golds)

    expected = []
    for completion, gold in zip(completions, golds, strict=True):
        sets = []
        for sentence in reward.sentences(completion):
            with torch.inference_mode():
                enc = tok(sentence, return_tensors="pt")
                probs = torch.sigmoid(model(**enc).logits)[0]
            chosen = select_label_sets(probs[None], 0.1, 2, True)[0]
            sets.append({HEAD[j] for j in range(len(HEAD)) if chosen[j]})
        expected.append(score_label_sets(sets, gold))
    assert batched == pytest.approx(expected)
    assert reward.verifier.last_stats.batches > 1


def test_an_empty_step_returns_no_rewards(verifier):
    reward = ExplanationReward(verifier)
    assert reward([], []) == []
    assert reward.last_stats["sentences"] == 0


def test_trl_sees_the_explanation_reward_name(verifier):
    from trl.trainer.utils import get_callable_name, is_async_callable

    reward = ExplanationReward(verifier, name="erv_explanation")
    assert get_callable_name(reward) == "erv_explanation" and not is_async_callable(reward)
