"""The judge prompts (as data files) and strict parsers of the judge's replies.

Prompt texts live in `erv/assets/judge/*.txt` (`string.Template` placeholders) so that a
reviewer can diff them against the paper without reading code:

- explanation emotion, ERV paper Figure 3 (`variant="paper"`, the default) — the metric
  prompt behind EEA/EPC/FCR; the released script's variant differs by one character (a space
  instead of the newline after the emotion list) and is available as `variant="released"`;
- pseudo-label, Figure 6 — up to two emotions for verifier training data;
- complement, Figure 7 — a two-shot request for a description of a rare emotion (the paper
  shows the structure, not a verbatim text; ours follows that structure);
- CA-EMER's FG-CE judge, two stages: classify a sentence's function and modality (strict
  JSON), then score it 1–5 with a rubric chosen by the function ("prefer the lower score").

Parsers never coerce: a reply that is not exactly one label of the taxonomy (after the
tolerant normalisation of :mod:`erv.data.emotions`) is `None`, and the caller keeps the raw text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.errors import ConfigError, ErvError

FGCE_FUNCTIONS: tuple[str, ...] = ("information extraction", "information analysis", "conclusion", "others")
FGCE_MODALITIES: tuple[str, ...] = (
    "audio",
    "visual",
    "contextual",
    "audio-contextual",
    "visual-contextual",
    "audio-visual",
    "audio-visual-contextual",
)
EXPLANATION_PROMPT_VARIANTS: tuple[str, ...] = ("paper", "released")
_MODALITY_ORDER = ("audio", "visual", "contextual")


class JudgeReplyError(ErvError, ValueError):
    """A judge reply that does not follow the format its prompt asked for."""


@cache
def _template(name: str) -> Template:
    text = resources.files("erv").joinpath("assets", "judge", f"{name}.txt").read_text(encoding="utf-8")
    return Template(text.rstrip("\n"))


def _fill(name: str, **values: str) -> str:
    return _template(name).substitute(**values)


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r:.60}")
    return value


# ---------------------------------------------------------------- the paper's prompts


def explanation_emotion_prompt(explanation: str, taxonomy: str | Taxonomy, *, variant: str = "paper") -> str:
    """ERV Figure 3: which single emotion of the dataset's list does the explanation convey."""
    if variant not in EXPLANATION_PROMPT_VARIANTS:
        raise ConfigError(
            f"unknown explanation prompt variant {variant!r}; choose one of {', '.join(EXPLANATION_PROMPT_VARIANTS)}"
        )
    tax = get_taxonomy(taxonomy)
    return _fill(
        f"explanation_emotion.{variant}",
        emotion_list=tax.prompt_list(),
        explanation=_require_text(explanation, "explanation"),
    )


def pseudo_label_prompt(explanation: str, taxonomy: str | Taxonomy) -> str:
    """ERV Figure 6: one dominant emotion, or two separated by a comma, for verifier data."""
    tax = get_taxonomy(taxonomy)
    return _fill("pseudo_label", emotion_list=tax.prompt_list(), explanation=_require_text(explanation, "explanation"))


def complement_prompt(emotion: str, examples: Sequence[str]) -> str:
    """ERV Figure 7: a two-shot request for a new description of a (rare) emotion."""
    if isinstance(examples, str) or len(examples) != 2:
        raise ValueError("complement_prompt needs exactly two example descriptions (the paper's two-shot prompt)")
    return _fill(
        "complement",
        emotion=_require_text(emotion, "emotion").strip(),
        example_1=_require_text(examples[0], "example 1").strip(),
        example_2=_require_text(examples[1], "example 2").strip(),
    )


# ---------------------------------------------------------------- CA-EMER FG-CE prompts


def fgce_classify_prompt(sentence: str, context: str) -> str:
    """FG-CE stage 1: the function and modality of one sentence of an explanation.

    `context` is the whole explanation the sentence belongs to. The judge must reply with a
    strict JSON object `{function, modality, confidence}` (see :func:`parse_fgce_classification`).
    """
    return _fill(
        "fgce_classify",
        sentence=_require_text(sentence, "sentence").strip(),
        context=_require_text(context, "context").strip(),
    )


def fgce_score_prompt(sentence: str, function: str, *, emotion: str, context: str | None = None) -> str:
    """FG-CE stage 2: a 1–5 score with the rubric of the sentence's function.

    `emotion` is the predicted emotion the explanation should support; `context` is the whole
    explanation (the conclusion rubric does not use it). "others" has no rubric: CA-EMER scores
    it 0 without asking, so asking for it is an error.
    """
    canonical = _canonical_function(function)
    if canonical is None:
        raise ValueError(f"unknown FG-CE function {function!r}; expected one of {', '.join(FGCE_FUNCTIONS)}")
    if canonical == "others":
        raise ValueError("FG-CE sentences of function 'others' are scored 0 without a judge call")
    values = {
        "sentence": _require_text(sentence, "sentence").strip(),
        "emotion": _require_text(emotion, "emotion").strip(),
    }
    if canonical != "conclusion":
        values["context"] = _require_text(context, "context").strip()
    return _fill("fgce_score." + canonical.replace(" ", "_"), **values)


# ---------------------------------------------------------------- reply parsers

# "Answer Emotion: sad" / "Emotion - sad": a label the judge prefixed with the prompt's cue.
_CUE_PREFIX = re.compile(r"^\s*(?:answer\s+emotion|emotion)\s*[:\-–]\s*", re.IGNORECASE)


def _strip_cue(text: str) -> str:
    return _CUE_PREFIX.sub("", text.strip(), count=1)


