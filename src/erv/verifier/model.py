"""`Verifier`: a sequence classifier plus the knowledge of what its output columns mean.

Two head layouts exist in practice, and `config.id2label` says which one a checkpoint has:

- ``goemotions``: the 28-label GoEmotions head of `SamLowe/roberta-base-go_emotions`, kept by
  the released `Rhatanii/Emo_Classifier`. A dataset label is read from the GoEmotions column
  of its concept (happiness → joy, anxiety → nervousness, helplessness → grief, contempt →
  disapproval, ...; `Taxonomy.goemotions_index`).
- ``labels``: a head over emotion labels of its own (e.g. MAFW's eleven). Each column is
  mapped onto the dataset taxonomy through :func:`erv.data.emotions.normalize_label`, so a head
  trained on MAFW names serves DFEW as well.

Whatever cannot work is refused when the verifier is built, not in the middle of training:
a missing directory, generic `LABEL_0…` names, a head none of whose labels is an emotion of
the taxonomy, two columns claiming one label.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch

from erv.data.emotions import GOEMOTIONS_LABELS, TAXONOMIES, UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.errors import ConfigError, TaxonomyError
from erv.verifier.predict import ProbabilityCache, ScoringStats, score_texts, select_label_sets

logger = logging.getLogger(__name__)

HeadKind = Literal["goemotions", "labels"]
_GENERIC_LABEL = re.compile(r"^label_?\d+$", re.IGNORECASE)
# Taxonomies whose labels a head of its own may use; GoEmotions is the other layout.
_DATASET_TAXONOMIES = tuple(t for name, t in TAXONOMIES.items() if name != "goemotions")
# Attribute a checkpoint trained by `erv verifier train` carries: the taxonomy of its data.
TAXONOMY_CONFIG_KEY = "erv_taxonomy"


@dataclass(frozen=True)
class HeadLayout:
    """The meaning of a classifier's output columns."""

    kind: HeadKind
    labels: tuple[str, ...]  # the head's own column names (id2label order)
    neutral_index: int | None  # the column a "neutral" sentence is recognised by

    def columns(self, taxonomy: str | Taxonomy) -> dict[str, int]:
        """taxonomy label -> head column, for the labels the head can express."""
        tax = get_taxonomy(taxonomy)
        if self.kind == "goemotions":
            out = {}
            for label in tax.labels:
                try:
                    out[label] = tax.goemotions_index(label)
                except TaxonomyError:
                    continue
            return out
        out: dict[str, int] = {}
        for column, name in enumerate(self.labels):
            label = normalize_label(name, tax)
            if label == UNKNOWN:
                continue
            if label in out:
                raise ConfigError(
                    f"verifier head columns {self.labels[out[label]]!r} and {name!r} both mean "
                    f"{tax.name} label {label!r}"
                )
            out[label] = column
        return out


def detect_head_layout(
    id2label: dict[Any, str] | None, num_labels: int, override: str = "auto", where: str = "verifier"
) -> HeadLayout:
    """Decide the layout from the head's label names (or honour an explicit override)."""
    if override not in ("auto", "goemotions", "labels"):
        raise ConfigError(f"{where}: head_layout must be 'auto', 'goemotions' or 'labels', got {override!r}")
    names = tuple(
        str((id2label or {}).get(i, (id2label or {}).get(str(i), f"LABEL_{i}"))).strip() for i in range(num_labels)
    )
    lowered = tuple(n.lower() for n in names)
    if override == "goemotions" or (override == "auto" and lowered == GOEMOTIONS_LABELS):
        if num_labels != len(GOEMOTIONS_LABELS):
            raise ConfigError(
                f"{where}: a GoEmotions head has {len(GOEMOTIONS_LABELS)} outputs, this one has {num_labels}"
            )
        return HeadLayout("goemotions", GOEMOTIONS_LABELS, GOEMOTIONS_LABELS.index("neutral"))
    if all(_GENERIC_LABEL.match(n) for n in names):
        hint = (
            " If it is a 28-label GoEmotions head, pass head_layout='goemotions'."
            if num_labels == len(GOEMOTIONS_LABELS)
            else ""
        )
        raise ConfigError(
            f"{where}: the classifier's id2label has only generic names ({names[0]}, ...), so its "
            f"outputs cannot be matched to emotions; save it with id2label set.{hint}"
        )
    neutral = [i for i, n in enumerate(names) if any(normalize_label(n, t) == "neutral" for t in _DATASET_TAXONOMIES)]
    if len(neutral) > 1:
        raise ConfigError(f"{where}: head columns {', '.join(names[i] for i in neutral)} all mean neutral")
    if not any(normalize_label(n, t) != UNKNOWN for n in names for t in _DATASET_TAXONOMIES):
        raise ConfigError(
            f"{where}: none of the head's labels ({', '.join(names)}) is an emotion of a known "
            f"taxonomy ({', '.join(t.name for t in _DATASET_TAXONOMIES)})"
        )
    return HeadLayout("labels", names, neutral[0] if neutral else None)


