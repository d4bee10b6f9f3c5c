"""Verifier data augmentation through the LLM judge (paper §3.2, Table 5).

Two jobs, both driven by :class:`erv.judge.JudgeClient` (concurrent requests, the SDK's
retries, a reply cache, failures as values):

- **pseudo-label** — the judge names up to two emotions for each explanation (Figure 6
  prompt), turning the policy's own explanations of training videos into verifier data;
- **complement** — two-shot generation (Figure 7 prompt) of new descriptions for the rare
  classes until each class has `target` examples, counting the ones the data already has.

Both write JSONL records that :func:`erv.verifier.data.load_examples` reads directly
(`{"id", "text", "labels", "raw", "error", "judge", ...}`), and both resume: records are
appended as replies arrive (one whole fsynced line each), a re-run reads what is there and
does only what is missing, and the file is rewritten atomically, compacted, at the end. A
pseudo-label record stores the hash of the prompt it answered (`input_hash`): an id whose
explanation changed is labelled again (or the run refused, `on_changed="refuse"`). Records
of another judge or dataset are refused, and an endpoint that refuses every request (wrong
key, unknown model) stops the run after its first reply.

Nothing is coerced. A pseudo-label reply that is not one or two labels of the taxonomy is kept
with `labels: null` and its raw text (the importer skips and counts it); a failed call is kept
with its `error` and asked again by the next run. A generated description identical (up to
case, spacing and end punctuation) to an existing text or to an earlier generation is
discarded and counted, so re-runs never add duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.data.completions import extract_think
from erv.data.emotions import UNKNOWN, Taxonomy, get_taxonomy, normalize_label
from erv.data.ids import canonical_id
from erv.errors import ConfigError, RecordError, TaxonomyError
from erv.io.identity import INPUT_HASH_KEY, content_hash, keep_record
from erv.io.jobs import ResumableJob, progress_bar, resumed_records, run_sync
from erv.io.jsonl import PathLike, iter_json_records, write_json
from erv.io.outputs import check_output_file
from erv.judge.client import JudgeClient, JudgeConfig, JudgeReply, read_api_key
from erv.judge.prompts import complement_prompt, parse_multi_emotion_reply, pseudo_label_prompt
from erv.judge.run import SETTINGS_KEY, compact, judge_settings_hash, stop_if_fatal

# The classes the paper complements to about 1K examples each (docs/reference.md §3).
PAPER_RARE_CLASSES: tuple[str, ...] = ("disgust", "fear", "contempt", "disappointment", "neutral", "helplessness")
PSEUDO_LABEL_TEXT_KEYS: tuple[str, ...] = ("text", "explanation", "reason", "think")
MAX_PSEUDO_LABELS = 2  # Figure 6: "up to 2 dominant emotions"
STALL_ROUNDS = 2  # a class whose rounds bring nothing new this many times in a row is given up (reported)


# ---------------------------------------------------------------- shared helpers


def _check_run_setup(where: str, record: dict[str, Any], taxonomy: Taxonomy, model: str) -> None:
    """Records of one output file come from one judge and one taxonomy; mixing is refused."""
    if record.get("dataset") not in (None, taxonomy.name):
        raise ConfigError(
            f"{where}: written for dataset {record.get('dataset')!r}, this run uses --dataset "
            f"{taxonomy.name}; use another --out"
        )
    if record.get("judge") != model:
        raise ConfigError(
            f"{where}: written by judge {record.get('judge')!r}, this run uses --model {model!r}; "
            f"records of two judges must not be mixed in one file: use another --out"
        )


# ---------------------------------------------------------------- pseudo-labels


@dataclass(frozen=True)
class Explanation:
    """One text to pseudo-label: its id, the explanation, and where it came from."""

    id: str
    text: str
    where: str


@dataclass
class PseudoLabelSummary:
    """Counts of one pseudo-label run; `labelled + cached + failed + skipped == total`."""

    total: int = 0
    """Explanations with text (ids without text are counted in `no_text`, never sent)."""
    labelled: int = 0
    """Answered by the endpoint in this run (valid labels or not)."""
    cached: int = 0
    failed: int = 0
    """API failures recorded in this run (asked again by the next run)."""
    skipped: int = 0
    """Already answered by an earlier run."""
    out_of_taxonomy: int = 0
    """Answers of this run that are not 1–2 labels of the taxonomy (stored with `labels: null`)."""
    no_text: int = 0
    requests: int = 0
    errors: Counter = field(default_factory=Counter)
    label_counts: dict[str, int] = field(default_factory=dict)
    """Per class over the whole output file (a two-label record counts for both)."""
    file_out_of_taxonomy: int = 0
    file_failed: int = 0
    changed: int = 0
    """Ids labelled before from another explanation: labelled again (counted in labelled/cached/failed too)."""

    def line(self) -> str:
        return f"labelled {self.labelled} / cached {self.cached} / failed {self.failed} / skipped {self.skipped}"


def read_explanations(
    path: PathLike, *, text_key: str | None = None, allow_unclosed_think: bool = False
) -> tuple[list[Explanation], list[str]]:
    """Explanations from predictions (the `<think>` of `response`) or from text records.

    A record with a `response` is a prediction; otherwise its text is under `text_key` or the
    first of `text` / `explanation` / `reason` / `think`. Ids come from `id`, else the record's
    1-based position (`#7`), which stays stable as long as the file does. Returns the
    explanations and the ids that have no text (a prediction without `<think>`), which are
    reported and never sent to the judge. Duplicate ids are an error.
    """
    keys = (text_key,) if text_key else PSEUDO_LABEL_TEXT_KEYS
    out: list[Explanation] = []
    no_text: list[str] = []
    seen: dict[str, str] = {}
    for position, (where, record) in enumerate(iter_json_records(path), start=1):
        raw_id = record.get("id")
        if raw_id is None:
            rid = f"#{position}"
        elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
            rid = str(raw_id)
        else:
            raise RecordError(f"{where}: 'id' must be a non-empty string or an integer, got {raw_id!r}")
        if rid in seen:
            raise RecordError(f"{where}: duplicate id {rid!r} (first at {seen[rid]})")
        seen[rid] = where
        if "response" in record and not text_key:
            response = record["response"]
            if not isinstance(response, str):
                raise RecordError(f"{where}: 'response' must be a string (sample {rid})")
            text = extract_think(response, allow_unclosed=allow_unclosed_think)
        else:
            key = next((k for k in keys if k in record), None)
            if key is None:
                raise RecordError(
                    f"{where}: no explanation text: expected a 'response' (predictions) or one of "
                    f"the keys {', '.join(keys)} (sample {rid})"
                )
            text = record[key]
            if text is not None and not isinstance(text, str):
                raise RecordError(f"{where}: {key!r} must be a string (sample {rid})")
        if text is None or not text.strip():
            no_text.append(rid)
            continue
        out.append(Explanation(rid, text.strip(), where))
    if not out and not no_text:
        raise RecordError(f"{path}: file holds no records")
    return out, no_text


def _pseudo_record(
    item: Explanation,
    config: JudgeConfig,
    taxonomy: Taxonomy,
    *,
    labels: list[str] | None,
    raw: str | None,
    error: str | None,
    cached: bool = False,
) -> dict[str, Any]:
    return {
        "id": item.id,
        "text": item.text,
        "labels": labels,
        "raw": raw,
        "error": error,
        "judge": config.model,
        "dataset": taxonomy.name,
        "cached": cached,
        INPUT_HASH_KEY: pseudo_label_hash(item, taxonomy),
        SETTINGS_KEY: judge_settings_hash(config),
    }


def pseudo_label_hash(item: Explanation, taxonomy: Taxonomy) -> str:
    """What a pseudo-label is tied to: the prompt sent (the explanation, Figure 6's text, the emotion list)."""
    return content_hash("pseudo-label-prompt", pseudo_label_prompt(item.text, taxonomy))


def _load_pseudo_labels(
    out: Path,
    taxonomy: Taxonomy,
    config: JudgeConfig,
    known: dict[str, int],
    source: PathLike,
    expected: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One record per id from an existing output: a current one over a stale one; the first success, else the
    last failure (:func:`erv.io.identity.keep_record`)."""
    chosen: dict[str, dict[str, Any]] = {}
    expected = expected or {}
    settings = judge_settings_hash(config)
    for where, record in resumed_records(out):
        _check_run_setup(where, record, taxonomy, config.model)
        if record.get(SETTINGS_KEY) not in (None, settings):
            raise ConfigError(
                f"{where}: written with other request settings (--temperature / --max-tokens / --extra-body) than "
                f"this run's; use another --out"
            )
        rid = record.get("id")
        if not isinstance(rid, str) or canonical_id(rid) not in known:
            raise ConfigError(f"{where}: sample {rid!r} is not in {source}; is {out} the output of another input?")
        labels = record.get("labels")
        if labels is not None and (
            not isinstance(labels, list) or any(normalize_label(label, taxonomy) == UNKNOWN for label in labels)
        ):
            raise RecordError(f"{where}: 'labels' must be null or a list of {taxonomy.name} labels, got {labels!r}")
        keep_record(chosen, canonical_id(rid), record, expected.get(canonical_id(rid)))
    return chosen


def count_labels(records: Iterable[dict[str, Any]], taxonomy: Taxonomy) -> dict[str, int]:
    """Records per label in taxonomy order (a record with two labels counts for both)."""
    counts: Counter = Counter()
    for record in records:
        if record.get("error") is None and isinstance(record.get("labels"), list):
            counts.update(normalize_label(label, taxonomy) for label in record["labels"])
    return {label: counts.get(label, 0) for label in taxonomy.labels}


async def _pseudo_label_all(
    job: ResumableJob,
    todo: list[Explanation],
    client: JudgeClient,
    taxonomy: Taxonomy,
    summary: PseudoLabelSummary,
    progress: bool | None,
) -> None:
    config = client.config
    bar = progress_bar(len(todo), f"pseudo-label {config.model}", "text", progress)

    async def handle(item: Explanation, put: Callable[[dict[str, Any]], None]) -> None:
        reply = await client.complete(pseudo_label_prompt(item.text, taxonomy))
        stop_if_fatal(reply)
        if reply.ok:
            labels = parse_multi_emotion_reply(reply.text, taxonomy, max_labels=MAX_PSEUDO_LABELS)
            put(_pseudo_record(item, config, taxonomy, labels=labels, raw=reply.text, error=None, cached=reply.cached))
            if reply.cached:
                summary.cached += 1
            else:
                summary.labelled += 1
            summary.out_of_taxonomy += labels is None
        else:
            put(_pseudo_record(item, config, taxonomy, labels=None, raw=None, error=reply.error))
            summary.failed += 1
            summary.errors[reply.error] += 1
            bar.set_postfix(failed=summary.failed, refresh=False)
        bar.update(1)

    try:
        await job.run(todo, handle, concurrency=config.concurrency)
    finally:
        bar.close()
        await client.aclose()


def run_pseudo_label(
    source: PathLike,
    dataset: str | Taxonomy,
    out: PathLike,
    config: JudgeConfig,
    *,
    text_key: str | None = None,
    allow_unclosed_think: bool = False,
    limit: int | None = None,
    on_changed: str = "redo",
    progress: bool | None = None,
) -> PseudoLabelSummary:
    """Pseudo-label every explanation of `source` into `out` (resuming it); returns the counts."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    taxonomy = get_taxonomy(dataset)
    out = check_output_file(out, inputs=(source,))
    if config.cache is not None:
        check_output_file(config.cache, "--cache", inputs=(source, out))
    explanations, no_text = read_explanations(source, text_key=text_key, allow_unclosed_think=allow_unclosed_think)
    order = {canonical_id(item.id): i for i, item in enumerate(explanations)}
    expected = {canonical_id(item.id): pseudo_label_hash(item, taxonomy) for item in explanations}
    selected = explanations[:limit] if limit is not None else explanations
    summary = PseudoLabelSummary(total=len(selected), no_text=len(no_text))
    if selected:
        read_api_key(config.api_key_env)  # before the output folder, the lock or the cache is created

    job = ResumableJob(
        out,
        "erv verifier augment pseudo-label",
        load=lambda: _load_pseudo_labels(out, taxonomy, config, order, source, expected).values(),
        arrange=lambda records: compact(records, order),
        key=lambda record: canonical_id(record["id"]),
        on_changed=on_changed,
        changed_what="explanation",
    )
    with job:
        todo = job.pending(selected, lambda item: canonical_id(item.id), lambda item: expected[canonical_id(item.id)])
        summary.skipped = job.skipped
        summary.changed = job.changed
        client = JudgeClient(config) if todo else None
        try:
            if client is not None:
                run_sync(lambda: _pseudo_label_all(job, todo, client, taxonomy, summary, progress))
                summary.requests = client.requests_sent
        finally:
            if client is not None:
                client.close()
    records = job.final
    summary.label_counts = count_labels(records, taxonomy)
    summary.file_out_of_taxonomy = sum(1 for r in records if r.get("error") is None and r.get("labels") is None)
    summary.file_failed = sum(1 for r in records if r.get("error") is not None)
    return summary


# ---------------------------------------------------------------- complement


@dataclass
class ComplementSummary:
    """Counts of one complement run and the per-class counts before and after it."""

    target: int = 0
    requested: int = 0
    generated: int = 0
    """New unique descriptions written by this run."""
    duplicates: int = 0
    """Replies identical to an existing text or an earlier generation: discarded."""
    failed: int = 0
    cached: int = 0
    requests: int = 0
    """Requests that reached the endpoint (not served from the cache)."""
    rounds: int = 0
    errors: Counter = field(default_factory=Counter)
    data_counts: dict[str, int] = field(default_factory=dict)
    """Per complemented class: examples in the training data."""
    before: dict[str, int] = field(default_factory=dict)
    """Per complemented class: data + descriptions already in --out when the run started."""
    after: dict[str, int] = field(default_factory=dict)
    stalled: list[str] = field(default_factory=list)
    """Classes that two rounds in a row could not bring closer to the target (only duplicates or failures)."""

    @property
    def short(self) -> dict[str, int]:
        """Classes still below the target, with how many examples they lack."""
        return {label: self.target - n for label, n in self.after.items() if n < self.target}

    def line(self) -> str:
        done = sum(1 for n in self.after.values() if n >= self.target)
        return (
            f"generated {self.generated} / duplicates {self.duplicates} / failed {self.failed} / "
            f"classes at target {done} of {len(self.after)}"
        )


_TEXT_KEY_STRIP = re.compile(r"^[\s\"'“”‘’`]+|[\s\"'“”‘’`.!?…]+$")
_WS = re.compile(r"\s+")
_LEAD_LABEL = re.compile(r"^\s*(?:description|answer|output)\s*:\s*", re.IGNORECASE)


def dedupe_key(text: str) -> str:
    """Identity of a description for de-duplication: case, spacing, quotes and end punctuation ignored."""
    return _WS.sub(" ", _TEXT_KEY_STRIP.sub("", text.casefold())).strip()


def clean_description(text: str) -> str:
    """A generated description as stored: trimmed, without wrapping quotes or a "Description:" cue."""
    text = text.strip()
    for _ in range(2):  # "Description: ..." in quotes, or quoted after the cue
        text = _LEAD_LABEL.sub("", text).strip()
        quoted = len(text) >= 2 and ((text[0] == text[-1] and text[0] in "\"'`") or (text[0], text[-1]) == ("“", "”"))
        if quoted:
            text = text[1:-1].strip()
    return text


def _draw(seed: int, label: str, draw: int) -> int:
    digest = hashlib.sha256(f"{seed}\x1f{label}\x1f{draw}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class _Shot:
    text: str
    ref: str  # the example's id or file:line, recorded with each generation for audits


def _shot_pools(examples: Sequence[Any], classes: Sequence[str]) -> dict[str, list[_Shot]]:
    pools: dict[str, list[_Shot]] = {label: [] for label in classes}
    seen: dict[str, set[str]] = {label: set() for label in classes}
    for ex in examples:
        for label in ex.labels:
            if label in pools and dedupe_key(ex.text) not in seen[label]:
                seen[label].add(dedupe_key(ex.text))
                pools[label].append(_Shot(ex.text, ex.id or ex.source or "?"))
    return pools


def _load_generated(out: Path, taxonomy: Taxonomy, model: str) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for where, record in resumed_records(out):
        _check_run_setup(where, record, taxonomy, model)
        labels = record.get("labels")
        text = record.get("text")
        if (
            not isinstance(record.get("id"), str)
            or not isinstance(text, str)
            or not text.strip()
            or not isinstance(labels, list)
            or len(labels) != 1
            or labels[0] not in taxonomy.labels
            or not isinstance(record.get("draw"), int)
        ):
            raise RecordError(
                f"{where}: not a complement record (id, text, one {taxonomy.name} label, draw); "
                f"is {out} the output of `erv verifier augment complement`?"
            )
        records.setdefault(record["id"], record)
    return list(records.values())


def _sort_generated(records: Iterable[dict[str, Any]], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    rank = {label: i for i, label in enumerate(taxonomy.labels)}
    return sorted(records, key=lambda r: (rank[r["labels"][0]], r["draw"]))


def draws_file(out: PathLike) -> Path:
    """Where a complement run keeps the next draw number per class (beside --out): draws that
    ended as duplicates or failures leave no record in --out, and must not be asked again."""
    out = Path(out)
    return out.with_name(out.name + ".draws.json")


def _read_draws(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path}: unreadable draw counters ({exc}); delete it to continue (earlier requests may "
            f"then be asked again and their duplicates dropped)"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and v >= 0 for v in data.values()):
        raise ConfigError(f"{path}: expected an object of class -> next draw number; delete it to continue")
    return data


def _write_draws(path: Path, used: dict[str, int], next_draw: dict[str, int]) -> None:
    merged = {**used, **{label: max(int(used.get(label, 0)), n) for label, n in next_draw.items()}}
    write_json(path, dict(sorted(merged.items())))


def resolve_classes(classes: Sequence[str] | None, taxonomy: Taxonomy) -> list[str]:
    """Canonical labels of the classes to complement (default: the paper's rare classes in the taxonomy)."""
    if not classes:
        chosen = [normalize_label(c, taxonomy) for c in PAPER_RARE_CLASSES]
        return [c for c in taxonomy.labels if c in chosen]
    out: list[str] = []
    for name in classes:
        label = normalize_label(name, taxonomy)
        if label == UNKNOWN:
            raise TaxonomyError(f"--classes: {name!r} is not {taxonomy.a_label} ({taxonomy.prompt_list()})")
        if label not in out:
            out.append(label)
    return out


async def _complement_round(
    job: ResumableJob,
    requests: list[tuple[str, int, list[_Shot]]],
    client: JudgeClient,
    taxonomy: Taxonomy,
    seen: set[str],
    have: dict[str, int],
    request_seed: bool,
    seed: int,
    summary: ComplementSummary,
    bar: Any,
) -> Counter:
    """One round: every request at once (bounded by the client's concurrency); returns new texts per class."""
    config = client.config
    added: Counter = Counter()

    async def handle(request: tuple[str, int, list[_Shot]], put: Callable[[dict[str, Any]], None]) -> None:
        label, draw, shots = request
        prompt = complement_prompt(label, [s.text for s in shots])
        reply: JudgeReply = await client.complete(prompt, seed=_draw(seed, label, draw) if request_seed else None)
        stop_if_fatal(reply)
        summary.requested += 1
        bar.update(1)
        if not reply.ok:
            summary.failed += 1
            summary.errors[reply.error] += 1
            return
        summary.cached += reply.cached
        text = clean_description(reply.text or "")
        key = dedupe_key(text)
        if not key or key in seen:
            summary.duplicates += 1
            return
        seen.add(key)
        have[label] += 1
        added[label] += 1
        summary.generated += 1
        put(
            {
                "id": f"complement:{label}:{draw:06d}",
                "text": text,
                "labels": [label],
                "raw": reply.text,
                "error": None,
                "judge": config.model,
                "dataset": taxonomy.name,
                "draw": draw,
                "shots": [s.ref for s in shots],
                "cached": reply.cached,
            }
        )

    await job.run(requests, handle, concurrency=len(requests) or 1)  # the client bounds what is in flight
    return added


def run_complement(
    data: Sequence[PathLike],
    dataset: str | Taxonomy,
    out: PathLike,
    config: JudgeConfig,
    *,
    classes: Sequence[str] | None = None,
    target: int = 1000,
    seed: int = 0,
    request_seed: bool = True,
    max_rounds: int = 10,
    data_format: str = "auto",
    drop_unknown_labels: bool = False,
    progress: bool | None = None,
) -> ComplementSummary:
    """Generate descriptions of rare classes into `out` until each class has `target` examples.

    A class's count is its examples in `data` (a multi-label example counts for each of its
    labels) plus the descriptions already in `out`. Each request shows two examples of the class
    drawn from `data` with a generator seeded by `(seed, class, draw number)`, and, unless
    `request_seed=False`, sends a sampling seed derived from the same triple, so every request is
    distinct (and cacheable). Draw numbers continue across runs (:func:`draws_file` keeps them),
    so a re-run never repeats a request. A round asks for exactly the
    missing number per class; replies that duplicate a known text are dropped, and the next
    round asks again, until the targets are met, two rounds in a row bring a class nothing new
    (it is reported as stalled) or `max_rounds` rounds have run.
    """

    from erv.verifier.data import ImportReport, load_many

    taxonomy = get_taxonomy(dataset)
    if int(target) < 1:
        raise ConfigError(f"--target must be at least 1, got {target}")
    if int(max_rounds) < 1:
        raise ConfigError(f"--max-rounds must be at least 1, got {max_rounds}")
    if config.temperature is not None and float(config.temperature) <= 0:
        raise ConfigError(
            f"complement generation samples descriptions: --temperature must be above 0 "
            f"(got {config.temperature}); the judge's default of 0 would repeat itself"
        )
    if not request_seed and config.cache is not None:
        raise ConfigError(
            "without per-request seeds equal prompts are equal requests, and a reply cache would replay "
            "one sample for all of them: pass --no-cache with --no-request-seed"
        )
    if not data:
        raise ConfigError("--data: no training data given")
    out = check_output_file(out, inputs=data)
    check_output_file(draws_file(out), "the draw counters", inputs=data)
    if config.cache is not None:
        check_output_file(config.cache, "--cache", inputs=[*data, out])
    labels = resolve_classes(classes, taxonomy)
    if not labels:
        raise ConfigError(
            f"no class to complement: none of {', '.join(PAPER_RARE_CLASSES)} is {taxonomy.a_label}; "
            f"name them with --classes"
        )
    examples = load_many(data, taxonomy, drop_unknown=drop_unknown_labels, report=ImportReport(), fmt=data_format)
    pools = _shot_pools(examples, labels)
    data_counts = Counter(label for ex in examples for label in ex.labels)
    summary = ComplementSummary(target=int(target), data_counts={label: data_counts.get(label, 0) for label in labels})
    if any(data_counts.get(label, 0) < int(target) for label in labels):
        read_api_key(config.api_key_env)  # before the output folder, the lock or the cache is created

    job = ResumableJob(
        out,
        "erv verifier augment complement",
        load=lambda: _load_generated(out, taxonomy, config.model),
        arrange=lambda records: _sort_generated(records, taxonomy),
    )
    with job:
        generated = list(job.existing.values())
        have = {label: data_counts.get(label, 0) for label in labels}
        draws_path = draws_file(out)
        used = _read_draws(draws_path)
        next_draw = {label: int(used.get(label, 0)) for label in labels}
        for record in generated:
            label = record["labels"][0]
            if label in have:
                have[label] += 1
                next_draw[label] = max(next_draw[label], record["draw"] + 1)
        summary.before = dict(have)
        need = {label: int(target) - n for label, n in have.items() if n < int(target)}
        thin = [f"{label} ({len(pools[label])})" for label in need if len(pools[label]) < 2]
        if thin:
            raise ConfigError(
                f"two-shot generation needs at least two distinct example texts of a class in --data; "
                f"too few for: {', '.join(thin)}"
            )
        seen = {dedupe_key(ex.text) for ex in examples} | {dedupe_key(r["text"]) for r in generated}
        client = JudgeClient(config) if need else None
        try:
            if client is not None:
                bar = progress_bar(sum(need.values()), f"complement {config.model}", "req", progress)
                try:
                    run_sync(
                        lambda: _complement_rounds(
                            job,
                            need,
                            pools,
                            next_draw,
                            client,
                            taxonomy,
                            seen,
                            have,
                            int(target),
                            request_seed,
                            seed,
                            int(max_rounds),
                            summary,
                            bar,
                            lambda: _write_draws(draws_path, used, next_draw),
                        )
                    )
                finally:
                    bar.close()
                    _write_draws(draws_path, used, next_draw)
                summary.requests = client.requests_sent
        finally:
            if client is not None:
                client.close()
    final = job.final
    after = {label: data_counts.get(label, 0) for label in labels}
    for record in final:
        if record["labels"][0] in after:
            after[record["labels"][0]] += 1
    summary.after = after
    return summary


async def _complement_rounds(
    job: ResumableJob,
    need: dict[str, int],
    pools: dict[str, list[_Shot]],
    next_draw: dict[str, int],
    client: JudgeClient,
    taxonomy: Taxonomy,
    seen: set[str],
    have: dict[str, int],
    target: int,
    request_seed: bool,
    seed: int,
    max_rounds: int,
    summary: ComplementSummary,
    bar: Any,
    save_draws: Any,
) -> None:
    active = dict(need)
    idle_rounds: Counter = Counter()  # consecutive rounds without a new text, per class
    try:
        while active and summary.rounds < max_rounds:
            summary.rounds += 1
            requests: list[tuple[str, int, list[_Shot]]] = []
            for label, missing in active.items():
                for _ in range(missing):
                    draw = next_draw[label]
                    next_draw[label] += 1
                    rng = random.Random(_draw(seed, label, draw))
                    requests.append((label, draw, rng.sample(pools[label], 2)))
            if summary.rounds > 1:
                bar.total = (bar.total or 0) + len(requests)
                bar.refresh()
            await asyncio.to_thread(save_draws)  # before sending: a killed run never reuses these draws
            added = await _complement_round(
                job, requests, client, taxonomy, seen, have, request_seed, seed, summary, bar
            )
            still: dict[str, int] = {}
            for label in active:
                if have[label] >= target:
                    continue
                idle_rounds[label] = 0 if added[label] else idle_rounds[label] + 1
                if idle_rounds[label] >= STALL_ROUNDS:
                    summary.stalled.append(label)
                    continue
                still[label] = target - have[label]
            active = still
    finally:
        await client.aclose()
