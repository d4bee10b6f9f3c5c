"""The judge prompts are the paper's texts, built from taxonomies; the parsers never coerce."""

from __future__ import annotations

import json

import pytest

from erv.data.emotions import DFEW, MAFW
from erv.judge.prompts import (
    FGCE_FUNCTIONS,
    FGCE_MODALITIES,
    JudgeReplyError,
    complement_prompt,
    explanation_emotion_prompt,
    fgce_classify_prompt,
    fgce_score_prompt,
    parse_emotion_reply,
    parse_fgce_classification,
    parse_fgce_score,
    parse_multi_emotion_reply,
    pseudo_label_prompt,
)


def test_explanation_prompt_is_figure_3_with_the_dataset_list():
    expected = (
        "Read the reasoning content and respond with the appropriate emotion in "
        "anger, disgust, fear, happiness, neutral, sadness, surprise, contempt, anxiety, helplessness, "
        "disappointment.\n"
        "Reply with only the emotion word.\n"
        "Reason: She frowns and sighs.\n"
        "Answer Emotion:"
    )
    assert explanation_emotion_prompt("She frowns and sighs.", "MAFW") == expected


def test_released_variant_differs_only_by_the_space_after_the_list():
    paper = explanation_emotion_prompt("x y z", DFEW)
    released = explanation_emotion_prompt("x y z", DFEW, variant="released")
    assert released == paper.replace("fear.\nReply", "fear. Reply")
    assert released.startswith(
        "Read the reasoning content and respond with the appropriate emotion in "
        "happy, sad, neutral, angry, surprise, disgust, fear. Reply with only the emotion word.\nReason: x y z"
    )
    with pytest.raises(ValueError, match="variant"):
        explanation_emotion_prompt("x", DFEW, variant="figure9")


def test_explanation_with_braces_and_dollars_is_inserted_verbatim():
    text = 'He says "{name}" costs $5 and ${x}; %s'
    assert f"Reason: {text}\nAnswer Emotion:" in explanation_emotion_prompt(text, DFEW)


def test_pseudo_label_prompt_is_figure_6():
    assert pseudo_label_prompt("Tears run down.", DFEW) == (
        "Read the reasoning content and respond with the appropriate emotion in happy, sad, neutral, angry, surprise, "
        "disgust, fear. Primarily output a single dominant emotion. If necessary, output up to 2 dominant emotions, "
        "separated by commas. Reply with only the emotion word.\n\nReason: Tears run down. Answer Emotion:"
    )


def test_complement_prompt_is_two_shot_and_ends_with_the_target():
    prompt = complement_prompt("contempt", ["He sneers at the offer.", "She rolls her eyes and scoffs."])
    assert prompt.index("He sneers at the offer.") < prompt.index("She rolls her eyes and scoffs.")
    assert prompt.endswith("Target Emotion: contempt")
    assert "audiovisual" in prompt
    with pytest.raises(ValueError, match="two"):
        complement_prompt("contempt", ["only one"])


def test_empty_explanation_is_refused_not_sent():
    with pytest.raises(ValueError):
        explanation_emotion_prompt("   ", DFEW)


