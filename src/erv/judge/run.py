"""The judging job behind `erv judge`: predictions in, one judgment per sample out.

Guarantees (and how):

- *Nothing is coerced.* A reply outside the taxonomy is stored with
  `explanation_emotion: null` and the raw text; a failed call is stored with `error`. Neither
  is ever counted as neutral (the released script does that).
- *No API call without an explanation.* A response without a `<think>…</think>` (or with an
  empty one) is recorded as unjudged with an error saying so; sending an empty "Reason:" to
  the judge, as the released script does, would invent an explanation emotion.
- *Crash-safe and resumable.* Each record is appended as one whole line (batched, fsynced;
  :class:`erv.io.jsonl.JsonlAppender`). A re-run first compacts what is there, keeps every id
  judged without error (a reply, valid label or not), and asks again only for ids that failed
  or were never written. At the end the file is rewritten atomically with exactly one record
  per id, in predictions order: the successful one if any, else the last failure.
- *No mixing.* Records carry the judge model, dataset and prompt variant; resuming a file
  written with another of these is refused, as is a second job on the same file at once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.completions import extract_think
from erv.data.emotions import Taxonomy, get_taxonomy
from erv.data.records import Prediction, parse_judgment, read_predictions
from erv.errors import ConfigError
from erv.io.jobs import ResumableJob, progress_bar, run_sync
from erv.io.jsonl import iter_json_records
from erv.judge.client import JudgeClient, JudgeConfig, JudgeReply
from erv.judge.prompts import EXPLANATION_PROMPT_VARIANTS, explanation_emotion_prompt, parse_emotion_reply

NO_EXPLANATION = "no explanation: the response has no <think>…</think> text"
EMPTY_EXPLANATION = "no explanation: the <think>…</think> text is empty"


@dataclass
class JudgeRunSummary:
    """Counts of one run; `judged`, `cached`, `failed` and `skipped` add up to `total`."""

    total: int = 0
    judged: int = 0
    """Answered by the endpoint in this run (a valid label or not)."""
    cached: int = 0
    """Answered from the reply cache."""
    failed: int = 0
    """Recorded with an error in this run (API failures + samples without explanation)."""
    skipped: int = 0
    """Already judged without error by an earlier run."""
    out_of_taxonomy: int = 0
    """Replies (fresh or cached) that name no label of the taxonomy: stored as null."""
    no_explanation: int = 0
    api_errors: int = 0
    requests: int = 0
    """Requests sent to the endpoint (each may include the SDK's retries)."""
    errors: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return f"judged {self.judged} / cached {self.cached} / failed {self.failed} / skipped {self.skipped}"


# ---------------------------------------------------------------- output file helpers


def load_existing(
    out: Path,
    taxonomy: Taxonomy,
    *,
    model: str,
    prompt: str,
    known_ids: dict[str, int],
    predictions_path: str | os.PathLike[str],
) -> dict[str, dict[str, Any]]:
    """Existing records of `out`, compacted to one per id; refuses files from another run setup."""
    chosen: dict[str, dict[str, Any]] = {}
    if not out.exists() or out.stat().st_size == 0:
        return chosen
    for where, record in iter_json_records(out, tolerate_torn_tail=True):
        if record.get("dataset") not in (None, taxonomy.name):  # before its labels are checked against ours
            raise ConfigError(
                f"{where}: written for dataset {record.get('dataset')!r}, this run uses --dataset {taxonomy.name}; "
                f"use another --out"
            )
        judgment = parse_judgment(record, where, taxonomy)
        if judgment.judge != model:
            raise ConfigError(
                f"{where}: sample {judgment.id!r} was judged by {judgment.judge!r}, this run uses --model {model!r}; "
                f"judgments of two models must not be mixed in one file: use another --out, or delete {out} to "
                f"start over"
            )
        if record.get("prompt") not in (None, prompt):
            raise ConfigError(
                f"{where}: written with prompt variant {record.get('prompt')!r}, this run uses --prompt {prompt}; "
                f"use another --out"
            )
        if judgment.id not in known_ids:
            raise ConfigError(
                f"{where}: sample {judgment.id!r} is not in {predictions_path}; is {out} the judgment file of other "
                f"predictions?"
            )
        record = dict(record)
        record["id"] = judgment.id
        if judgment.explanation_emotion is not None:
            record["explanation_emotion"] = judgment.explanation_emotion
        previous = chosen.get(judgment.id)
        if previous is not None and previous.get("error") is None:
            continue  # the first success stands; later records of this id are retries' leftovers
        chosen[judgment.id] = record
    return chosen


def compact(records: dict[str, dict[str, Any]], order: dict[str, int]) -> list[dict[str, Any]]:
    return sorted(records.values(), key=lambda r: order.get(r["id"], len(order)))


# ---------------------------------------------------------------- the job


def _record(
    pred: Prediction,
    config: JudgeConfig,
    taxonomy: Taxonomy,
    prompt: str,
    *,
    emotion: str | None,
    raw: str | None,
    error: str | None,
    cached: bool = False,
    retries: int | None = None,
) -> dict[str, Any]:
    return {
        "id": pred.id,
        "judge": config.model,
        "explanation_emotion": emotion,
        "raw": raw,
        "error": error,
        "cached": cached,
        "retries": retries,
        "dataset": taxonomy.name,
        "prompt": prompt,
    }


async def _judge_all(
    job: ResumableJob,
    todo: list[tuple[Prediction, str | None, str | None]],
    client: JudgeClient,
    taxonomy: Taxonomy,
    prompt_variant: str,
    summary: JudgeRunSummary,
    progress: bool | None,
) -> None:
    config = client.config
    bar = progress_bar(len(todo), f"judge {config.model}", "sample", progress)

    def account(record: dict[str, Any], reply: JudgeReply | None, put: Callable[[dict[str, Any]], None]) -> None:
        put(record)
        if record["error"] is not None:
            summary.failed += 1
            if reply is None:
                summary.no_explanation += 1
            else:
                summary.api_errors += 1
                summary.errors[record["error"]] += 1
        else:
            if reply is not None and reply.cached:
                summary.cached += 1
            else:
                summary.judged += 1
            if record["explanation_emotion"] is None:
                summary.out_of_taxonomy += 1
        bar.update(1)
        if summary.failed:
            bar.set_postfix(failed=summary.failed, refresh=False)

    async def handle(item: tuple[Prediction, str | None, str | None], put: Callable[[dict[str, Any]], None]) -> None:
        pred, prompt, problem = item
        if prompt is None:
            account(_record(pred, config, taxonomy, prompt_variant, emotion=None, raw=None, error=problem), None, put)
            return
        reply = await client.complete(prompt)
        if reply.ok:
            emotion = parse_emotion_reply(reply.text, taxonomy)
            record = _record(
                pred,
                config,
                taxonomy,
                prompt_variant,
                emotion=emotion,
                raw=reply.text,
                error=None,
                cached=reply.cached,
                retries=reply.retries,
            )
        else:
            record = _record(pred, config, taxonomy, prompt_variant, emotion=None, raw=None, error=reply.error)
        account(record, reply, put)

    try:
        await job.run(todo, handle, concurrency=config.concurrency)
    finally:
        bar.close()
        await client.aclose()


def run_judge(
    predictions: str | os.PathLike[str],
    dataset: str | Taxonomy,
    out: str | os.PathLike[str],
    config: JudgeConfig,
    *,
    limit: int | None = None,
    prompt_variant: str = "paper",
    allow_unclosed_think: bool = False,
    progress: bool | None = None,
) -> JudgeRunSummary:
    """Judge every prediction's explanation into `out` (resuming it); returns the counts."""
    if prompt_variant not in EXPLANATION_PROMPT_VARIANTS:
        raise ConfigError(
            f"unknown prompt variant {prompt_variant!r}; choose one of {', '.join(EXPLANATION_PROMPT_VARIANTS)}"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    taxonomy = get_taxonomy(dataset)
    out = Path(out)
    all_predictions = read_predictions(predictions, taxonomy)
    order = {p.id: i for i, p in enumerate(all_predictions)}
    selected = all_predictions[:limit] if limit is not None else all_predictions
    summary = JudgeRunSummary(total=len(selected))

    job = ResumableJob(
        out,
        "erv judge",
        arrange=lambda records: compact({r["id"]: r for r in records}, order),
        load=lambda: load_existing(
            out, taxonomy, model=config.model, prompt=prompt_variant, known_ids=order, predictions_path=predictions
        ).values(),
    )
    with job:
        todo: list[tuple[Prediction, str | None, str | None]] = []
        for pred in job.pending(selected, lambda p: p.id):
            explanation = extract_think(pred.response, allow_unclosed=allow_unclosed_think)
            if explanation is None:
                todo.append((pred, None, NO_EXPLANATION))
            elif not explanation.strip():
                todo.append((pred, None, EMPTY_EXPLANATION))
            else:
                todo.append((pred, explanation_emotion_prompt(explanation, taxonomy, variant=prompt_variant), None))
        summary.skipped = job.skipped

        client = JudgeClient(config) if any(prompt is not None for _, prompt, _ in todo) else None
        try:
            if client is not None:
                run_sync(lambda: _judge_all(job, todo, client, taxonomy, prompt_variant, summary, progress))
                summary.requests = client.requests_sent
            elif todo:  # only samples without explanation: no endpoint needed
                job.write(
                    [
                        _record(pred, config, taxonomy, prompt_variant, emotion=None, raw=None, error=problem)
                        for pred, _, problem in todo
                    ]
                )
                summary.failed += len(todo)
                summary.no_explanation += len(todo)
        finally:
            if client is not None:
                client.close()
    return summary
