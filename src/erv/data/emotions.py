"""Emotion taxonomies of the datasets the paper uses, and normalisation of free text to them.

Models and LLM judges answer with many surface forms ("Angry.", "sadness", "anxious"). The
released code maps whatever it cannot parse to "neutral", which silently inflates a class.
Here a text either normalises to exactly one label of the chosen taxonomy or to
:data:`UNKNOWN`; nothing is guessed (no substring matching, no nearest label).

Each label belongs to a *concept* (anger, happiness, ...). Synonyms are attached to concepts,
so one synonym table serves every taxonomy: DFEW says "angry" where MAFW says "anger", and
both accept the other's form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from erv.errors import TaxonomyError

UNKNOWN = "unknown"

# concept -> surface forms (lower case, already without punctuation). Only unambiguous
# words: "upset", "shock", "content", "calm" (for neutral) and the like are deliberately left
# out because different annotators use them for different classes.
_CONCEPT_FORMS: dict[str, tuple[str, ...]] = {
    "happiness": ("happiness", "happy", "joy", "joyful", "joyous", "glad", "cheerful", "delighted"),
    "sadness": ("sadness", "sad", "sorrow", "sorrowful", "unhappy", "unhappiness"),
    "anger": ("anger", "angry", "furious", "fury", "rage", "enraged", "irate"),
    "neutral": ("neutral", "neutrality"),
    "surprise": ("surprise", "surprised", "astonished", "astonishment", "amazed", "amazement"),
    "disgust": ("disgust", "disgusted"),
    "fear": ("fear", "fearful", "afraid", "scared", "frightened", "terrified", "terror", "fright"),
    "contempt": ("contempt", "contemptuous", "disdain", "scorn"),
    "anxiety": ("anxiety", "anxious", "worried", "worry", "nervous", "nervousness"),
    "helplessness": ("helplessness", "helpless"),
    "disappointment": ("disappointment", "disappointed"),
    "calm": ("calm", "calmness"),
}

# The 28 GoEmotions labels in the order of SamLowe/roberta-base-go_emotions' head.
GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)

# concept -> GoEmotions head index, as the released Emo_Classifier verifier uses it
# (docs/reference.md §3). "calm" has no GoEmotions counterpart.
GOEMOTIONS_INDEX_OF_CONCEPT: dict[str, int] = {
    "happiness": 17,  # joy
    "anger": 2,
    "disgust": 11,
    "fear": 14,
    "sadness": 25,
    "surprise": 26,
    "neutral": 27,
    "anxiety": 19,  # nervousness
    "helplessness": 16,  # grief
    "disappointment": 9,
    "contempt": 10,  # disapproval
}


@dataclass(frozen=True)
class Taxonomy:
    """A dataset's label set in its evaluation order (label id = position + 1)."""

    name: str
    labels: tuple[str, ...]
    concepts: tuple[str, ...]
    _lookup: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.concepts):
            raise ValueError("labels and concepts must align")
        lookup: dict[str, str] = {}
        for label, concept in zip(self.labels, self.concepts, strict=True):
            lookup[label] = label
            for form in _CONCEPT_FORMS.get(concept, ()):
                if lookup.get(form, label) != label:
                    raise ValueError(f"form {form!r} maps to two labels in {self.name}")
                lookup[form] = label
        object.__setattr__(self, "_lookup", lookup)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def normalize(self, text: object) -> str:
        """Return the label `text` names, or :data:`UNKNOWN`; never a guess."""
        return normalize_label(text, self)

    def label_id(self, label: str) -> int:
        """The dataset's own 1-based id of a canonical label."""
        try:
            return self.labels.index(label) + 1
        except ValueError:
            raise TaxonomyError(f"{label!r} is not {self.a_label}; expected one of {', '.join(self.labels)}") from None

    def label_from_id(self, label_id: int) -> str:
        if not 1 <= int(label_id) <= len(self.labels):
            raise TaxonomyError(f"label id {label_id} is outside 1..{len(self.labels)} for {self.name}")
        return self.labels[int(label_id) - 1]

    def concept_of(self, label: str) -> str:
        return self.concepts[self.label_id(label) - 1]

    def goemotions_index(self, label: str) -> int:
        """GoEmotions head index of a label (the released 28-label verifier's layout)."""
        if self.name == "GoEmotions":
            return self.label_id(label) - 1
        concept = self.concept_of(label)
        if concept not in GOEMOTIONS_INDEX_OF_CONCEPT:
            raise TaxonomyError(f"{self.name} label {label!r} has no GoEmotions counterpart")
        return GOEMOTIONS_INDEX_OF_CONCEPT[concept]

    @property
    def a_label(self) -> str:
        """ "a DFEW label" / "an EMER label", for messages."""
        return f"{'an' if self.name[:1].upper() in 'AEIOU' else 'a'} {self.name} label"

    def prompt_list(self) -> str:
        """The label list as the judge prompts show it ("a, b, c")."""
        return ", ".join(self.labels)


