"""GRPO rewards: format, answer accuracy, the ERV explanation reward (paper §4) and CA-EMER's
LLM-judged FG-CE reward (:class:`FGCEReward`, an async reward function).

Every reward follows TRL's reward-function convention: it is called once per step with all
local completions as `f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`
(plus TRL's `trainer_state`, `log_extra`, `log_metric`) and returns one float per completion
(None = "not applicable", which TRL leaves out of that function's sum). Completions are
strings or chat lists (`[{"role": "assistant", "content": ...}]`).

A completion that is not text, or is empty, earns 0 and is counted and logged; it never raises
inside the trainer. Bad *data* (a gold label the taxonomy does not know, a taxonomy name that
does not exist) raises, naming the sample, because training on it would silently be wrong.

The taxonomy of a sample comes from a dataset column (`taxonomy` or `dataset`) or from the
recipe (`make_accuracy_reward(taxonomy=...)`, `ExplanationReward(..., taxonomy=...)`); it is
never guessed from the video path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from erv.completions import completion_text, extract_answer, extract_think, get_splitter, has_strict_format
from erv.emotions import Taxonomy, get_taxonomy, normalize_label, require_label
from erv.errors import ConfigError, TaxonomyError

logger = logging.getLogger(__name__)

NEUTRAL_RULES = ("only", "any")
TAXONOMY_COLUMNS = ("taxonomy", "dataset")

# ---------------------------------------------------------------- shared helpers


def completion_texts(completions: Sequence[Any]) -> list[str | None]:
    """The text of each completion, or None for one that is not text or is empty."""
    out: list[str | None] = []
    for completion in completions:
        try:
            text = completion_text(completion)
        except TypeError:
            out.append(None)
            continue
        out.append(text if text.strip() else None)
    return out


def _report_invalid(reward_name: str, texts: Sequence[str | None], log_metric: Callable | None) -> int:
    invalid = sum(t is None for t in texts)
    if invalid:
        logger.warning("%s: %d of %d completions are empty or not text; they get reward 0",
                       reward_name, invalid, len(texts))
    if callable(log_metric):
        log_metric(f"{reward_name}/invalid_completions", float(invalid))
    return invalid


def gold_text(solution: object) -> object:
    """The gold label text: the content of `<answer>…</answer>` if present, else the value."""
    if isinstance(solution, str):
        answer = extract_answer(solution)
        return answer if answer is not None else solution.strip()
    return solution


def resolve_taxonomies(n: int, kwargs: dict[str, Any], default: str | Taxonomy | None,
                       who: str) -> list[Taxonomy]:
    """Per-sample taxonomies: a `taxonomy`/`dataset` column (list) or value, else `default`."""
    for key in TAXONOMY_COLUMNS:
        value = kwargs.get(key)
        if value is None:
            continue
        values = [value] * n if isinstance(value, (str, Taxonomy)) else list(value)
        if len(values) != n:
            raise ConfigError(f"{who}: column {key!r} has {len(values)} values for {n} completions")
        out = []
        for i, name in enumerate(values):
            if name is None or name == "":
                if default is None:
                    raise ConfigError(f"{who}: sample {i} has an empty {key!r} and no default taxonomy is set")
                out.append(get_taxonomy(default))
                continue
            try:
                out.append(get_taxonomy(name))
            except TaxonomyError as exc:
                raise TaxonomyError(f"{who}: sample {i}: column {key!r}: {exc}") from None
        return out
    if default is None:
        raise ConfigError(f"{who}: no taxonomy: add a 'taxonomy' or 'dataset' column to the dataset or set the "
                          f"recipe's taxonomy (e.g. make_accuracy_reward(taxonomy='MAFW'))")
    return [get_taxonomy(default)] * n


def gold_labels(solution: Sequence[object] | None, taxonomies: Sequence[Taxonomy], who: str) -> list[str]:
    if solution is None:
        raise ConfigError(f"{who}: needs the gold label column 'solution'")
    solution = list(solution)
    if len(solution) != len(taxonomies):
        raise ConfigError(f"{who}: {len(solution)} solutions for {len(taxonomies)} completions")
    return [require_label(gold_text(sol), tax, where=f"{who}: sample {i}")
            for i, (sol, tax) in enumerate(zip(solution, taxonomies))]


# ---------------------------------------------------------------- format and accuracy


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1 if the whole completion is `<think>…</think> <answer>…</answer>` (paper regex), else 0."""
    texts = completion_texts(completions)
    _report_invalid("format_reward", texts, kwargs.get("log_metric"))
    return [1.0 if t is not None and has_strict_format(t) else 0.0 for t in texts]


