"""One inference run over a record file, alone or as one rank of a `torchrun` launch.

1. Rank 0 locks the output, refuses it if its header or records name another run (unless
   `--overwrite`), folds what earlier runs left into `P.jsonl` (:mod:`erv.inference.store`),
   writes the header, and plans the clips still to do: those never predicted, those that
   failed before (retried) and those whose input record changed. They are sorted by prompt
   length, longest first, so batches hold prompts of similar length and little padding, and
   dealt round-robin so every rank gets a similar share.
2. Every rank predicts its share in batches, appending each batch's records to its shard.
3. Rank 0 folds the shards into `P.jsonl` (input order, one record per clip) and counts.

Killed at any point, the same command resumes: finished records are whole lines in a shard
or in `P.jsonl`, and the next run's step 1 collects them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, ErvError
from erv.inference.distributed import Ranks
from erv.inference.engine import InferenceEngine
from erv.inference.identity import check_header, read_header, write_header
from erv.inference.inputs import InferenceItem
from erv.inference.store import PredictionStore, error_record, prediction_record, shard_path
from erv.io.identity import succeeded
from erv.io.jobs import ResumableJob, progress_bar
from erv.io.jsonl import PathLike, exclusive_output
from erv.model import make_dataloader

MAX_LISTED_FAILURES = 10


@dataclass
class InferenceSummary:
    """Counts of a run over all ranks; `done + failed + skipped == total`."""

    total: int = 0
    done: int = 0
    """Predicted in this run."""
    failed: int = 0
    """Recorded with an error in this run (missing, corrupt or audio-less video, ...)."""
    skipped: int = 0
    """Predicted by an earlier run of the same output."""
    redone: int = 0
    """Predicted again because the input record changed since the earlier prediction."""
    audio_zero_filled: int = 0
    """Predicted with silence for a video without audio (`--on-missing-audio zeros`; marked in the record)."""
    tokens: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return f"done {self.done} / skipped {self.skipped} / failed {self.failed}"

    def throughput(self) -> str:
        rate = (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.done + self.failed} samples in {self.seconds:.1f} s ({rate:.2f} samples/s, {self.tokens} tokens)"
        )


def _plan(
    store: PredictionStore,
    engine: InferenceEngine,
    header: dict[str, Any],
    selected: Sequence[InferenceItem],
    overwrite: bool,
) -> dict[str, Any]:
    """Rank 0, output locked: check, collect, plan (module doc, step 1)."""
    if overwrite:
        store.remove_all()
    existing = None if overwrite else read_header(store.out)
    check_header(store.out, existing, header)
    records = store.merge()
    write_header(store.out, existing or header)
    pending = [item for item in selected if not (item.id in records and succeeded(records[item.id]))]
    order = sorted(pending, key=lambda item: (-engine.prompt_length(item.record), item.index))
    return {
        "order": [item.index for item in order],
        "skipped": len(selected) - len(pending),
        "redone": len(store.changed & {item.id for item in selected}),
    }


def _predict(
    engine: InferenceEngine,
    job: ResumableJob,
    mine: Sequence[InferenceItem],
    run: str,
    *,
    batch_size: int,
    num_workers: int,
    video_root: PathLike | None,
    bar: Any,
    counts: InferenceSummary,
) -> None:
    by_id = {item.id: item for item in mine}
    dataset = engine.dataset([dict(item.record, id=item.id) for item in mine], video_root=video_root)
    for batch in make_dataloader(dataset, batch_size=batch_size, num_workers=num_workers):
        records = []
        for skipped in batch["skipped"]:
            reason = skipped["reason"] or "unreadable"
            records.append(error_record(by_id[skipped["id"]], run, reason))
            counts.failed += 1
            if len(counts.failures) < MAX_LISTED_FAILURES:
                counts.failures.append((skipped["id"], reason))
        kept = list(batch["ids"])
        if kept:
            silent = batch["audio_missing"].tolist() if "audio_missing" in batch else [False] * len(kept)
            for sample_id, samples, zeros in zip(kept, engine.generate(batch), silent, strict=True):
                records.append(prediction_record(by_id[sample_id], run, samples, audio_missing=bool(zeros)))
                counts.done += 1
                counts.audio_zero_filled += int(bool(zeros))
        job.write(records)
        bar.update(len(records))
        if counts.failed:
            bar.set_postfix(failed=counts.failed, refresh=False)
    counts.tokens = engine.tokens


def check_run_options(*, batch_size: int, limit: int | None) -> None:
    """Bounds of the run options; `erv infer` checks them before loading the model."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")


def run_inference(
    engine: InferenceEngine,
    items: Sequence[InferenceItem],
    out: PathLike,
    header: dict[str, Any],
    *,
    data: PathLike,
    limit: int | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    video_root: PathLike | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    ranks: Ranks | None = None,
) -> InferenceSummary | None:
    """Predict `items` (the first `limit`) into `out` (module doc); the summary on rank 0, None elsewhere."""
    ranks = ranks or Ranks()
    check_run_options(batch_size=batch_size, limit=limit)
    start = time.perf_counter()
    out = Path(out)
    selected = list(items[:limit] if limit is not None else items)
    store = PredictionStore(out, items, header["run"], data=data)
    with contextlib.ExitStack() as lock:
        plan: dict[str, Any] | None = None
        failure: ErvError | None = None
        if ranks.is_main:
            try:
                lock.enter_context(exclusive_output(out, "erv infer"))
                plan = _plan(store, engine, header, selected, overwrite)
            except ErvError as exc:
                failure, plan = exc, {"error": str(exc)}
        plan = ranks.broadcast(plan)
        if failure is not None:
            raise failure
        if "error" in plan:
            raise SystemExit(2)  # rank 0 reports it; one line, not one per rank

        mine = [items[i] for i in plan["order"][ranks.rank :: ranks.world_size]]
        counts = InferenceSummary()
        shard = shard_path(out, ranks.rank)
        job = ResumableJob(shard, "erv infer", load=lambda: store.load([shard]).values(), arrange=store.arrange)
        desc = "erv infer" if ranks.world_size == 1 else f"erv infer (rank 0 of {ranks.world_size})"
        bar = progress_bar(len(mine), desc, "sample", progress if ranks.is_main else False)
        try:
            with job:
                if mine:
                    _predict(
                        engine,
                        job,
                        mine,
                        header["run"],
                        batch_size=batch_size,
                        num_workers=num_workers,
                        video_root=video_root,
                        bar=bar,
                        counts=counts,
                    )
        finally:
            bar.close()
        everyone = ranks.gather(counts)
        if not ranks.is_main:
            return None
        store.merge()
    summary = InferenceSummary(total=len(selected), skipped=plan["skipped"], redone=plan["redone"])
    for part in everyone:
        summary.done += part.done
        summary.failed += part.failed
        summary.audio_zero_filled += part.audio_zero_filled
        summary.tokens += part.tokens
        summary.failures.extend(part.failures)
    summary.failures = summary.failures[:MAX_LISTED_FAILURES]
    summary.seconds = time.perf_counter() - start
    return summary
