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
- *Tied to what was judged.* Each record stores `input_hash`, a hash of the exact prompt sent
  (the explanation, the prompt template and the dataset's emotion list). An id whose
  explanation changed since it was judged is judged again (`on_changed="redo"`, the default)
  or the run is refused before any request (`"refuse"`); `erv evaluate` and `erv judge
  agreement` refuse a judgment whose hash does not match the prediction it is scored with.
- *No mixing.* Records carry the judge model, its request settings, the dataset and the prompt
  variant; resuming a file written with another of these is refused, as is a second job on the
  same file at once, and predictions of another dataset than `--dataset`.
- *Failing early.* Endpoint errors no retry can fix (a wrong key, an unknown model) stop the
  run after the first request with one line, instead of being recorded for every sample; the
  key is checked before anything is created.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.completions import extract_think
from erv.data.emotions import Taxonomy, get_taxonomy
from erv.data.ids import canonical_id
from erv.data.records import Judgment, Prediction, parse_judgment, read_predictions
from erv.errors import ConfigError, RecordError
from erv.io.identity import INPUT_HASH_KEY, content_hash, keep_record
from erv.io.jobs import ResumableJob, progress_bar, resumed_records, run_sync
from erv.io.outputs import check_output_file
from erv.judge.client import JudgeClient, JudgeConfig, JudgeReply, read_api_key
from erv.judge.prompts import EXPLANATION_PROMPT_VARIANTS, explanation_emotion_prompt, parse_emotion_reply

NO_EXPLANATION = "no explanation: the response has no <think>…</think> text"
EMPTY_EXPLANATION = "no explanation: the <think>…</think> text is empty"
SETTINGS_KEY = "judge_settings"


class JudgeEndpointError(ConfigError):
    """The endpoint refuses every request (wrong key, unknown model or path): no retry can help."""


def stop_if_fatal(reply: JudgeReply) -> None:
    """Stop the whole job on a reply that says no request can succeed (401/403/404)."""
    if reply.fatal:
        raise JudgeEndpointError(
            f"the endpoint refuses the requests: {reply.error}; check --base-url, --model and --api-key-env "
            f"(nothing more was sent; re-run the same command once fixed)"
        )


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
    api_errors: int = 0
    requests: int = 0
    """Requests sent to the endpoint (each may include the SDK's retries)."""
    errors: Counter = field(default_factory=Counter)
    changed: int = 0
    """Ids judged before from another explanation: judged again (counted in judged/cached/failed too)."""
    file_records: int = 0
    """The output file after the run (all ids, not only this run's): records ..."""
    file_judged: int = 0
    """... judged with a label of the taxonomy, ..."""
    file_out_of_taxonomy: int = 0
    """... answered outside the taxonomy (stored as null), ..."""
    file_no_explanation: int = 0
    """... without an explanation, ..."""
    file_api_failures: int = 0
    """... and failed API calls (asked again by the next run)."""

    def line(self) -> str:
        return f"judged {self.judged} / cached {self.cached} / failed {self.failed} / skipped {self.skipped}"

    def file_line(self) -> str:
        return (
            f"{self.file_records} samples in the file: judged {self.file_judged}, out-of-taxonomy replies "
            f"{self.file_out_of_taxonomy}, without explanation {self.file_no_explanation}, API failures "
            f"{self.file_api_failures}"
        )

    def count_file(self, records: list[dict[str, Any]]) -> None:
        self.file_records = len(records)
        for record in records:
            error = record.get("error")
            if error is None:
                if record.get("explanation_emotion") is None:
                    self.file_out_of_taxonomy += 1
                else:
                    self.file_judged += 1
            elif str(error).startswith("no explanation"):
                self.file_no_explanation += 1
            else:
                self.file_api_failures += 1


# ---------------------------------------------------------------- what a judgment is tied to


def explanation_of(pred: Prediction, allow_unclosed_think: bool = False) -> tuple[str | None, str | None]:
    """`(explanation, None)` or `(None, why there is none)` for a prediction's response."""
    explanation = extract_think(pred.response, allow_unclosed=allow_unclosed_think)
    if explanation is None:
        return None, NO_EXPLANATION
    if not explanation.strip():
        return None, EMPTY_EXPLANATION
    return explanation, None


def judge_input_hash(prompt: str | None, response: str) -> str:
    """What a judgment is tied to: the prompt sent (explanation + template + emotion list), or,
    for a response without explanation, the response itself."""
    return content_hash("explanation-prompt", prompt) if prompt is not None else content_hash("response", response)


def judge_settings_hash(config: JudgeConfig) -> str:
    """The request settings that can change a judge's answer, besides the model and the prompt."""
    return content_hash(config.temperature, config.max_tokens, config.extra_body, config.system)


def judgment_is_current(pred: Prediction, judgment: Judgment, taxonomy: Taxonomy) -> bool:
    """Whether `judgment` judged the explanation `pred` holds now (True when it stores no hash to check)."""
    stored = judgment.extra.get(INPUT_HASH_KEY)
    if stored is None:
        return True
    variant = judgment.extra.get("prompt") or "paper"
    if variant not in EXPLANATION_PROMPT_VARIANTS:
        return False
    for lenient in (False, True):  # the judge may have run with --allow-unclosed-think
        explanation, _ = explanation_of(pred, lenient)
        prompt = explanation_emotion_prompt(explanation, taxonomy, variant=variant) if explanation else None
        if judge_input_hash(prompt, pred.response) == stored:
            return True
    return False


def judged_emotion(
    pred: Prediction, judgment: Judgment | None, taxonomy: Taxonomy, predictions_path: object
) -> str | None:
    """The explanation emotion `judgment` found for `pred` (None: not judged, or the judge failed).

    A successful judgment of another explanation than `pred` holds now is an error, never used.
    """
    if judgment is None or not judgment.ok:
        return None
    if not judgment_is_current(pred, judgment, taxonomy):
        raise RecordError(stale_judgment_message(pred, judgment, predictions_path))
    return judgment.explanation_emotion


def stale_judgment_message(pred: Prediction, judgment: Judgment, predictions_path: object) -> str:
    return (
        f"{judgment.where}: the judgment of sample {judgment.id!r} was made for another explanation than "
        f"{predictions_path} now holds ({pred.where}); re-run `erv judge` on these predictions to judge it again"
    )


# ---------------------------------------------------------------- output file helpers


def load_existing(
    out: Path,
    taxonomy: Taxonomy,
    *,
    model: str,
    prompt: str,
    known_ids: dict[str, int],
    predictions_path: str | os.PathLike[str],
    expected: dict[str, str] | None = None,
    settings: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Existing records of `out`, one per (canonical) id; refuses files from another run setup.

    `expected` maps canonical ids to the input hash of their current explanation: a record
    judged from that explanation beats a stale one (:func:`erv.io.identity.keep_record`).
    """
    chosen: dict[str, dict[str, Any]] = {}
    expected = expected or {}
    for where, record in resumed_records(out):
        if "judge" not in record or "explanation_emotion" not in record:
            raise ConfigError(
                f"{where}: not a judgment record (no 'judge' / 'explanation_emotion'); is {out} the output of "
                f"`erv judge`? Use another --out"
            )
        if record.get("dataset") not in (None, taxonomy.name):  # before its labels are checked against ours
            raise ConfigError(
                f"{where}: written for dataset {record.get('dataset')!r}, this run uses --dataset {taxonomy.name}; "
                f"use another --out"
            )
        judgment = parse_judgment(record, where, taxonomy)
        if judgment.judge != model:
            raise ConfigError(
                f"{where}: sample {judgment.id!r} was judged by {judgment.judge!r}, this run uses --model {model!r}; "
                f"judgments of two models must not be mixed in one file: use another --out"
            )
        if record.get("prompt") not in (None, prompt):
            raise ConfigError(
                f"{where}: written with prompt variant {record.get('prompt')!r}, this run uses --prompt {prompt}; "
                f"use another --out"
            )
        if settings is not None and record.get(SETTINGS_KEY) not in (None, settings):
            raise ConfigError(
                f"{where}: written with other request settings (--temperature / --max-tokens / --extra-body) than "
                f"this run's; judgments made with two settings must not be mixed in one file: use another --out"
            )
        key = canonical_id(judgment.id)
        if key not in known_ids:
            raise ConfigError(
                f"{where}: sample {judgment.id!r} is not in {predictions_path}; is {out} the judgment file of other "
                f"predictions?"
            )
        record = dict(record)
        record["id"] = judgment.id
        if judgment.explanation_emotion is not None:
            record["explanation_emotion"] = judgment.explanation_emotion
        keep_record(chosen, key, record, expected.get(key))
    return chosen


def compact(records: Iterable[dict[str, Any]], order: dict[str, int]) -> list[dict[str, Any]]:
    """The records (one per sample) in input order (`order` maps canonical ids to positions)."""
    return sorted(records, key=lambda r: order.get(canonical_id(r["id"]), len(order)))


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
    input_hash: str,
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
        INPUT_HASH_KEY: input_hash,
        SETTINGS_KEY: judge_settings_hash(config),
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
            if reply is not None:
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
        input_hash = judge_input_hash(prompt, pred.response)
        if prompt is None:
            record = _record(
                pred, config, taxonomy, prompt_variant, emotion=None, raw=None, error=problem, input_hash=input_hash
            )
            account(record, None, put)
            return
        reply = await client.complete(prompt)
        stop_if_fatal(reply)
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
                input_hash=input_hash,
                cached=reply.cached,
                retries=reply.retries,
            )
        else:
            record = _record(
                pred,
                config,
                taxonomy,
                prompt_variant,
                emotion=None,
                raw=None,
                error=reply.error,
                input_hash=input_hash,
            )
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
    on_changed: str = "redo",
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
    out = check_output_file(out, inputs=(predictions,))
    if config.cache is not None:
        check_output_file(config.cache, "--cache", inputs=(predictions, out))
    all_predictions = read_predictions(predictions, taxonomy)
    order = {canonical_id(p.id): i for i, p in enumerate(all_predictions)}
    prompts: dict[str, tuple[str | None, str | None]] = {}
    expected: dict[str, str] = {}
    for pred in all_predictions:
        explanation, problem = explanation_of(pred, allow_unclosed_think)
        prompt = explanation_emotion_prompt(explanation, taxonomy, variant=prompt_variant) if explanation else None
        key = canonical_id(pred.id)
        prompts[key] = (prompt, problem)
        expected[key] = judge_input_hash(prompt, pred.response)
    selected = all_predictions[:limit] if limit is not None else all_predictions
    summary = JudgeRunSummary(total=len(selected))
    if any(prompts[canonical_id(p.id)][0] is not None for p in selected):
        read_api_key(config.api_key_env)  # before the output folder, the lock or the cache is created

    job = ResumableJob(
        out,
        "erv judge",
        arrange=lambda records: compact(records, order),
        load=lambda: load_existing(
            out,
            taxonomy,
            model=config.model,
            prompt=prompt_variant,
            known_ids=order,
            predictions_path=predictions,
            expected=expected,
            settings=judge_settings_hash(config),
        ).values(),
        key=lambda record: canonical_id(record["id"]),
        on_changed=on_changed,
        changed_what="explanation",
    )
    with job:
        todo: list[tuple[Prediction, str | None, str | None]] = []
        pending = job.pending(selected, lambda p: canonical_id(p.id), lambda p: expected[canonical_id(p.id)])
        for pred in pending:
            prompt, problem = prompts[canonical_id(pred.id)]
            todo.append((pred, prompt, problem))
        summary.skipped = job.skipped
        summary.changed = job.changed

        client = JudgeClient(config) if any(prompt is not None for _, prompt, _ in todo) else None
        try:
            if client is not None:
                try:
                    run_sync(lambda: _judge_all(job, todo, client, taxonomy, prompt_variant, summary, progress))
                finally:
                    summary.requests = client.requests_sent
            elif todo:  # only samples without explanation: no endpoint needed
                job.write(
                    [
                        _record(
                            pred,
                            config,
                            taxonomy,
                            prompt_variant,
                            emotion=None,
                            raw=None,
                            error=problem,
                            input_hash=judge_input_hash(None, pred.response),
                        )
                        for pred, _, problem in todo
                    ]
                )
                summary.failed += len(todo)
        finally:
            if client is not None:
                client.close()
    summary.count_file(job.final)
    return summary