def accuracy_reward(completions: Sequence[Any], solution: Sequence[object], *,
                    default_taxonomy: str | Taxonomy | None = None, **kwargs: Any) -> list[float]:
    """1 if the normalised `<answer>` equals the gold label, else 0 (no answer / unknown = wrong).

    The taxonomy comes from a `taxonomy`/`dataset` column, else `default_taxonomy` (bind it
    with :func:`make_accuracy_reward`). An unknown *gold* label raises, naming the sample.
    """
    texts = completion_texts(completions)
    _report_invalid("accuracy_reward", texts, kwargs.get("log_metric"))
    taxonomies = resolve_taxonomies(len(texts), kwargs, default_taxonomy, "accuracy_reward")
    golds = gold_labels(solution, taxonomies, "accuracy_reward")
    rewards = []
    for text, tax, gold in zip(texts, taxonomies, golds):
        answer = extract_answer(text) if text is not None else None
        rewards.append(1.0 if answer is not None and normalize_label(answer, tax) == gold else 0.0)
    return rewards


def make_accuracy_reward(taxonomy: str | Taxonomy) -> Callable[..., list[float]]:
    """`accuracy_reward` with a recipe-level taxonomy (a dataset column still wins per sample)."""
    get_taxonomy(taxonomy)  # fail at construction on a bad name
    reward = functools.partial(accuracy_reward, default_taxonomy=taxonomy)
    functools.update_wrapper(reward, accuracy_reward)
    return reward


# ---------------------------------------------------------------- Algorithm 1


def score_label_sets(label_sets: Sequence[Iterable[str]], gold: str, *, neutral: str = "neutral",
                     neutral_rule: str = "only", neutral_filter: bool = True) -> float:
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
        c = sum(gold in s and not neu for s, neu in zip(sets, is_neutral))
        denominator = len(sets) - sum(is_neutral)
    return c / denominator if denominator > 0 else 0.0


