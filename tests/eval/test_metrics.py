import random

import numpy as np
import pytest

from erv.data.emotions import DFEW, MAFW, UNKNOWN
from erv.eval.metrics import aggregate_folds, bootstrap_intervals, compute_metrics, encode

GOLD = ["happy", "happy", "sad", "sad", "neutral"]
PRED = ["happy", UNKNOWN, "sad", "happy", "neutral"]
EXPL = ["happy", None, "sad", "sad", "angry"]


def test_hand_computed_recognition():
    m = compute_metrics(encode(GOLD, PRED, DFEW), with_coherence=False, n_resamples=0)
    assert m["n"] == 5 and m["unknown"] == 1
    assert m["war"] == pytest.approx(3 / 5)
    assert m["uar"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)  # only classes present among gold
    assert m["per_class_recall"] == {
        "happy": 0.5,
        "sad": 0.5,
        "neutral": 1.0,
        "angry": None,
        "surprise": None,
        "disgust": None,
        "fear": None,
    }
    assert m["confusion"]["happy"] == {
        "happy": 1,
        "sad": 0,
        "neutral": 0,
        "angry": 0,
        "surprise": 0,
        "disgust": 0,
        "fear": 0,
        "unknown": 1,
    }
    assert m["confusion"]["sad"]["happy"] == 1 and m["confusion"]["fear"]["unknown"] == 0
    assert "eea" not in m and m["ci95"] == {}


def test_hand_computed_coherence():
    m = compute_metrics(encode(GOLD, PRED, DFEW, EXPL), with_coherence=True, n_resamples=0)
    assert (m["judged"], m["unjudged"]) == (4, 1)
    assert m["eea"] == pytest.approx(3 / 4)  # s0, s2, s3
    assert m["epc"] == pytest.approx(2 / 4)  # s0, s2
    assert m["fcr"] == pytest.approx(2 / 4)  # s0, s2
    assert m["fcr_given_correct"] == pytest.approx(2 / 3)  # correct & judged: s0, s2, s4
    # WAR/UAR still count every sample, judged or not
    assert m["war"] == pytest.approx(3 / 5)


def test_unknown_prediction_never_matches_an_explanation():
    m = compute_metrics(encode(["sad"], [UNKNOWN], DFEW, ["sad"]), with_coherence=True, n_resamples=0)
    assert (m["war"], m["eea"], m["epc"], m["fcr"]) == (0.0, 1.0, 0.0, 0.0)
    assert m["fcr_given_correct"] is None  # no correct judged sample


def test_nothing_judged():
    m = compute_metrics(encode(GOLD, PRED, DFEW, [None] * 5), with_coherence=True, n_resamples=200)
    assert m["judged"] == 0 and m["eea"] is None and m["fcr"] is None
    assert m["ci95"]["eea"] is None and m["ci95"]["war"] is not None


def test_single_class_and_all_wrong():
    m = compute_metrics(encode(["fear"] * 3, ["sad", UNKNOWN, "fear"], DFEW), with_coherence=False, n_resamples=0)
    assert m["war"] == pytest.approx(1 / 3) and m["uar"] == pytest.approx(1 / 3)
    m = compute_metrics(encode(["fear"] * 3, [UNKNOWN] * 3, DFEW), with_coherence=False, n_resamples=0)
    assert m["war"] == 0.0 and m["uar"] == 0.0 and m["unknown"] == 3


def test_encode_rejects_unnormalised_labels():
    with pytest.raises(ValueError, match="gold label 'Happy'"):
        encode(["Happy"], ["happy"], DFEW)
    with pytest.raises(ValueError, match="predicted label 'joy'"):
        encode(["happy"], ["joy"], DFEW)
    with pytest.raises(ValueError, match="explanation label 'unknown'"):
        encode(["happy"], ["happy"], DFEW, [UNKNOWN])