def parse_emotion_reply(text: str | None, taxonomy: str | Taxonomy) -> str | None:
    """The taxonomy label a single-emotion reply names, or None (the raw text is kept by the caller).

    Tolerated: case, surrounding punctuation/markdown, a leading "Answer Emotion:", synonyms
    and adjective/noun forms of the same label. Anything else — two emotions, a sentence, a
    word outside the list — is None; nothing is mapped to neutral.
    """
    if not isinstance(text, str):
        return None
    label = normalize_label(_strip_cue(text), taxonomy)
    return None if label == UNKNOWN else label


_MULTI_SEPARATORS = re.compile(r"\s*(?:,|;|/|\+|&|\band\b|\n)\s*", re.IGNORECASE)


def parse_multi_emotion_reply(text: str | None, taxonomy: str | Taxonomy, max_labels: int = 2) -> list[str] | None:
    """The labels of a pseudo-label reply ("sad" or "sad, angry"), or None.

    Every part must normalise to a label; duplicates collapse; more than `max_labels`
    distinct labels is None (the prompt allowed at most that many, so the reply is invalid).
    """
    if not isinstance(text, str) or max_labels < 1:
        return None
    parts = [p for p in _MULTI_SEPARATORS.split(_strip_cue(text)) if p and p.strip(" .")]
    if not parts:
        return None
    labels: list[str] = []
    for part in parts:
        label = normalize_label(part, taxonomy)
        if label == UNKNOWN:
            return None
        if label not in labels:
            labels.append(label)
    return labels if len(labels) <= max_labels else None


_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def _strict_json_object(text: str | None, what: str) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        raise JudgeReplyError(f"{what}: empty reply")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:  # a markdown code fence around the object is the one wrapping we accept
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise JudgeReplyError(f"{what}: reply is not a JSON object ({exc.msg}): {text.strip()[:120]!r}") from None
    if not isinstance(value, dict):
        raise JudgeReplyError(f"{what}: reply is JSON but not an object: {text.strip()[:120]!r}")
    return {str(k).strip().lower(): v for k, v in value.items()}


def _canonical_function(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = re.sub(r"[\s_\-]+", " ", value.strip().lower())
    return cleaned if cleaned in FGCE_FUNCTIONS else None


def _canonical_modality(value: object) -> str | None:
    """ "Visual-Audio" and "audio_visual" name the same modality as "audio-visual"."""
    if not isinstance(value, str):
        return None
    parts = [p for p in re.split(r"[\s_\-+/&,]+|\band\b", value.strip().lower()) if p]
    if not parts or len(set(parts)) != len(parts) or any(p not in _MODALITY_ORDER for p in parts):
        return None
    return "-".join(m for m in _MODALITY_ORDER if m in parts)


def parse_fgce_classification(text: str | None) -> dict[str, Any]:
    """FG-CE stage-1 reply → `{"function", "modality", "confidence"}` or :class:`JudgeReplyError`.

    The reply must be one JSON object (a markdown fence around it is tolerated) whose
    `function` and `modality` are among :data:`FGCE_FUNCTIONS` / :data:`FGCE_MODALITIES`
    (case, separators and the order of a compound modality are normalised). `confidence`
    is optional — the reward does not use it — but if present it must be a number in [0, 1].
    """
    obj = _strict_json_object(text, "FG-CE classification")
    function = _canonical_function(obj.get("function"))
    if function is None:
        raise JudgeReplyError(
            f"FG-CE classification: function {obj.get('function')!r} is not one of {', '.join(FGCE_FUNCTIONS)}"
        )
    modality = _canonical_modality(obj.get("modality"))
    if modality is None:
        raise JudgeReplyError(
            f"FG-CE classification: modality {obj.get('modality')!r} is not one of {', '.join(FGCE_MODALITIES)}"
        )
    confidence = obj.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float, str)):
            raise JudgeReplyError(f"FG-CE classification: confidence {confidence!r} is not a number")
        try:
            confidence = float(confidence)
        except ValueError:
            raise JudgeReplyError(f"FG-CE classification: confidence {confidence!r} is not a number") from None
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            raise JudgeReplyError(f"FG-CE classification: confidence {confidence} is outside [0, 1]")
    return {"function": function, "modality": modality, "confidence": confidence}


_BARE_INT = re.compile(r"^\s*\**\s*([+-]?\d+(?:\.0+)?)\s*\**\s*\.?\s*$")


def parse_fgce_score(text: str | None) -> int:
    """FG-CE stage-2 reply → an integer score 1..5, or :class:`JudgeReplyError`.

    Accepted: `{"score": 4}` (the format the prompt asks for, optionally fenced, optionally
    with other keys) or a bare integer. 4.0 is 4; 4.5, "four", 0 and 6 are errors.
    """
    if isinstance(text, str):
        bare = _BARE_INT.match(text)
        if bare:
            return _score_value(bare.group(1))
    obj = _strict_json_object(text, "FG-CE score")
    if "score" not in obj:
        raise JudgeReplyError(f"FG-CE score: JSON reply has no 'score' key: {str(text).strip()[:120]!r}")
    return _score_value(obj["score"])


def _score_value(value: object) -> int:
    if isinstance(value, bool):
        raise JudgeReplyError(f"FG-CE score: {value!r} is not an integer from 1 to 5")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise JudgeReplyError(f"FG-CE score: {value!r} is not an integer from 1 to 5") from None
    if not math.isfinite(number) or number != int(number) or not 1 <= int(number) <= 5:
        raise JudgeReplyError(f"FG-CE score: {value!r} is not an integer from 1 to 5")
    return int(number)
