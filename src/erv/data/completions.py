"""Parsing of `<think>…</think><answer>…</answer>` completions and sentence splitting.

One parser serves rewards, inference post-processing, the judge and evaluation, so that the
"answer" a reward pays for is the answer the evaluation scores.

Rules (docs/architecture.md, "Files"): the answer is the content of the first *complete* `<answer>…</answer>`
pair (tags case-insensitive, content stripped); a response without one has no answer. The
explanation is the content of the first complete `<think>…</think>` pair. The strict format
check is the paper's regex, a full match of `<think>.*?</think>\\s*<answer>.*?</answer>` with
DOTALL, and is case-sensitive like the paper's.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from erv.errors import ConfigError, ErvWarning

STRICT_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)

# The released ERV reward's splitter: break after . ! ? followed by whitespace, but not
# inside double quotes (an even number of quotes must follow the break).
_RELEASED_SPLIT = re.compile(r'(?<=[\.!?])\s+(?=(?:[^"]*"[^"]*")*[^"]*$)')


def completion_text(completion: Any) -> str:
    """The assistant text of a completion given as a string, a message dict or a chat list.

    TRL passes conversational completions as `[{"role": "assistant", "content": ...}]`;
    content may itself be a list of typed parts. Non-text input raises TypeError so that
    callers can decide how to count it.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"
            )
        raise TypeError(f"message has no text content: {completion!r:.80}")
    if isinstance(completion, (list, tuple)) and completion:
        # A chat list: the assistant turn(s) are the completion.
        texts = [
            completion_text(m)
            for m in completion
            if not isinstance(m, dict) or m.get("role", "assistant") == "assistant"
        ]
        if texts:
            return "".join(texts)
    raise TypeError(f"completion is not text or a chat message list: {type(completion).__name__}")


def extract_answer(text: str) -> str | None:
    """Content of the first complete `<answer>…</answer>`, stripped; None if there is none."""
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else None


def extract_think(text: str, *, allow_unclosed: bool = False) -> str | None:
    """Content of the first complete `<think>…</think>`, stripped; None if there is none.

    `allow_unclosed=True` also accepts a `<think>` that is never closed (a truncated
    generation): the explanation then runs up to the next `<answer>` or the end.
    """
    match = _THINK.search(text)
    if match:
        return match.group(1).strip()
    if allow_unclosed:
        opened = _THINK_OPEN.search(text)
        if opened:
            rest = text[opened.end() :]
            answer = _ANSWER_OPEN.search(rest)
            return (rest[: answer.start()] if answer else rest).strip()
    return None


def has_strict_format(text: str) -> bool:
    """The paper's R_format test: the whole completion is think-then-answer."""
    return STRICT_FORMAT.fullmatch(text) is not None


@dataclass(frozen=True)
class ParsedCompletion:
    think: str | None
    answer: str | None
    strict_format: bool


def parse_completion(text: str) -> ParsedCompletion:
    return ParsedCompletion(extract_think(text), extract_answer(text), has_strict_format(text))


# ---------------------------------------------------------------- sentence splitting


def split_sentences_regex(text: str) -> list[str]:
    """The released ERV code's splitter (text stripped first, empty pieces dropped)."""
    return [s for s in _RELEASED_SPLIT.split(text.strip()) if s]


_PUNKT_ABBREVIATIONS = (
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "approx",
    "no",
    "fig",
    "inc",
    "ltd",
    "co",
    "mt",
    "u.s",
    "a.m",
    "p.m",
)


@lru_cache(maxsize=1)
def _punkt_tokenizer() -> Any:
    """NLTK's English Punkt model when its data is installed, else an untrained Punkt.

    `nltk.sent_tokenize` (what CA-EMER calls) needs the `punkt_tab` data, which is a separate
    download. Without it we use NLTK's Punkt algorithm with a list of common English
    abbreviations; results can differ from the trained model on rare abbreviations, so we warn.
    """
    import nltk
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    for resource in ("tokenizers/punkt_tab/english/", "tokenizers/punkt/english.pickle"):
        try:
            nltk.data.find(resource)
        except LookupError:
            continue
        try:
            return lambda text: nltk.sent_tokenize(text, language="english")
        except Exception:  # pragma: no cover - corrupt nltk data
            break
    warnings.warn(
        "NLTK's trained English Punkt data (punkt_tab) is not installed; sentence splitting uses "
        "untrained Punkt with a built-in abbreviation list. Install it with "
        "`python -m nltk.downloader punkt_tab` to match CA-EMER exactly.",
        ErvWarning,
        stacklevel=3,
    )
    params = PunktParameters()
    params.abbrev_types = set(_PUNKT_ABBREVIATIONS)
    return PunktSentenceTokenizer(params).tokenize


def split_sentences_punkt(text: str) -> list[str]:
    """Punkt sentence splitting as CA-EMER uses it (`nltk.sent_tokenize`)."""
    text = text.strip()
    if not text:
        return []
    return [s.strip() for s in _punkt_tokenizer()(text) if s.strip()]


SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "regex": split_sentences_regex,
    "released": split_sentences_regex,
    "punkt": split_sentences_punkt,
    "nltk": split_sentences_punkt,
}


def get_splitter(name: str) -> Callable[[str], list[str]]:
    try:
        return SPLITTERS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown sentence splitter {name!r}; choose one of {', '.join(sorted(SPLITTERS))}"
        ) from None


def split_sentences(text: str, method: str = "regex") -> list[str]:
    """Split an explanation into sentences with the named method ("regex" = released code)."""
    return get_splitter(method)(text)
