import warnings

import pytest

from erv.data.completions import (
    completion_text,
    extract_answer,
    extract_think,
    has_strict_format,
    parse_completion,
    split_sentences,
)


@pytest.mark.parametrize(
    "text,answer",
    [
        ("<think>a</think><answer>happy</answer>", "happy"),
        ("<think>a</think>\n<answer>  Sad \n</answer>", "Sad"),
        ("<ANSWER>anger</Answer>", "anger"),
        ("<answer>happy</answer> then <answer>sad</answer>", "happy"),
        ("<think>a</think><answer>happy", None),  # unclosed: no answer
        ("happy", None),
        ("", None),
        ("<answer></answer>", ""),
        ("<answer>\nfear\n</answer>", "fear"),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_extract_think():
    assert extract_think("<think> He smiles. </think><answer>x</answer>") == "He smiles."
    assert extract_think("<THINK>a\nb</think>") == "a\nb"
    assert extract_think("no tags") is None
    assert extract_think("<think>cut off here") is None
    assert extract_think("<think>cut off here", allow_unclosed=True) == "cut off here"
    assert extract_think("<think>cut <answer>sad</answer>", allow_unclosed=True) == "cut"


@pytest.mark.parametrize(
    "text,ok",
    [
        ("<think>x</think><answer>y</answer>", True),
        ("<think>x\ny</think>\n\n<answer>y</answer>", True),
        (" <think>x</think><answer>y</answer>", False),  # full match: nothing around it
        ("<think>x</think><answer>y</answer>\n", False),
        ("<think>x</think> text <answer>y</answer>", False),
        ("<answer>y</answer>", False),
        ("<THINK>x</THINK><ANSWER>y</ANSWER>", False),  # the paper's regex is case-sensitive
    ],
)
def test_strict_format_is_the_paper_regex(text, ok):
    assert has_strict_format(text) is ok


def test_parse_completion():
    parsed = parse_completion("<think>t</think><answer>a</answer>")
    assert (parsed.think, parsed.answer, parsed.strict_format) == ("t", "a", True)


def test_completion_text_accepts_trl_shapes():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "y"}]) == "y"
    assert completion_text({"role": "assistant", "content": [{"type": "text", "text": "z"}]}) == "z"
    with pytest.raises(TypeError):
        completion_text(None)
    with pytest.raises(TypeError):
        completion_text(5)


def test_released_regex_splitter():
    text = ' He frowns.  She says "stop. now!" loudly. Why? Fine!Done. '
    assert split_sentences(text, "regex") == ["He frowns.", 'She says "stop. now!" loudly.', "Why?", "Fine!Done."]
    assert split_sentences("", "regex") == []
    assert split_sentences("no punctuation at all", "regex") == ["no punctuation at all"]


def test_punkt_splitter_handles_abbreviations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = split_sentences("Mr. Smith looks sad. He cries, e.g. at the end.  Then he leaves.", "punkt")
    assert out == ["Mr. Smith looks sad.", "He cries, e.g. at the end.", "Then he leaves."]


def test_unknown_splitter():
    with pytest.raises(ValueError, match="unknown sentence splitter"):
        split_sentences("a", "spacy")
