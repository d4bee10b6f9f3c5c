"""`Verifier`: head layouts, construction-time errors, the batched scoring engine."""

from __future__ import annotations

import pytest
import torch

from erv.data.emotions import DFEW, GOEMOTIONS_LABELS, MAFW
from erv.errors import ConfigError
from erv.testing.synthetic_text import tiny_roberta, word_tokenizer
from erv.verifier.model import Verifier, detect_head_layout
from erv.verifier.predict import ProbabilityCache, plan_batches, score_texts

WORDS = "he she is sad angry happy looks away cries shouts smiles at the door window and very".split()


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer(WORDS)


def test_goemotions_layout_from_id2label():
    layout = detect_head_layout(dict(enumerate(GOEMOTIONS_LABELS)), 28)
    assert layout.kind == "goemotions" and layout.neutral_index == 27
    columns = layout.columns("MAFW")
    assert columns == {
        "anger": 2,
        "disgust": 11,
        "fear": 14,
        "happiness": 17,
        "neutral": 27,
        "sadness": 25,
        "surprise": 26,
        "contempt": 10,
        "anxiety": 19,
        "helplessness": 16,
        "disappointment": 9,
    }
    assert layout.columns("DFEW")["happy"] == 17 and layout.columns("DFEW")["angry"] == 2


def test_own_label_layout_maps_synonyms_across_taxonomies():
    layout = detect_head_layout(dict(enumerate(MAFW.labels)), 11)
    assert layout.kind == "labels" and layout.neutral_index == 4
    assert layout.columns("DFEW") == {
        "happy": 3,
        "sad": 5,
        "neutral": 4,
        "angry": 0,
        "surprise": 6,
        "disgust": 1,
        "fear": 2,
    }


def test_generic_labels_are_refused_with_a_hint():
    with pytest.raises(ConfigError, match="generic names.*head_layout='goemotions'"):
        detect_head_layout({i: f"LABEL_{i}" for i in range(28)}, 28)
    assert detect_head_layout({i: f"LABEL_{i}" for i in range(28)}, 28, "goemotions").kind == "goemotions"
    with pytest.raises(ConfigError, match="GoEmotions head has 28 outputs"):
        detect_head_layout({0: "a"}, 1, "goemotions")


def test_head_mapping_to_no_taxonomy_label_fails_at_construction(tok):
    model = tiny_roberta(tok, ["positive", "negative"])
    with pytest.raises(ConfigError, match="none of the head's labels"):
        Verifier(model, tok)
    partial = tiny_roberta(tok, ["calm", "bored"])  # calm is a RAVDESS label only
    with pytest.raises(ConfigError, match="maps to a MAFW label"):
        Verifier(partial, tok, taxonomy="MAFW")
    assert Verifier(partial, tok, taxonomy="RAVDESS").columns() == {"calm": 0}


def test_two_columns_for_one_label_are_refused(tok):
    model = tiny_roberta(tok, ["angry", "anger", "sad"])
    with pytest.raises(ConfigError, match="both mean MAFW label 'anger'"):
        Verifier(model, tok, taxonomy="MAFW")


def test_default_taxonomy(tok):
    assert Verifier(tiny_roberta(tok, DFEW.labels), tok).default_taxonomy is DFEW
    go = Verifier(tiny_roberta(tok, GOEMOTIONS_LABELS), tok)
    assert go.default_taxonomy is None
    with pytest.raises(ConfigError, match="pass taxonomy"):
        go.columns()
    model = tiny_roberta(tok, GOEMOTIONS_LABELS)
    model.config.erv_taxonomy = "MAFW"
    assert Verifier(model, tok).default_taxonomy is MAFW


def test_missing_or_wrong_directories(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Verifier.from_pretrained(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no config.json"):
        Verifier.from_pretrained(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file"):
        Verifier.from_pretrained(tmp_path / "weights.bin")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        Verifier.from_pretrained("someone/not-in-the-cache")  # hub offline in tests
    with pytest.raises(ConfigError, match="pair"):
        Verifier.coerce(42)


def test_from_pretrained_round_trip_and_goemotions_head_check(tmp_path, tok):
    model = tiny_roberta(tok, GOEMOTIONS_LABELS, seed=5)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = Verifier.from_pretrained(tmp_path, taxonomy="MAFW", device="cpu")
    texts = ["he cries at the door.", "she smiles.", "he cries at the door."]
    direct = Verifier(model, tok)
    assert torch.equal(loaded.predict_proba(texts), direct.predict_proba(texts))
    labels = loaded.predict_labels(texts, threshold=0.0, top_k=1, at_least_one=True)
    assert len(labels) == 3 and labels[0] == labels[2]


def test_plan_batches_sorts_by_length_and_respects_budgets():
    lengths = [5, 30, 7, 30, 12, 3, 9]
    batches = plan_batches(lengths, batch_size=3, max_batch_tokens=40)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        widths = [lengths[i] for i in batch]
        assert len(batch) <= 3 and (len(batch) * max(widths) <= 40 or len(batch) == 1)
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    assert plan_batches([], 4, None) == []


def test_score_texts_dedups_and_matches_single_forwards(tok):
    model = tiny_roberta(tok, MAFW.labels, seed=2)
    texts = [
        "he is very sad and cries at the window .",
        "she smiles .",
        "he shouts",
        "she smiles .",
        "he is very sad and cries at the window .",
    ]
    probs, stats = score_texts(
        model,
        tok,
        texts,
        device=torch.device("cpu"),
        num_labels=11,
        max_length=64,
        batch_size=2,
        max_batch_tokens=None,
    )
    assert stats.inputs == 5 and stats.unique == 3 and stats.batches == 2
    with torch.inference_mode():
        for text, row in zip(texts, probs, strict=True):
            single = torch.sigmoid(model(**tok(text, return_tensors="pt")).logits[0])
            assert torch.allclose(row, single, atol=1e-5)


def test_truncation_is_counted(tok):
    model = tiny_roberta(tok, MAFW.labels)
    verifier = Verifier(model, tok, max_length=8)
    verifier.predict_proba(["he is very sad and cries at the window and the door .", "she smiles ."])
    assert verifier.last_stats.at_max_length == 1


def test_cache_reuses_rows_across_calls(tok):
    model = tiny_roberta(tok, MAFW.labels)
    verifier = Verifier(model, tok, cache_size=2)
    first = verifier.predict_proba(["she smiles .", "he shouts"])
    again = verifier.predict_proba(["he shouts", "he cries"])
    assert verifier.last_stats.cached == 1 and torch.equal(again[0], first[1])
    cache = ProbabilityCache(1)
    cache.put_many(["a", "b"], torch.zeros(2, 3))
    assert len(cache) == 1 and cache.get("a") is None
