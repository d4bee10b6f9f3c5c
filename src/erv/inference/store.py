"""The files of one output: `P.jsonl`, its per-rank shards while a run is going, and their records.

Each rank appends the records it completes to its own shard, `P.shards/rank-NNNNN.jsonl`
(through :class:`erv.io.jobs.ResumableJob`: whole fsynced lines, torn tail dropped, compacted
at the end), so no two processes ever write one file. Rank 0 folds every shard into `P.jsonl`
when a run starts (what a killed run left, whatever its number of processes) and when it ends,
in input order, one record per clip, and removes the shards.

Reading validates every record: it must belong to an input clip and to this run (`run` id,
:mod:`erv.inference.identity`); a record made from a different version of its input record
(`input` hash) is dropped so the clip is predicted again. Per clip the first success is kept,
else the last failure, so failures are retried by the next run and successes never duplicated.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erv.errors import ConfigError
from erv.inference.inputs import InferenceItem
from erv.io.identity import keep_record
from erv.io.jobs import resumed_records
from erv.io.jsonl import PathLike, write_jsonl

Record = dict[str, Any]


@dataclass(frozen=True)
class Generated:
    """One generated response, why it ended ("stop": an end token; "length": max_new_tokens) and
    its token ids (up to, not including, the end token; not stored)."""

    text: str
    finish_reason: str
    token_ids: tuple[int, ...] = ()


def _base(item: InferenceItem) -> Record:
    return {"id": item.id, "video": item.video, "dataset": item.dataset, "gold": item.gold}


def prediction_record(
    item: InferenceItem, run: str, samples: Sequence[Generated], *, audio_missing: bool = False
) -> Record:
    """The prediction of a clip; with several samples, `response` is the first and `samples` all of them."""
    record = _base(item)
    record.update(response=samples[0].text, error=None, finish_reason=samples[0].finish_reason)
    if len(samples) > 1:
        record["samples"] = [s.text for s in samples]
        record["finish_reasons"] = [s.finish_reason for s in samples]
    if audio_missing:
        record["audio_missing"] = True
    record.update(input=item.input_hash, run=run)
    return record


def error_record(item: InferenceItem, run: str, reason: str) -> Record:
    """A clip that could not be predicted: no response, the reason in `error`."""
    record = _base(item)
    record.update(response=None, error=reason or "unknown error", input=item.input_hash, run=run)
    return record


def shard_dir(out: PathLike) -> Path:
    out = Path(out)
    return out.with_suffix(".shards") if out.suffix == ".jsonl" else out.with_name(out.name + ".shards")


def shard_path(out: PathLike, rank: int) -> Path:
    return shard_dir(out) / f"rank-{rank:05d}.jsonl"


class PredictionStore:
    """Reads, validates, orders and merges the records of one output (module doc)."""

    def __init__(self, out: PathLike, items: Sequence[InferenceItem], run: str, *, data: PathLike) -> None:
        self.out = Path(out)
        self.run = run
        self.data = str(data)
        self.items = {item.id: item for item in items}
        self.changed: set[str] = set()

    def files(self) -> list[Path]:
        shards = sorted(shard_dir(self.out).glob("rank-*.jsonl")) if shard_dir(self.out).is_dir() else []
        return [self.out, *shards]

    def load(self, paths: Iterable[Path] | None = None) -> dict[str, Record]:
        """Valid records of `paths` (default: the output and every shard), one per clip."""
        chosen: dict[str, Record] = {}
        for path in self.files() if paths is None else paths:
            for where, record in resumed_records(path):
                sample_id = str(record.get("id"))
                item = self.items.get(sample_id)
                if item is None:
                    raise ConfigError(
                        f"{where}: sample {sample_id!r} is not in {self.data}; is {self.out} the output of another "
                        f"record file? Use another --out, or --overwrite"
                    )
                if record.get("run") != self.run:
                    raise ConfigError(
                        f"{where}: written by another checkpoint or other generation settings (run "
                        f"{record.get('run')!r} in the file, {self.run!r} now); use another --out, or --overwrite"
                    )
                if record.get("input") != item.input_hash:
                    self.changed.add(sample_id)  # the input record changed since: predict it again
                    continue
                keep_record(chosen, sample_id, record, None)  # records of a changed input were left out above
        return chosen

    def arrange(self, records: Iterable[Record]) -> list[Record]:
        return sorted(records, key=lambda r: self.items[str(r["id"])].index)

    def merge(self) -> dict[str, Record]:
        """Fold the shards into the output (input order, one record per clip) and remove them."""
        records = self.load()
        if records or self.out.exists():
            write_jsonl(self.out, self.arrange(records.values()))
        self.remove_shards()
        return records

    def remove_shards(self) -> None:
        folder = shard_dir(self.out)
        if folder.is_dir():
            shutil.rmtree(folder)

    def remove_all(self) -> None:
        """--overwrite: the output and its shards go (the header is rewritten by the caller)."""
        self.remove_shards()
        if self.out.exists():
            self.out.unlink()
