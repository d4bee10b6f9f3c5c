"""Paired differences of two systems on the same samples (erv.eval.paired)."""

import json

import numpy as np
import pytest

from erv.data.emotions import DFEW, UNKNOWN
from erv.errors import RecordError
from erv.eval.metrics import compute_metrics, encode
from erv.eval.paired import compare_files, paired_differences

GOLD = ["happy", "happy", "sad", "sad", "neutral", "angry"]
PRED_A = ["happy", UNKNOWN, "sad", "happy", "neutral", "sad"]
EXPL_A = ["sad", None, "sad", "happy", "angry", "sad"]
PRED_B = ["happy", "happy", "sad", "happy", "neutral", "angry"]
EXPL_B = ["happy", "happy", "sad", "sad", "neutral", "angry"]


def _pair():
    return encode(GOLD, PRED_A, DFEW, EXPL_A), encode(GOLD, PRED_B, DFEW, EXPL_B)


def test_point_differences_are_the_differences_of_each_systems_metrics():
    a, b = _pair()
    diffs = paired_differences(a, b, n_resamples=0)
    ma = compute_metrics(a, with_coherence=True, n_resamples=0)
    mb = compute_metrics(b, with_coherence=True, n_resamples=0)
    for name in ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct"):
        assert diffs[name]["a"] == pytest.approx(ma[name])
        assert diffs[name]["b"] == pytest.approx(mb[name])
        assert diffs[name]["difference"] == pytest.approx(mb[name] - ma[name])
        assert diffs[name]["ci"] is None  # no resamples, no interval
    # by hand: A gets 3 of 6 right, B 5 of 6; A's explanation matches the gold for 1 of its 5 judged
    # samples (one is unjudged), B's for all 6
    assert diffs["war"]["difference"] == pytest.approx(5 / 6 - 3 / 6)
    assert diffs["eea"]["a"] == pytest.approx(1 / 5) and diffs["eea"]["b"] == pytest.approx(1.0)


def test_a_system_against_itself_differs_by_exactly_zero_in_every_resample():
    a, _ = _pair()
    diffs = paired_differences(a, a, n_resamples=300, seed=1)
    for name, row in diffs.items():
        assert row["difference"] == 0.0, name
        assert row["ci"] == [0.0, 0.0], name


def test_the_interval_matches_resampling_clips_by_index():
    """The multinomial draw over joint cells is the paired bootstrap: same distribution as
    resampling clip indices and scoring both systems on each resample."""
    rng = np.random.default_rng(0)
    n = 400
    gold = rng.integers(0, 7, n)
    right_a = rng.random(n) < 0.6
    right_b = right_a | (rng.random(n) < 0.15)  # B is A plus some extra right answers: correlated
    pred_a = np.where(right_a, gold, (gold + 1) % 7)
    pred_b = np.where(right_b, gold, (gold + 2) % 7)
    labels = DFEW.labels
    a = encode([labels[g] for g in gold], [labels[p] for p in pred_a], DFEW, [labels[p] for p in pred_a])
    b = encode([labels[g] for g in gold], [labels[p] for p in pred_b], DFEW, [labels[g] for g in gold])
    diffs = paired_differences(a, b, n_resamples=4000, seed=3)

    index_draws = rng.integers(0, n, size=(4000, n))
    delta = (right_b[index_draws].mean(axis=1)) - (right_a[index_draws].mean(axis=1))
    low, high = np.quantile(delta, [0.025, 0.975])
    ours = diffs["war"]["ci"]
    assert ours[0] == pytest.approx(low, abs=0.006) and ours[1] == pytest.approx(high, abs=0.006)
    # pairing matters: the paired interval is much narrower than the two independent ones put together
    independent_sd = np.sqrt(right_a.mean() * (1 - right_a.mean()) / n + right_b.mean() * (1 - right_b.mean()) / n)
    assert (ours[1] - ours[0]) < 0.6 * (2 * 1.96 * independent_sd)
    assert diffs["war"]["ci"][0] > 0  # B is better and the interval says so


def test_unpaired_outcomes_are_refused():
    a, _ = _pair()
    other = encode(list(reversed(GOLD)), PRED_B, DFEW, EXPL_B)
    with pytest.raises(ValueError, match="same samples"):
        paired_differences(a, other)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _files(tmp_path, name, preds, expls, ids=None):
    ids = ids or [f"{i:05d}" for i in range(len(GOLD))]
    predictions = [
        {
            "id": i,
            "video": f"{i}.mp4",
            "dataset": "DFEW",
            "gold": g,
            "response": f"<think>{e or 'x'}.</think><answer>{p}</answer>",
        }
        for i, g, p, e in zip(ids, GOLD, preds, expls, strict=True)
    ]
    return _write(tmp_path / f"{name}.jsonl", predictions)


def test_compare_files_aligns_by_id_and_checks_coverage(tmp_path):
    a = _files(tmp_path, "a", PRED_A, EXPL_A)
    b = _files(tmp_path, "b", PRED_B, EXPL_B)
    result = compare_files(a, b, "DFEW", n_resamples=200)
    assert result["n"] == 6 and result["unpaired"] == 0
    assert result["differences"]["war"]["difference"] == pytest.approx(2 / 6)
    assert "eea" not in result["differences"]  # no judgments, no coherence metrics

    shifted = _files(tmp_path, "c", PRED_B, EXPL_B, ids=[f"{i:05d}" for i in range(1, len(GOLD) + 1)])
    with pytest.raises(RecordError, match="same clips"):
        compare_files(a, shifted, "DFEW")


def test_compare_files_refuses_predictions_of_another_dataset(tmp_path):
    a = _files(tmp_path, "a", PRED_A, EXPL_A)
    b = _files(tmp_path, "b", PRED_B, EXPL_B)
    with pytest.raises(RecordError, match=r"a.jsonl:1: sample 00000 is from dataset 'DFEW', but --dataset is MAFW"):
        compare_files(a, b, "MAFW")
