import pytest

from erv.data.emotions import (
    DFEW,
    EMER,
    GOEMOTIONS,
    GOEMOTIONS_LABELS,
    MAFW,
    RAVDESS,
    UNKNOWN,
    get_taxonomy,
    normalize_label,
    require_label,
)
from erv.errors import TaxonomyError


def test_evaluation_orders_match_the_paper():
    assert DFEW.labels == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert MAFW.labels == (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    )
    assert EMER.labels == ("angry", "sad", "surprise", "worried", "happy")
    assert RAVDESS.labels == ("happy", "surprised", "neutral", "angry", "disgust", "sad", "fearful", "calm")
    assert len(GOEMOTIONS_LABELS) == 28 and GOEMOTIONS_LABELS[27] == "neutral"
    assert DFEW.label_id("happy") == 1 and DFEW.label_from_id(7) == "fear"
    assert MAFW.label_from_id(11) == "disappointment"


@pytest.mark.parametrize("name", ["dfew", "DFEW", "Mafw", "emer", "RAVDESS", "goemotions", "go_emotions"])
def test_lookup_is_case_insensitive(name):
    assert get_taxonomy(name).name.lower().replace("_", "") == name.lower().replace("_", "")


def test_unknown_taxonomy_is_an_error():
    with pytest.raises(TaxonomyError, match="known: DFEW"):
        get_taxonomy("FER2013")


@pytest.mark.parametrize(
    "text,tax,expected",
    [
        ("Angry.", MAFW, "anger"),
        ("anger", DFEW, "angry"),
        ("  SADNESS ", DFEW, "sad"),
        ("sad", MAFW, "sadness"),
        ("Happiness!", DFEW, "happy"),
        ("joy", MAFW, "happiness"),
        ("anxious", MAFW, "anxiety"),
        ("worried", MAFW, "anxiety"),
        ("nervous", EMER, "worried"),
        ("helpless", MAFW, "helplessness"),
        ("disappointed", MAFW, "disappointment"),
        ("contemptuous", MAFW, "contempt"),
        ("surprised", DFEW, "surprise"),
        ("surprise", RAVDESS, "surprised"),
        ("scared", DFEW, "fear"),
        ("afraid", RAVDESS, "fearful"),
        ('"neutral"', DFEW, "neutral"),
        ("The emotion is fear.", DFEW, "fear"),
        ("Emotion: disgust", MAFW, "disgust"),
        ("surprises", DFEW, "surprise"),
        ("fears", DFEW, "fear"),
        ("calm", RAVDESS, "calm"),
    ],
)
def test_normalisation_accepts_surface_forms(text, tax, expected):
    assert normalize_label(text, tax) == expected


@pytest.mark.parametrize(
    "text,tax",
    [
        ("very happy", DFEW),
        ("happy/sad", DFEW),
        ("happy, sad", DFEW),
        ("", DFEW),
        ("   ", DFEW),
        ("contempt", DFEW),  # not a DFEW class: never guessed as disgust
        ("anxiety", DFEW),  # not guessed as fear
        ("calm", DFEW),  # calm is RAVDESS' own class, not neutral
        ("helplessness", EMER),
        ("unknown", MAFW),
        ("none", DFEW),
        ("happ", DFEW),
    ],
)
def test_normalisation_never_guesses(text, tax):
    assert normalize_label(text, tax) == UNKNOWN


def test_non_strings_are_unknown():
    assert normalize_label(None, DFEW) == UNKNOWN
    assert normalize_label(3, DFEW) == UNKNOWN


def test_goemotions_mapping_of_the_released_verifier():
    assert [MAFW.goemotions_index(x) for x in MAFW.labels] == [2, 11, 14, 17, 27, 25, 26, 10, 19, 16, 9]
    assert DFEW.goemotions_index("happy") == 17 and EMER.goemotions_index("worried") == 19
    assert GOEMOTIONS.goemotions_index("joy") == 17
    with pytest.raises(TaxonomyError, match="no GoEmotions counterpart"):
        RAVDESS.goemotions_index("calm")


def test_goemotions_taxonomy_normalises_to_its_own_labels():
    assert normalize_label("Joyful", "goemotions") == "joy"
    assert normalize_label("anxious", "goemotions") == "nervousness"
    assert normalize_label("grief", "goemotions") == "grief"
    assert normalize_label("helpless", "goemotions") == UNKNOWN  # the verifier mapping is no synonym


def test_require_label_rejects_unknown_gold():
    assert require_label("Sad", DFEW) == "sad"
    with pytest.raises(TaxonomyError, match="x.json:3: gold label 'calm'"):
        require_label("calm", DFEW, where="x.json:3")