def _taxonomy(name: str, pairs: list[tuple[str, str]]) -> Taxonomy:
    return Taxonomy(name, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


DFEW = _taxonomy(
    "DFEW",
    [
        ("happy", "happiness"),
        ("sad", "sadness"),
        ("neutral", "neutral"),
        ("angry", "anger"),
        ("surprise", "surprise"),
        ("disgust", "disgust"),
        ("fear", "fear"),
    ],
)
MAFW = _taxonomy(
    "MAFW",
    [
        ("anger", "anger"),
        ("disgust", "disgust"),
        ("fear", "fear"),
        ("happiness", "happiness"),
        ("neutral", "neutral"),
        ("sadness", "sadness"),
        ("surprise", "surprise"),
        ("contempt", "contempt"),
        ("anxiety", "anxiety"),
        ("helplessness", "helplessness"),
        ("disappointment", "disappointment"),
    ],
)
EMER = _taxonomy(
    "EMER",
    [
        ("angry", "anger"),
        ("sad", "sadness"),
        ("surprise", "surprise"),
        ("worried", "anxiety"),
        ("happy", "happiness"),
    ],
)
RAVDESS = _taxonomy(
    "RAVDESS",
    [
        ("happy", "happiness"),
        ("surprised", "surprise"),
        ("neutral", "neutral"),
        ("angry", "anger"),
        ("disgust", "disgust"),
        ("sad", "sadness"),
        ("fearful", "fear"),
        ("calm", "calm"),
    ],
)
_GOEMOTIONS_CONCEPTS = {"joy": "happiness", "nervousness": "anxiety"}
GOEMOTIONS = Taxonomy(
    "GoEmotions",
    GOEMOTIONS_LABELS,
    tuple(
        _GOEMOTIONS_CONCEPTS.get(label, label if label in _CONCEPT_FORMS else f"goemotions:{label}")
        for label in GOEMOTIONS_LABELS
    ),
)

TAXONOMIES: dict[str, Taxonomy] = {t.name.lower(): t for t in (DFEW, MAFW, EMER, RAVDESS, GOEMOTIONS)}


def get_taxonomy(name: str | Taxonomy) -> Taxonomy:
    """Look a taxonomy up by dataset name, case-insensitively ("dfew", "MAFW", ...)."""
    if isinstance(name, Taxonomy):
        return name
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key == "goemotion":
        key = "goemotions"
    if key not in TAXONOMIES:
        raise TaxonomyError(
            f"unknown dataset/taxonomy {name!r}; known: {', '.join(t.name for t in TAXONOMIES.values())}"
        )
    return TAXONOMIES[key]


_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")
_LEADING_FILLERS = ("the emotion is ", "emotion: ", "emotion ", "the ")


@lru_cache(maxsize=65536)
def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = _SPACES.sub(" ", _PUNCT_EDGES.sub("", text))
    for filler in _LEADING_FILLERS:
        if text.startswith(filler):
            text = _PUNCT_EDGES.sub("", text[len(filler) :])
    return text


def normalize_label(text: object, taxonomy: str | Taxonomy) -> str:
    """Map `text` to a label of `taxonomy`, or :data:`UNKNOWN`.

    Accepted variation: case, surrounding whitespace/punctuation/quotes, a leading "the" or
    "emotion:", adjective/noun forms and unambiguous synonyms, a plural "s". Anything else,
    including two emotions ("happy/sad") or qualified ones ("slightly sad"), is unknown.
    """
    tax = get_taxonomy(taxonomy)
    if not isinstance(text, str):
        return UNKNOWN
    cleaned = _clean(text)
    if not cleaned:
        return UNKNOWN
    label = tax._lookup.get(cleaned)
    if label is None and cleaned.endswith("s") and len(cleaned) > 3:
        label = tax._lookup.get(cleaned[:-1])
    return label if label is not None else UNKNOWN


def require_label(text: object, taxonomy: str | Taxonomy, where: str = "") -> str:
    """Normalise a *gold* label; unknown gold labels are errors, not a class of their own."""
    tax = get_taxonomy(taxonomy)
    label = normalize_label(text, tax)
    if label == UNKNOWN:
        prefix = f"{where}: " if where else ""
        raise TaxonomyError(f"{prefix}gold label {text!r} is not {tax.a_label} ({tax.prompt_list()})")
    return label