def test_fgce_prompts_name_the_allowed_values_and_the_rubric_rule():
    classify = fgce_classify_prompt("Her voice trembles.", "She looks down. Her voice trembles. She is sad.")
    for value in FGCE_FUNCTIONS + FGCE_MODALITIES:
        assert f'"{value}"' in classify
    assert classify.rstrip().endswith("Her voice trembles.")
    assert '"function"' in classify and '"confidence"' in classify
    for function in ("information extraction", "information analysis", "conclusion"):
        prompt = fgce_score_prompt("She is sad.", function, emotion="sadness", context="She looks down. She is sad.")
        assert "prefer the lower score" in prompt
        assert "Predicted Emotion: sadness" in prompt
        assert '{"score": <an integer from 1 to 5>}' in prompt
    conclusion = fgce_score_prompt("She is sad.", "Conclusion", emotion="sadness")
    assert "She looks down" not in conclusion
    extraction = fgce_score_prompt("x", "information_extraction", emotion="fear", context="ctx")
    analysis = fgce_score_prompt("x", "information analysis", emotion="fear", context="ctx")
    assert extraction != analysis
    with pytest.raises(ValueError, match="scored 0"):
        fgce_score_prompt("x", "others", emotion="fear", context="ctx")
    with pytest.raises(ValueError, match="unknown"):
        fgce_score_prompt("x", "summary", emotion="fear", context="ctx")
    with pytest.raises(ValueError):
        fgce_score_prompt("x", "information analysis", emotion="fear")  # needs the context


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("sad", "sad"),
        ("Sad.", "sad"),
        ("  **SADNESS**  ", "sad"),
        ("Answer Emotion: angry", "angry"),
        ("happiness", "happy"),
        ("the emotion is fear", "fear"),
        ("surprised!", "surprise"),
        ("sad, angry", None),
        ("confusion", None),
        ("I think it is sad", None),
        ("", None),
        (None, None),
        ("contempt", None),  # a MAFW label, not a DFEW one: never mapped to something close
    ],
)
def test_parse_emotion_reply_dfew(reply, expected):
    assert parse_emotion_reply(reply, DFEW) == expected


def test_parse_emotion_reply_never_maps_to_neutral():
    for garbage in ("lorem ipsum", "### 42 ###", "N/A", "none", "unknown"):
        assert parse_emotion_reply(garbage, MAFW) is None


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("sadness", ["sadness"]),
        ("sadness, anger", ["sadness", "anger"]),
        ("Anxious and sad.", ["anxiety", "sadness"]),
        ("sad, sadness", ["sadness"]),
        ("anger, fear, sadness", None),
        ("sadness, boredom", None),
        ("", None),
    ],
)
def test_parse_multi_emotion_reply(reply, expected):
    assert parse_multi_emotion_reply(reply, MAFW, max_labels=2) == expected


def test_parse_multi_respects_max_labels():
    assert parse_multi_emotion_reply("sad, angry", DFEW, max_labels=1) is None
    assert parse_multi_emotion_reply("anger, fear, sadness", MAFW, max_labels=3) == ["anger", "fear", "sadness"]


def test_parse_fgce_classification_strict_json():
    parsed = parse_fgce_classification(
        '{"function": "Information Analysis", "modality": "visual-audio", "confidence": 0.8}'
    )
    assert parsed == {"function": "information analysis", "modality": "audio-visual", "confidence": 0.8}
    fenced = "```json\n" + json.dumps({"function": "conclusion", "modality": "contextual"}) + "\n```"
    assert parse_fgce_classification(fenced) == {
        "function": "conclusion",
        "modality": "contextual",
        "confidence": None,
    }
    for bad, match in [
        ("function: conclusion", "not a JSON object"),
        ('Sure! {"function": "conclusion", "modality": "audio"}', "not a JSON object"),
        ('["conclusion", "audio"]', "not an object"),
        ('{"function": "summary", "modality": "audio"}', "function"),
        ('{"function": "conclusion", "modality": "smell"}', "modality"),
        ('{"function": "conclusion", "modality": "audio-audio"}', "modality"),
        ('{"function": "conclusion", "modality": "audio", "confidence": 1.5}', "outside"),
        ('{"function": "conclusion", "modality": "audio", "confidence": "high"}', "not a number"),
        ("", "empty"),
    ]:
        with pytest.raises(JudgeReplyError, match=match):
            parse_fgce_classification(bad)


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"score": 4}', 4),
        ('{"score": "2", "explanation": "weak"}', 2),
        ("5", 5),
        (" 3. ", 3),
        ("**1**", 1),
        ('```json\n{"Score": 5.0}\n```', 5),
    ],
)
def test_parse_fgce_score_valid(reply, expected):
    assert parse_fgce_score(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        '{"score": 0}',
        '{"score": 6}',
        '{"score": 4.5}',
        '{"score": true}',
        "four",
        '{"rating": 3}',
        "",
        None,
        '{"score": null}',
    ],
)
def test_parse_fgce_score_invalid(reply):
    with pytest.raises(JudgeReplyError):
        parse_fgce_score(reply)
