"""The ERV explanation reward R_E (paper §4, Algorithm 1) over a verifier's sentence labels."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from erv.data.completions import extract_think, get_splitter
from erv.data.emotions import Taxonomy, get_taxonomy
from erv.errors import ConfigError
from erv.rewards.common import completion_texts, gold_labels, logger, report_invalid, resolve_taxonomies

if TYPE_CHECKING:  # pragma: no cover
    import torch

NEUTRAL_RULES = ("only", "any")


def score_label_sets(
    label_sets: Sequence[Iterable[str]],
    gold: str,
    *,
    neutral: str = "neutral",
    neutral_rule: str = "only",
    neutral_filter: bool = True,
) -> float:
    """Algorithm 1 on given per-sentence label sets (the reference the batched path matches).

    c = sentences whose labels contain `gold`; N = sentences; a sentence is neutral if its
    labels are exactly {neutral} (rule "only", released code) or contain neutral (rule "any",
    paper). R = c / N when the gold is neutral or neutral filtering is off, else
    c / (N - N_neu) where c counts only non-neutral sentences (so R stays in [0, 1]; under rule
    "only" no neutral sentence can contain a non-neutral gold, so this is the released code's
    formula). A zero denominator, including no sentence at all, gives 0.
    """
    if neutral_rule not in NEUTRAL_RULES:
        raise ConfigError(f"neutral_rule must be one of {NEUTRAL_RULES}, got {neutral_rule!r}")
    sets = [set(s) for s in label_sets]
    if not sets:
        return 0.0
    if neutral_rule == "only":
        is_neutral = [s == {neutral} for s in sets]
    else:
        is_neutral = [neutral in s for s in sets]
    if gold == neutral or not neutral_filter:
        c = sum(gold in s for s in sets)
        denominator = len(sets)
    else:
        c = sum(gold in s and not neu for s, neu in zip(sets, is_neutral, strict=True))
        denominator = len(sets) - sum(is_neutral)
    return c / denominator if denominator > 0 else 0.0


def explanation_scores(
    selected: torch.Tensor,
    sentence_counts: Sequence[int],
    gold_columns: Sequence[int],
    neutral_index: int | None,
    *,
    neutral_rule: str = "only",
    neutral_filter: bool = True,
) -> tuple[list[float], torch.Tensor]:
    """Algorithm 1 for many completions at once from a boolean `(sentences, head)` selection.

    Sentences are stored completion after completion (`sentence_counts[i]` of them for
    completion i). Returns the rewards and the per-sentence neutral flags (for statistics).
    """
    import torch

    if neutral_rule not in NEUTRAL_RULES:
        raise ConfigError(f"neutral_rule must be one of {NEUTRAL_RULES}, got {neutral_rule!r}")
    n = len(sentence_counts)
    counts = torch.as_tensor(list(sentence_counts), dtype=torch.long)
    if int(counts.sum()) != selected.shape[0]:
        raise ValueError(f"{int(counts.sum())} sentences counted, {selected.shape[0]} scored")
    owner = torch.repeat_interleave(torch.arange(n), counts)
    gold = torch.as_tensor(list(gold_columns), dtype=torch.long)
    is_gold = (
        selected[torch.arange(selected.shape[0]), gold[owner]]
        if selected.shape[0]
        else torch.zeros(0, dtype=torch.bool)
    )
    if neutral_index is None or selected.shape[0] == 0:
        is_neutral = torch.zeros(selected.shape[0], dtype=torch.bool)
    elif neutral_rule == "only":
        is_neutral = selected[:, neutral_index] & (selected.sum(dim=1) == 1)
    else:
        is_neutral = selected[:, neutral_index].clone()
    gold_is_neutral = (gold == neutral_index) if neutral_index is not None else torch.zeros(n, dtype=torch.bool)
    filtered = torch.full((n,), bool(neutral_filter)) & ~gold_is_neutral
    count_in = is_gold & ~(is_neutral & filtered[owner])
    c = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, count_in.double())
    n_neu = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, is_neutral.double())
    denominator = counts.double() - torch.where(filtered, n_neu, torch.zeros_like(n_neu))
    rewards = torch.where(denominator > 0, c / denominator.clamp(min=1), torch.zeros_like(c))
    return rewards.tolist(), is_neutral


# ---------------------------------------------------------------- the ERV explanation reward


class ExplanationReward:
    """R_E of the paper (Algorithm 1) as a TRL reward function.

    Defaults are the released code's (tau 0.1, k 2, neutral rule "only", regex splitter,
    sentence-level, neutral filtering); ``ExplanationReward.paper(verifier)`` switches to the
    paper's text (tau 0.5, rule "any"). `verifier` is a `save_pretrained` directory, a
    `(model, tokenizer)` pair or a :class:`erv.verifier.Verifier`.

    Per-call statistics are in `last_stats` (and `totals` accumulates them); they are logged
    with python `logging` and, inside TRL, through its `log_metric` hook as
    `<name>/<statistic>`.
    """

    PRESETS: dict[str, dict[str, Any]] = {
        "released": {"threshold": 0.1, "top_k": 2, "neutral_rule": "only"},
        "paper": {"threshold": 0.5, "top_k": 2, "neutral_rule": "any"},
    }

    def __init__(
        self,
        verifier: Any,
        threshold: float = 0.1,
        top_k: int | None = 2,
        neutral_rule: str = "only",
        neutral_filter: bool = True,
        sentence_level: bool = True,
        splitter: str = "regex",
        taxonomy: str | Taxonomy | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        device: Any = None,
        cache_size: int | None = None,
        allow_unclosed_think: bool = False,
        name: str = "explanation_reward",
    ) -> None:
        from erv.verifier.model import Verifier

        if neutral_rule not in NEUTRAL_RULES:
            raise ConfigError(f"neutral_rule must be one of {', '.join(NEUTRAL_RULES)}, got {neutral_rule!r}")
        if not 0.0 <= float(threshold) < 1.0:
            raise ConfigError(f"threshold must be in [0, 1), got {threshold}")
        if top_k is not None and int(top_k) < 1:
            raise ConfigError(f"top_k must be >= 1 (or None for no cap), got {top_k}")
        self.split = get_splitter(splitter)
        self.splitter = splitter
        self.threshold = float(threshold)
        self.top_k = None if top_k is None else int(top_k)
        self.neutral_rule = neutral_rule
        self.neutral_filter = bool(neutral_filter)
        self.sentence_level = bool(sentence_level)
        self.allow_unclosed_think = bool(allow_unclosed_think)
        self.taxonomy = get_taxonomy(taxonomy) if taxonomy is not None else None
        # Scoring options given here override the verifier's own; unset ones keep its values.
        options = {
            "batch_size": batch_size,
            "max_batch_tokens": max_batch_tokens,
            "device": device,
            "cache_size": cache_size,
        }
        self.verifier = Verifier.coerce(
            verifier, taxonomy=self.taxonomy, **{k: v for k, v in options.items() if v is not None}
        )
        if self.taxonomy is None and self.verifier.default_taxonomy is not None:
            self.verifier.columns(self.verifier.default_taxonomy)
        self.__name__ = name
        self.last_stats: dict[str, float] = {}
        self.totals: Counter = Counter()

    @classmethod
    def from_preset(cls, preset: str, verifier: Any, **overrides: Any) -> ExplanationReward:
        if preset not in cls.PRESETS:
            raise ConfigError(f"unknown explanation-reward preset {preset!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls(verifier, **{**cls.PRESETS[preset], **overrides})

    @classmethod
    def paper(cls, verifier: Any, **overrides: Any) -> ExplanationReward:
        """The paper's settings: tau 0.5, neutral = neutral among the labels."""
        return cls.from_preset("paper", verifier, **overrides)

    @classmethod
    def released(cls, verifier: Any, **overrides: Any) -> ExplanationReward:
        """The released code's settings (also the constructor defaults)."""
        return cls.from_preset("released", verifier, **overrides)

    def __repr__(self) -> str:
        return (
            f"ExplanationReward(threshold={self.threshold}, top_k={self.top_k}, neutral_rule={self.neutral_rule!r}, "
            f"neutral_filter={self.neutral_filter}, sentence_level={self.sentence_level}, "
            f"splitter={self.splitter!r}, verifier={self.verifier.description})"
        )

    # ------------------------------------------------------------

    def sentences(self, text: str | None) -> list[str]:
        """The units the verifier classifies: the `<think>` sentences (or the whole `<think>`)."""
        if text is None:
            return []
        think = extract_think(text, allow_unclosed=self.allow_unclosed_think)
        if not think:
            return []
        if not self.sentence_level:
            return [think]
        return self.split(think)

    def __call__(
        self, completions: Sequence[Any], solution: Sequence[object] | None = None, **kwargs: Any
    ) -> list[float | None]:
        from erv.verifier.predict import select_label_sets

        start = time.perf_counter()
        texts = completion_texts(completions)
        n = len(texts)
        invalid = report_invalid(self.__name__, texts, None)
        default = self.taxonomy if self.taxonomy is not None else self.verifier.default_taxonomy
        taxonomies = resolve_taxonomies(n, kwargs, default, self.__name__)
        golds = gold_labels(solution, taxonomies, self.__name__)

        gold_columns: list[int | None] = []
        for tax, gold in zip(taxonomies, golds, strict=True):
            gold_columns.append(self.verifier.columns(tax).get(gold))
        unmapped = sum(col is None for col in gold_columns)

        per_completion = [
            self.sentences(t) if col is not None else [] for t, col in zip(texts, gold_columns, strict=True)
        ]
        counts = [len(s) for s in per_completion]
        flat = [s for sents in per_completion for s in sents]
        probs = self.verifier.predict_proba(flat)
        selected = select_label_sets(probs, self.threshold, self.top_k, at_least_one=True)
        scores, is_neutral = explanation_scores(
            selected,
            counts,
            [col if col is not None else 0 for col in gold_columns],
            self.verifier.neutral_index,
            neutral_rule=self.neutral_rule,
            neutral_filter=self.neutral_filter,
        )
        rewards: list[float | None] = [
            None if col is None else float(r) for r, col in zip(scores, gold_columns, strict=True)
        ]
        if unmapped:
            logger.warning(
                "%s: %d completions have a gold label the verifier has no output for; reward None",
                self.__name__,
                unmapped,
            )

        scored = [r for r in rewards if r is not None]
        no_think = sum(
            1
            for t, c, col in zip(texts, counts, gold_columns, strict=True)
            if t is not None and col is not None and c == 0
        )
        stats = {
            "completions": float(n),
            "invalid": float(invalid),
            "no_think": float(no_think),
            "unmapped_gold": float(unmapped),
            "sentences": float(len(flat)),
            "unique_sentences": float(self.verifier.last_stats.unique),
            "mean_sentences": len(flat) / max(n - invalid - unmapped, 1),
            "share_neutral": float(is_neutral.sum()) / len(flat) if flat else 0.0,
            "gold_neutral": float(
                sum(1 for col in gold_columns if col is not None and col == self.verifier.neutral_index)
            ),
            "truncated": float(self.verifier.last_stats.at_max_length),
            "mean_reward": sum(scored) / len(scored) if scored else 0.0,
            "seconds": time.perf_counter() - start,
        }
        self.last_stats = stats
        self.totals.update(
            {k: v for k, v in stats.items() if k not in ("mean_sentences", "share_neutral", "mean_reward")}
        )
        self.totals["calls"] += 1
        logger.info(
            "%s: %d completions, %d sentences (%d unique), %.1f per completion, %.0f%% neutral, "
            "%d invalid, %d without <think>, mean reward %.3f, %.2fs",
            self.__name__,
            n,
            len(flat),
            stats["unique_sentences"],
            stats["mean_sentences"],
            100 * stats["share_neutral"],
            invalid,
            no_think,
            stats["mean_reward"],
            stats["seconds"],
        )
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key in ("mean_sentences", "share_neutral", "invalid", "no_think", "unique_sentences", "seconds"):
                log_metric(f"{self.__name__}/{key}", float(stats[key]))
        return rewards