def _brute_force(gold, pred, expl, labels):
    n = len(gold)
    war = sum(p == g for p, g in zip(pred, gold, strict=True)) / n
    recalls = []
    for c in labels:
        idx = [i for i in range(n) if gold[i] == c]
        if idx:
            recalls.append(sum(pred[i] == c for i in idx) / len(idx))
    judged = [i for i in range(n) if expl[i] is not None]
    out = {"war": war, "uar": sum(recalls) / len(recalls)}
    if judged:
        out["eea"] = sum(expl[i] == gold[i] for i in judged) / len(judged)
        out["epc"] = sum(expl[i] == pred[i] for i in judged) / len(judged)
        out["fcr"] = sum(expl[i] == pred[i] == gold[i] for i in judged) / len(judged)
        correct = [i for i in judged if pred[i] == gold[i]]
        out["fcr_given_correct"] = (sum(expl[i] == gold[i] for i in correct) / len(correct)) if correct else None
    return out


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force_on_random_data(seed):
    rng = random.Random(seed)
    labels = MAFW.labels
    n = rng.randint(1, 300)
    present = rng.sample(labels, rng.randint(1, len(labels)))
    gold = [rng.choice(present) for _ in range(n)]
    pred = [g if rng.random() < 0.5 else rng.choice(labels + (UNKNOWN,)) for g in gold]
    expl = [
        None if rng.random() < 0.2 else rng.choice([g, p if p != UNKNOWN else g, rng.choice(labels)])
        for g, p in zip(gold, pred, strict=True)
    ]
    m = compute_metrics(encode(gold, pred, MAFW, expl), with_coherence=True, n_resamples=0)
    for name, value in _brute_force(gold, pred, expl, labels).items():
        assert m[name] == pytest.approx(value, abs=1e-12) if value is not None else m[name] is None, name


def test_bootstrap_is_seeded_and_matches_index_resampling():
    rng = np.random.default_rng(1)
    n = 400
    gold = list(rng.choice(DFEW.labels, size=n))
    pred = [g if rng.random() < 0.6 else str(rng.choice(DFEW.labels)) for g in gold]
    expl = [g if rng.random() < 0.5 else (None if rng.random() < 0.2 else str(rng.choice(DFEW.labels))) for g in gold]
    o = encode(gold, pred, DFEW, expl)
    ours = bootstrap_intervals(o, n_resamples=4000, seed=7)
    assert ours == bootstrap_intervals(o, n_resamples=4000, seed=7)
    assert ours != bootstrap_intervals(o, n_resamples=4000, seed=8)
    # The classic index bootstrap (resample sample indices) gives the same intervals up to noise.
    idx = np.random.default_rng(3).integers(0, n, size=(4000, n))
    g = np.array([DFEW.labels.index(x) for x in gold])[idx]
    p = np.array([DFEW.labels.index(x) if x != UNKNOWN else -2 for x in pred])[idx]
    e = np.array([-1 if x is None else DFEW.labels.index(x) for x in expl])[idx]
    war = (p == g).mean(axis=1)
    judged = e >= 0
    eea = ((e == g) & judged).sum(axis=1) / judged.sum(axis=1)
    fcr = ((e == g) & (p == g) & judged).sum(axis=1) / judged.sum(axis=1)
    for name, values in (("war", war), ("eea", eea), ("fcr", fcr)):
        low, high = np.quantile(values, [0.025, 0.975])
        assert ours[name][0] == pytest.approx(low, abs=0.012), name
        assert ours[name][1] == pytest.approx(high, abs=0.012), name
    point = compute_metrics(o, with_coherence=True, n_resamples=0)
    for name in ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct"):
        assert ours[name][0] < point[name] < ours[name][1]


def test_aggregate_folds():
    folds = [{"war": 0.5, "uar": 0.4}, {"war": 0.7, "uar": 0.6}, {"war": 0.6, "uar": None}]
    agg = aggregate_folds(folds)
    assert agg["mean"]["war"] == pytest.approx(0.6) and agg["std"]["war"] == pytest.approx(0.1)
    assert agg["mean"]["uar"] == pytest.approx(0.5) and "eea" not in agg["mean"]