def default_device() -> torch.device:
    """This process's GPU under torchrun/accelerate (LOCAL_RANK), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _token_limit(config: Any, tokenizer: Any, requested: int | None) -> int:
    """The longest input the model takes: the smallest of the request, the tokenizer's limit
    and the position table (RoBERTa-style models lose two positions to the padding offset)."""
    limits = [requested] if requested else []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:  # "no limit" is a huge sentinel
        limits.append(int(tok_max))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        offset = (
            2
            if "roberta" in str(getattr(config, "model_type", ""))
            or "camembert" in str(getattr(config, "model_type", ""))
            else 0
        )
        limits.append(int(positions) - offset)
    return int(min(limits)) if limits else 512


class Verifier:
    """A frozen emotion classifier that scores many texts at once.

    Build it from a `save_pretrained` directory (`Verifier.from_pretrained(path)`) or from a
    loaded `model` + `tokenizer`. `taxonomy` (optional) is checked against the head right
    away; without it the checkpoint's recorded taxonomy (`config.erv_taxonomy`) or, for a head
    over exactly one dataset's labels, that dataset is the default.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        taxonomy: str | Taxonomy | None = None,
        head_layout: str = "auto",
        device: str | torch.device | None = None,
        batch_size: int = 64,
        max_batch_tokens: int | None = 8192,
        max_length: int | None = None,
        cache_size: int = 0,
        name: str | None = None,
    ) -> None:
        if model is None or tokenizer is None:
            raise ConfigError("a Verifier needs both a model and its tokenizer")
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        config = getattr(model, "config", None)
        num_labels = int(getattr(config, "num_labels", 0) or 0)
        if num_labels < 1:
            raise ConfigError(f"verifier {self.name}: the model has no classification head (num_labels missing)")
        self.layout = detect_head_layout(
            getattr(config, "id2label", None), num_labels, head_layout, f"verifier {self.name}"
        )
        self.model = model
        self.tokenizer = tokenizer
        if device is not None:
            self.device = torch.device(device)
            model.to(self.device)
        else:
            try:
                self.device = next(model.parameters()).device
            except (StopIteration, AttributeError):
                self.device = torch.device("cpu")
        model.eval()
        self.max_length = _token_limit(config, tokenizer, max_length)
        self.batch_size = int(batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.cache = ProbabilityCache(cache_size)
        self.last_stats = ScoringStats()
        self._columns: dict[str, dict[str, int]] = {}
        self.default_taxonomy = self._find_default_taxonomy(config)
        if taxonomy is not None:
            self.default_taxonomy = get_taxonomy(taxonomy)
            self.columns(self.default_taxonomy)  # validate now, not mid-training

    # ------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> Verifier:
        """Load a `save_pretrained` sequence-classification directory, or a hub id (the local cache first).

        A missing folder fails at once, also when it looks like a hub id (`outputs/verifier`):
        :func:`erv.io.locations.resolve_model_location`.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from erv.io.locations import resolve_model_location

        location = str(path)
        source = resolve_model_location(location, "verifier")
        local = Path(source)
        if local.is_dir() and not (local / "config.json").is_file():
            raise ConfigError(f"verifier directory {local} has no config.json (not a save_pretrained directory)")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype) if dtype != "auto" else None
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(source, **({"dtype": dtype} if dtype else {}))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load verifier {location!r}: {str(exc).splitlines()[0]}") from None
        return cls(
            model, tokenizer, device=device if device is not None else default_device(), name=location, **kwargs
        )

    @classmethod
    def coerce(cls, verifier: Any, **kwargs: Any) -> Verifier:
        """A `Verifier` from a path, a `(model, tokenizer)` pair, or a `Verifier` (returned as is)."""
        if isinstance(verifier, Verifier):
            verifier.configure(**kwargs)
            return verifier
        if isinstance(verifier, (str, os.PathLike)):
            return cls.from_pretrained(verifier, **kwargs)
        if isinstance(verifier, (tuple, list)) and len(verifier) == 2:
            return cls(verifier[0], verifier[1], **kwargs)
        if isinstance(verifier, dict) and {"model", "tokenizer"} <= verifier.keys():
            return cls(verifier["model"], verifier["tokenizer"], **kwargs)
        raise ConfigError(
            f"verifier must be a directory, a (model, tokenizer) pair or a Verifier, got {type(verifier).__name__}"
        )

    def configure(
        self,
        *,
        taxonomy: str | Taxonomy | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        cache_size: int | None = None,
        **unexpected: Any,
    ) -> None:
        """Change scoring options of an existing verifier (used when a reward is handed one)."""
        if unexpected:
            raise ConfigError(f"unexpected verifier options: {', '.join(unexpected)}")
        if device is not None:
            self.to(device)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        if max_batch_tokens is not None:
            self.max_batch_tokens = max_batch_tokens
        if cache_size is not None:
            self.cache.size = int(cache_size)
        if taxonomy is not None:
            self.columns(taxonomy)

    def to(self, device: str | torch.device) -> Verifier:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def _find_default_taxonomy(self, config: Any) -> Taxonomy | None:
        recorded = getattr(config, TAXONOMY_CONFIG_KEY, None)
        if recorded:
            try:
                return get_taxonomy(recorded)
            except TaxonomyError as exc:
                raise ConfigError(f"verifier {self.name}: config.{TAXONOMY_CONFIG_KEY}: {exc}") from None
        if self.layout.kind == "labels":
            names = {n.lower() for n in self.layout.labels}
            for tax in _DATASET_TAXONOMIES:
                if names == set(tax.labels):
                    return tax
        return None

    # ------------------------------------------------------------ label mapping

    @property
    def head_labels(self) -> tuple[str, ...]:
        return self.layout.labels

    @property
    def num_labels(self) -> int:
        return len(self.layout.labels)

    @property
    def neutral_index(self) -> int | None:
        return self.layout.neutral_index

    def columns(self, taxonomy: str | Taxonomy | None = None) -> dict[str, int]:
        """taxonomy label -> head column; ConfigError if the head expresses none of them."""
        tax = self.resolve_taxonomy(taxonomy)
        if tax.name not in self._columns:
            columns = self.layout.columns(tax)
            if not columns:
                raise ConfigError(
                    f"verifier {self.name}: none of its head labels ({', '.join(self.layout.labels[:12])}"
                    f"{', ...' if self.num_labels > 12 else ''}) maps to {tax.a_label} "
                    f"({tax.prompt_list()})"
                )
            missing = [label for label in tax.labels if label not in columns]
            if missing:
                logger.warning(
                    "verifier %s has no output for %s label(s) %s; samples with that gold label get no "
                    "explanation reward",
                    self.name,
                    tax.name,
                    ", ".join(missing),
                )
            self._columns[tax.name] = columns
        return self._columns[tax.name]

    def resolve_taxonomy(self, taxonomy: str | Taxonomy | None = None) -> Taxonomy:
        if taxonomy is not None:
            return get_taxonomy(taxonomy)
        if self.default_taxonomy is None:
            raise ConfigError(
                f"verifier {self.name}: no taxonomy given and none recorded in the checkpoint; "
                f"pass taxonomy=<dataset name>"
            )
        return self.default_taxonomy

    # ------------------------------------------------------------ prediction

    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """Sigmoid probabilities `(len(texts), num_labels)` over the head's columns (float32, CPU)."""
        probs, self.last_stats = score_texts(
            self.model,
            self.tokenizer,
            list(texts),
            device=self.device,
            num_labels=self.num_labels,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            cache=self.cache,
        )
        return probs

    def taxonomy_proba(
        self, texts: Sequence[str], taxonomy: str | Taxonomy | None = None
    ) -> tuple[tuple[str, ...], torch.Tensor]:
        """Probabilities of the taxonomy labels the head expresses: `(labels, (n, len(labels)))`."""
        columns = self.columns(taxonomy)
        labels = tuple(columns)
        probs = self.predict_proba(texts)
        return labels, probs[:, [columns[label] for label in labels]]

    def predict_labels(
        self,
        texts: Sequence[str],
        taxonomy: str | Taxonomy | None = None,
        *,
        threshold: float = 0.5,
        top_k: int | None = None,
        at_least_one: bool = False,
    ) -> list[list[str]]:
        """Label sets per text, decided over the whole head, reported in the taxonomy's labels.

        The decision (over tau, at least one, at most k) is made over all head columns as the
        reward does; a selected column that is not a taxonomy label (e.g. GoEmotions'
        "admiration") is simply not reported.
        """
        columns = self.columns(taxonomy)
        selected = select_label_sets(self.predict_proba(texts), threshold, top_k, at_least_one)
        return [[label for label, column in columns.items() if row[column]] for row in selected.tolist()]

    @cached_property
    def description(self) -> str:
        tax = self.default_taxonomy.name if self.default_taxonomy else "none"
        return f"{self.name} ({self.layout.kind} head, {self.num_labels} outputs, default taxonomy {tax})"
