"""CA-EMER's LLM-judged fine-grained coherence-of-explanation reward (FG-CE), async and batched."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from erv.data.completions import extract_answer, extract_think, get_splitter
from erv.data.emotions import Taxonomy, get_taxonomy, normalize_label
from erv.errors import ConfigError
from erv.rewards.common import completion_texts, gold_labels, logger, report_invalid, resolve_taxonomies

FGCE_FUNCTION_WEIGHTS: dict[str, float] = {
    "information extraction": 1.0,
    "information analysis": 1.0,
    "conclusion": 2.0,
    "others": 0.0,
}
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
        mean = sum(w * s for w, (_, _, s) in zip(weights, sentences, strict=True)) / total
    else:
        mean = sum(s for _, _, s in sentences) / len(sentences)
    return (mean - 1.0) / 4.0


class _SentenceVerdict:
    """What the judge made of one sentence: function, modality, score, or why there is none."""

    __slots__ = ("function", "modality", "score", "problem", "error")

    def __init__(
        self,
        function: str | None = None,
        modality: str | None = None,
        score: float = 0.0,
        problem: str | None = None,
        error: str | None = None,
    ) -> None:
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

    def __init__(
        self,
        judge: Any,
        *,
        weighted: bool = True,
        taxonomy: str | Taxonomy | None = None,
        splitter: str = "punkt",
        malformed: str = "others",
        json_mode: bool = True,
        allow_unclosed_think: bool = False,
        name: str = "fgce_reward",
    ) -> None:
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
            raise ConfigError(
                f"FGCEReward needs a JudgeClient, a JudgeConfig or a dict of JudgeConfig fields, "
                f"got {type(judge).__name__}"
            )
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
        return (
            f"FGCEReward(weighted={self.weighted}, splitter={self.splitter!r}, malformed={self.malformed!r}, "
            f"judge={self.judge!r})"
        )

    # ------------------------------------------------------------ entry points

    async def __call__(
        self, completions: Sequence[Any], solution: Sequence[object] | None = None, **kwargs: Any
    ) -> list[float | None]:
        return await self._score(completions, solution, kwargs)

    def compute(
        self, completions: Sequence[Any], solution: Sequence[object] | None = None, **kwargs: Any
    ) -> list[float | None]:
        """The rewards, from synchronous code (inside a running loop it runs on a helper thread)."""

        async def run() -> list[float | None]:
            try:
                return await self._score(completions, solution, kwargs)
            finally:
                await self.judge.aclose()  # this loop ends with the call: release its connections

        from erv.io.jobs import run_sync

        return run_sync(run)

    def close(self) -> None:
        """Close the judge client if this reward made it (its cache file)."""
        if self._owns_judge:
            self.judge.close()

    # ------------------------------------------------------------ the work

    async def _score(
        self, completions: Sequence[Any], solution: Sequence[object] | None, kwargs: dict[str, Any]
    ) -> list[float | None]:
        from erv.judge.prompts import (
            JudgeReplyError,
            fgce_classify_prompt,
            fgce_score_prompt,
            parse_fgce_classification,
            parse_fgce_score,
        )

        start = time.perf_counter()
        texts = completion_texts(completions)
        n = len(texts)
        invalid = report_invalid(self.__name__, texts, None)
        taxonomies = resolve_taxonomies(n, kwargs, self.taxonomy, self.__name__)
        golds = gold_labels(solution, taxonomies, self.__name__)
        requests_before = self.judge.requests_sent

        # Which completions earn a judgement: right answer and a non-empty explanation.
        wrong = no_think = 0
        units: list[tuple[str, list[str]] | None] = []  # (explanation, sentences) per judged completion
        for text, tax, gold in zip(texts, taxonomies, golds, strict=True):
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
        tasks: dict[tuple[str, str], asyncio.Task[Any]] = {}
        cached = 0

        async def ask(prompt: str, stage: str) -> tuple[Any, str | None, str | None]:
            """(parsed value, problem, error) for one request."""
            nonlocal cached
            parse = parse_fgce_classification if stage == "classify" else parse_fgce_score
            reply = await self.judge.complete(prompt, json_mode=self.json_mode, accept=parse)
            if reply.fatal:  # a wrong key or model: every reward would be None, so stop the run here
                raise ConfigError(f"FG-CE judge: the endpoint refuses the requests: {reply.error}")
            if not reply.ok:
                return None, "failed", reply.error
            cached += reply.cached
            try:
                return parse(reply.text), None, None
            except JudgeReplyError as exc:
                return None, "malformed_classification" if stage == "classify" else "malformed_score", str(exc)

        def request(prompt: str, stage: str) -> asyncio.Task[Any]:
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
                fgce_score_prompt(sentence, label["function"], emotion=emotion, context=context), "score"
            )
            if problem is not None:
                return _SentenceVerdict(label["function"], label["modality"], problem=problem, error=error)
            return _SentenceVerdict(label["function"], label["modality"], float(score))

        jobs = [
            [judge_sentence(s, unit[0], gold) for s in unit[1]] if unit is not None else []
            for unit, gold in zip(units, golds, strict=True)
        ]
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
        for unit, per in zip(units, jobs, strict=True):
            if unit is None:
                rewards.append(0.0)
                continue
            verdicts = verdicts_flat[position : position + len(per)]
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
        self.totals.update(
            {k: v for k, v in stats.items() if k not in ("share_others", "mean_sentences", "mean_reward")}
        )
        self.totals["calls"] += 1
        if failed_samples:
            logger.warning(
                "%s: judge calls failed for %d sentences; %d completions get reward None (first error: %s)",
                self.__name__,
                problems["failed"],
                failed_samples,
                first_error,
            )
        if problems["malformed_classification"] or problems["malformed_score"]:
            logger.warning(
                "%s: %d malformed classification and %d malformed score replies; those sentences %s (first: %s)",
                self.__name__,
                problems["malformed_classification"],
                problems["malformed_score"],
                "count as 'others'" if self.malformed == "others" else "make their completion's reward None",
                first_error,
            )
        logger.info(
            "%s: %d completions, %d judged (%d wrong answer, %d without <think>), %d sentences "
            "(%d distinct), %d requests sent, %d from the cache, mean reward %.3f, %.2fs",
            self.__name__,
            n,
            judged,
            wrong,
            no_think,
            n_sentences,
            stats["unique_sentences"],
            stats["requests"],
            cached,
            stats["mean_reward"],
            stats["seconds"],
        )
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key in (
                "judged",
                "mean_sentences",
                "share_others",
                "judge_failures",
                "malformed_samples",
                "requests",
                "cached",
                "seconds",
            ):
                log_metric(f"{self.__name__}/{key}", float(stats[key]))
        return rewards