def explanation_scores(selected: "torch.Tensor", sentence_counts: Sequence[int], gold_columns: Sequence[int],
                       neutral_index: int | None, *, neutral_rule: str = "only",
                       neutral_filter: bool = True) -> tuple[list[float], "torch.Tensor"]:
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
    is_gold = selected[torch.arange(selected.shape[0]), gold[owner]] if selected.shape[0] else torch.zeros(0, dtype=torch.bool)
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

    def __init__(self, verifier: Any, threshold: float = 0.1, top_k: int | None = 2, neutral_rule: str = "only",
                 neutral_filter: bool = True, sentence_level: bool = True, splitter: str = "regex",
                 taxonomy: str | Taxonomy | None = None, batch_size: int | None = None,
                 max_batch_tokens: int | None = None, device: Any = None, cache_size: int | None = None,
                 allow_unclosed_think: bool = False, name: str = "explanation_reward") -> None:
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
        options = {"batch_size": batch_size, "max_batch_tokens": max_batch_tokens, "device": device,
                   "cache_size": cache_size}
        self.verifier = Verifier.coerce(verifier, taxonomy=self.taxonomy,
                                        **{k: v for k, v in options.items() if v is not None})
        if self.taxonomy is None and self.verifier.default_taxonomy is not None:
            self.verifier.columns(self.verifier.default_taxonomy)
        self.__name__ = name
        self.last_stats: dict[str, float] = {}
        self.totals: Counter = Counter()

    @classmethod
    def from_preset(cls, preset: str, verifier: Any, **overrides: Any) -> "ExplanationReward":
        if preset not in cls.PRESETS:
            raise ConfigError(f"unknown explanation-reward preset {preset!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls(verifier, **{**cls.PRESETS[preset], **overrides})

    @classmethod
    def paper(cls, verifier: Any, **overrides: Any) -> "ExplanationReward":
        """The paper's settings: tau 0.5, neutral = neutral among the labels."""
        return cls.from_preset("paper", verifier, **overrides)

    @classmethod
    def released(cls, verifier: Any, **overrides: Any) -> "ExplanationReward":
        """The released code's settings (also the constructor defaults)."""
        return cls.from_preset("released", verifier, **overrides)

    def __repr__(self) -> str:
        return (f"ExplanationReward(threshold={self.threshold}, top_k={self.top_k}, neutral_rule={self.neutral_rule!r}, "
                f"neutral_filter={self.neutral_filter}, sentence_level={self.sentence_level}, "
                f"splitter={self.splitter!r}, verifier={self.verifier.description})")

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

    def __call__(self, completions: Sequence[Any], solution: Sequence[object] | None = None,
                 **kwargs: Any) -> list[float | None]:
        from erv.verifier.predict import select_label_sets

        start = time.perf_counter()
        texts = completion_texts(completions)
        n = len(texts)
        invalid = _report_invalid(self.__name__, texts, None)
        default = self.taxonomy if self.taxonomy is not None else self.verifier.default_taxonomy
        taxonomies = resolve_taxonomies(n, kwargs, default, self.__name__)
        golds = gold_labels(solution, taxonomies, self.__name__)

        gold_columns: list[int | None] = []
        for tax, gold in zip(taxonomies, golds):
            gold_columns.append(self.verifier.columns(tax).get(gold))
        unmapped = sum(col is None for col in gold_columns)

        per_completion = [self.sentences(t) if col is not None else [] for t, col in zip(texts, gold_columns)]
        counts = [len(s) for s in per_completion]
        flat = [s for sents in per_completion for s in sents]
        probs = self.verifier.predict_proba(flat)
        selected = select_label_sets(probs, self.threshold, self.top_k, at_least_one=True)
        scores, is_neutral = explanation_scores(
            selected, counts, [col if col is not None else 0 for col in gold_columns], self.verifier.neutral_index,
            neutral_rule=self.neutral_rule, neutral_filter=self.neutral_filter)
        rewards: list[float | None] = [None if col is None else float(r) for r, col in zip(scores, gold_columns)]
        if unmapped:
            logger.warning("%s: %d completions have a gold label the verifier has no output for; reward None",
                           self.__name__, unmapped)

        scored = [r for r in rewards if r is not None]
        no_think = sum(1 for t, c, col in zip(texts, counts, gold_columns) if t is not None and col is not None and c == 0)
        stats = {
            "completions": float(n),
            "invalid": float(invalid),
            "no_think": float(no_think),
            "unmapped_gold": float(unmapped),
            "sentences": float(len(flat)),
            "unique_sentences": float(self.verifier.last_stats.unique),
            "mean_sentences": len(flat) / max(n - invalid - unmapped, 1),
            "share_neutral": float(is_neutral.sum()) / len(flat) if flat else 0.0,
            "gold_neutral": float(sum(1 for col in gold_columns if col is not None and col == self.verifier.neutral_index)),
            "truncated": float(self.verifier.last_stats.at_max_length),
            "mean_reward": sum(scored) / len(scored) if scored else 0.0,
            "seconds": time.perf_counter() - start,
        }
        self.last_stats = stats
        self.totals.update({k: v for k, v in stats.items() if k not in ("mean_sentences", "share_neutral", "mean_reward")})
        self.totals["calls"] += 1
        logger.info("%s: %d completions, %d sentences (%d unique), %.1f per completion, %.0f%% neutral, "
                    "%d invalid, %d without <think>, mean reward %.3f, %.2fs", self.__name__, n, len(flat),
                    stats["unique_sentences"], stats["mean_sentences"], 100 * stats["share_neutral"], invalid,
                    no_think, stats["mean_reward"], stats["seconds"])
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key in ("mean_sentences", "share_neutral", "invalid", "no_think", "unique_sentences", "seconds"):
                log_metric(f"{self.__name__}/{key}", float(stats[key]))
        return rewards


# ---------------------------------------------------------------- CA-EMER's FG-CE reward

FGCE_FUNCTION_WEIGHTS: dict[str, float] = {
    "information extraction": 1.0, "information analysis": 1.0, "conclusion": 2.0, "others": 0.0}
MALFORMED_POLICIES = ("others", "none")


def fgce_modality_weight(modality: str) -> float:
    """1 for one modality ("audio"), 2 for a pair ("audio-visual"), 3 for all three."""
    parts = [p for p in str(modality).split("-") if p]
    if not parts or len(parts) > 3:
        raise ValueError(f"not an FG-CE modality: {modality!r}")
    return float(len(parts))


def fgce_sentence_weight(function: str, modality: str) -> float:
    """w = function weight × modality weight; "others" weighs 0 whatever its modality."""
    if function not in FGCE_FUNCTION_WEIGHTS:
        raise ValueError(f"not an FG-CE function: {function!r}")
    return FGCE_FUNCTION_WEIGHTS[function] * fgce_modality_weight(modality)


def fgce_reward_value(sentences: Sequence[tuple[str, str, float]], *, weighted: bool = True) -> float:
    """FG-CE from per-sentence `(function, modality, score)`; score 1..5, and 0 for "others".

    weighted: mean = Σ w·s / Σ w with w = :func:`fgce_sentence_weight` (so "others" drops
    out); a zero total weight (no sentence, or only "others") gives reward 0.
    unweighted: mean = Σ s / N over all N sentences ("others" counts with 0; no sentence → 0).
    reward = (mean − 1) / 4: 0 … 1 weighted; −0.25 … 1 unweighted (all "others" → −0.25).
    """
    if not sentences:
        return 0.0
    if weighted:
        weights = [fgce_sentence_weight(f, m) for f, m, _ in sentences]
        total = sum(weights)
        if total <= 0:
            return 0.0
        mean = sum(w * s for w, (_, _, s) in zip(weights, sentences)) / total
    else:
        mean = sum(s for _, _, s in sentences) / len(sentences)
    return (mean - 1.0) / 4.0


class _SentenceVerdict:
    """What the judge made of one sentence: function, modality, score, or why there is none."""

    __slots__ = ("function", "modality", "score", "problem", "error")

    def __init__(self, function: str | None = None, modality: str | None = None, score: float = 0.0,
                 problem: str | None = None, error: str | None = None) -> None:
        self.function, self.modality, self.score = function, modality, score
        self.problem = problem  # None | "failed" | "malformed_classification" | "malformed_score"
        self.error = error


class FGCEReward:
    """CA-EMER's fine-grained coherence-of-explanation reward (FG-CE) as a TRL reward function.

    For a completion whose normalised `<answer>` equals the gold label (any other completion
    gets 0 without a judge call), the `<think>` text is split into sentences (Punkt by default)
    and the LLM judge, for every sentence, (1) classifies its function and modality as strict
    JSON, then (2) scores it 1–5 with the rubric of its function, told the (correct) emotion;
    "others" scores 0 without stage 2. The reward is :func:`fgce_reward_value` of the
    sentences, weighted (default) or not.

    `__call__` is a coroutine function, so TRL runs it on its reward event loop, concurrently
    with other async rewards; all sentences of all completions of a call are in flight at once
    (bounded by the judge's `concurrency`), a sentence's stage 2 starting as soon as its stage 1
    returns. Identical requests — the same (sentence, whole explanation) for stage 1, the same
    (sentence, function, emotion, explanation) for stage 2 — are sent once per call, and the
    judge's reply cache (`JudgeConfig(cache=...)`) serves them across steps and runs. From
    synchronous code use :meth:`compute`, which works with or without a running event loop.

    Failures never raise inside the trainer: a completion with a sentence whose judge call
    failed (after the SDK's retries) gets None (TRL leaves it out of this reward's sum), counted
    and warned. A reply that is not valid JSON of the asked shape (stage 1) or not a score 1–5
    (stage 2) is never read as a score: with `malformed="others"` (default) that sentence counts
    as "others" (weight 0; score 0 in the unweighted mean), with `malformed="none"` the whole
    completion gets None; either way it is counted, warned, and not cached, so the next step
    asks again.
    """

    def __init__(self, judge: Any, *, weighted: bool = True, taxonomy: str | Taxonomy | None = None,
                 splitter: str = "punkt", malformed: str = "others", json_mode: bool = True,
                 allow_unclosed_think: bool = False, name: str = "fgce_reward") -> None:
        from erv.judge.client import JudgeClient, JudgeConfig

        if malformed not in MALFORMED_POLICIES:
            raise ConfigError(f"malformed must be one of {', '.join(MALFORMED_POLICIES)}, got {malformed!r}")
        if isinstance(judge, JudgeClient):
            self.judge, self._owns_judge = judge, False
        elif isinstance(judge, JudgeConfig):
            self.judge, self._owns_judge = JudgeClient(judge), True
        elif isinstance(judge, dict):
            self.judge, self._owns_judge = JudgeClient(JudgeConfig(**judge)), True
        else:
            raise ConfigError(f"FGCEReward needs a JudgeClient, a JudgeConfig or a dict of JudgeConfig fields, "
                              f"got {type(judge).__name__}")
        self.weighted = bool(weighted)
        self.taxonomy = get_taxonomy(taxonomy) if taxonomy is not None else None
        self.split = get_splitter(splitter)
        self.splitter = splitter
        self.malformed = malformed
        self.json_mode = bool(json_mode)
        self.allow_unclosed_think = bool(allow_unclosed_think)
        self.__name__ = name
        self.last_stats: dict[str, float] = {}
        self.totals: Counter = Counter()

    def __repr__(self) -> str:
        return (f"FGCEReward(weighted={self.weighted}, splitter={self.splitter!r}, malformed={self.malformed!r}, "
                f"judge={self.judge!r})")

    # ------------------------------------------------------------ entry points

    async def __call__(self, completions: Sequence[Any], solution: Sequence[object] | None = None,
                       **kwargs: Any) -> list[float | None]:
        return await self._score(completions, solution, kwargs)

    def compute(self, completions: Sequence[Any], solution: Sequence[object] | None = None,
                **kwargs: Any) -> list[float | None]:
        """The rewards, from synchronous code (inside a running loop it runs on a helper thread)."""
        async def run() -> list[float | None]:
            try:
                return await self._score(completions, solution, kwargs)
            finally:
                await self.judge.aclose()  # this loop ends with the call: release its connections

        from erv.judge.client import run_sync

        return run_sync(run)

    def close(self) -> None:
        """Close the judge client if this reward made it (its cache file)."""
        if self._owns_judge:
            self.judge.close()

    # ------------------------------------------------------------ the work

    async def _score(self, completions: Sequence[Any], solution: Sequence[object] | None,
                     kwargs: dict[str, Any]) -> list[float | None]:
        from erv.judge.prompts import (JudgeReplyError, fgce_classify_prompt, fgce_score_prompt,
                                       parse_fgce_classification, parse_fgce_score)

        start = time.perf_counter()
        texts = completion_texts(completions)
        n = len(texts)
        invalid = _report_invalid(self.__name__, texts, None)
        taxonomies = resolve_taxonomies(n, kwargs, self.taxonomy, self.__name__)
        golds = gold_labels(solution, taxonomies, self.__name__)
        requests_before = self.judge.requests_sent

        # Which completions earn a judgement: right answer and a non-empty explanation.
        wrong = no_think = 0
        units: list[tuple[str, list[str]] | None] = []  # (explanation, sentences) per judged completion
        for text, tax, gold in zip(texts, taxonomies, golds):
            if text is None:
                units.append(None)
                continue
            answer = extract_answer(text)
            if answer is None or normalize_label(answer, tax) != gold:
                wrong += 1
                units.append(None)
                continue
            think = extract_think(text, allow_unclosed=self.allow_unclosed_think)
            sentences = self.split(think) if think and think.strip() else []
            if not sentences:
                no_think += 1
                units.append(None)
                continue
            units.append((think.strip(), sentences))

        # One task per distinct request; a sentence's stage 2 waits only for its own stage 1.
        tasks: dict[tuple[str, str], "asyncio.Task[Any]"] = {}
        cached = 0

        async def ask(prompt: str, stage: str) -> tuple[Any, str | None, str | None]:
            """(parsed value, problem, error) for one request."""
            nonlocal cached
            parse = parse_fgce_classification if stage == "classify" else parse_fgce_score
            reply = await self.judge.complete(prompt, json_mode=self.json_mode, accept=parse)
            if not reply.ok:
                return None, "failed", reply.error
            cached += reply.cached
            try:
                return parse(reply.text), None, None
            except JudgeReplyError as exc:
                return None, "malformed_classification" if stage == "classify" else "malformed_score", str(exc)

        def request(prompt: str, stage: str) -> "asyncio.Task[Any]":
            key = (stage, prompt)
            if key not in tasks:
                tasks[key] = asyncio.ensure_future(ask(prompt, stage))
            return tasks[key]

        async def judge_sentence(sentence: str, context: str, emotion: str) -> _SentenceVerdict:
            label, problem, error = await request(fgce_classify_prompt(sentence, context), "classify")
            if problem is not None:
                return _SentenceVerdict(problem=problem, error=error)
            if label["function"] == "others":
                return _SentenceVerdict("others", label["modality"], 0.0)
            score, problem, error = await request(
                fgce_score_prompt(sentence, label["function"], emotion=emotion, context=context), "score")
            if problem is not None:
                return _SentenceVerdict(label["function"], label["modality"], problem=problem, error=error)
            return _SentenceVerdict(label["function"], label["modality"], float(score))

        jobs = [[judge_sentence(s, unit[0], gold) for s in unit[1]] if unit is not None else []
                for unit, gold in zip(units, golds)]
        flat = [job for per in jobs for job in per]
        try:
            verdicts_flat = list(await asyncio.gather(*flat))
        finally:
            for task in tasks.values():
                if not task.done():
                    task.cancel()

        # Rewards.
        rewards: list[float | None] = []
        problems: Counter = Counter()
        functions: Counter = Counter()
        failed_samples = malformed_samples = 0
        first_error: str | None = None
        position = 0
        for unit, per in zip(units, jobs):
            if unit is None:
                rewards.append(0.0)
                continue
            verdicts = verdicts_flat[position:position + len(per)]
            position += len(per)
            items: list[tuple[str, str, float]] = []
            failed = malformed = False
            for verdict in verdicts:
                if verdict.problem is not None:
                    problems[verdict.problem] += 1
                    first_error = first_error or verdict.error
                if verdict.problem == "failed":
                    failed = True
                elif verdict.problem is not None:
                    malformed = True
                    items.append(("others", verdict.modality or "contextual", 0.0))
                    functions["malformed"] += 1
                else:
                    items.append((verdict.function, verdict.modality, verdict.score))
                    functions[verdict.function] += 1
            if failed:
                failed_samples += 1
                rewards.append(None)
            elif malformed and self.malformed == "none":
                malformed_samples += 1
                rewards.append(None)
            else:
                malformed_samples += malformed
                rewards.append(fgce_reward_value(items, weighted=self.weighted))

        n_sentences = len(flat)
        judged = sum(unit is not None for unit in units)
        scored = [r for r in rewards if r is not None]
        stats = {
            "completions": float(n),
            "invalid": float(invalid),
            "wrong_answer": float(wrong),
            "no_think": float(no_think),
            "judged": float(judged),
            "sentences": float(n_sentences),
            "unique_sentences": float(sum(1 for stage, _ in tasks if stage == "classify")),
            "unique_scores": float(sum(1 for stage, _ in tasks if stage == "score")),
            "requests": float(self.judge.requests_sent - requests_before),
            "cached": float(cached),
            "judge_failures": float(failed_samples),
            "failed_sentences": float(problems["failed"]),
            "malformed_classification": float(problems["malformed_classification"]),
            "malformed_score": float(problems["malformed_score"]),
            "malformed_samples": float(malformed_samples),
            "share_others": functions["others"] / n_sentences if n_sentences else 0.0,
            "mean_sentences": n_sentences / judged if judged else 0.0,
            "mean_reward": sum(scored) / len(scored) if scored else 0.0,
            "seconds": time.perf_counter() - start,
        }
        self.last_stats = stats
        self.totals.update({k: v for k, v in stats.items() if k not in ("share_others", "mean_sentences", "mean_reward")})
        self.totals["calls"] += 1
        if failed_samples:
            logger.warning("%s: judge calls failed for %d sentences; %d completions get reward None (first error: %s)",
                           self.__name__, problems["failed"], failed_samples, first_error)
        if problems["malformed_classification"] or problems["malformed_score"]:
            logger.warning("%s: %d malformed classification and %d malformed score replies; those sentences %s "
                           "(first: %s)", self.__name__, problems["malformed_classification"],
                           problems["malformed_score"],
                           "count as 'others'" if self.malformed == "others" else "make their completion's reward None",
                           first_error)
        logger.info("%s: %d completions, %d judged (%d wrong answer, %d without <think>), %d sentences "
                    "(%d distinct), %d requests sent, %d from the cache, mean reward %.3f, %.2fs", self.__name__, n,
                    judged, wrong, no_think, n_sentences, stats["unique_sentences"], stats["requests"], cached,
                    stats["mean_reward"], stats["seconds"])
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key in ("judged", "mean_sentences", "share_others", "judge_failures", "malformed_samples",
                        "requests", "cached", "seconds"):
                log_metric(f"{self.__name__}/{key}", float(stats[key]))
        return rewards
