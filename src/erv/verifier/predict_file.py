"""`erv verifier predict`: label sets and probabilities for every text of a file, resumably.

Built on :class:`erv.io.jobs.ResumableJob` (lock, compaction, one record per text in input
order, crash-safe appends). What makes a resumed record trustworthy:

- *Tied to its text.* A text's unit is its `id`, else its position (`#7`, the 7th text), never
  the path it was read by, so the same file named by a relative and an absolute path is one
  input. Each record stores `input_hash` (its text): a unit whose text changed is scored again
  (`on_changed="redo"`) or refused (`"refuse"`). A text already scored under another unit
  (a line inserted above it shifts its position) is copied, not scored again.
- *Tied to its producer.* Each record stores `producer_hash`: the verifier's files (their
  config, names, sizes and times) and the decision settings (taxonomy, columns, threshold,
  top k, at least one). Resuming with another model or settings is refused: one file never
  holds two verifiers' labels. `overwrite=True` starts over.
- Records of ids no longer in the input are dropped when the file is compacted (counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, RecordError
from erv.io.identity import INPUT_HASH_KEY, content_hash, folder_fingerprint, keep_record
from erv.io.jobs import ResumableJob, progress_bar, resumed_records
from erv.io.jsonl import PathLike
from erv.verifier.data import iter_texts

PRODUCER_KEY = "producer_hash"


@dataclass(frozen=True)
class TextRow:
    id: str
    text: str
    where: str


@dataclass
class PredictSummary:
    total: int = 0
    scored: int = 0
    copied: int = 0
    """Texts already scored under another id (identical text): copied, not scored again."""
    skipped: int = 0
    changed: int = 0
    """Ids whose text changed since they were scored: scored again (counted in scored/copied too)."""
    dropped: int = 0
    """Records of ids no longer in the input, removed from the output."""

    def line(self) -> str:
        return (
            f"erv verifier predict: done: {self.scored} texts scored, {self.copied} copied (same text), "
            f"{self.skipped} already in the output (skipped), 0 failed"
            + (f"; {self.changed} scored again (text changed)" if self.changed else "")
            + (f"; {self.dropped} records of ids no longer in the input dropped" if self.dropped else "")
        )


def read_rows(path: PathLike, text_key: str = "text") -> list[TextRow]:
    """The texts of `path` with their units: the record's `id`, else `#position` (1-based)."""
    rows = []
    seen: dict[str, str] = {}
    for position, (where, rid, text) in enumerate(iter_texts(path, text_key=text_key), start=1):
        unit = rid if rid is not None else f"#{position}"
        if unit in seen:
            raise RecordError(f"{where}: duplicate id {unit!r} (first at {seen[unit]}); results could not be matched")
        seen[unit] = where
        rows.append(TextRow(unit, text, where))
    if not rows:
        raise RecordError(f"{path}: no text to score")
    return rows


def _check_record(where: str, record: dict[str, Any], producer: str) -> None:
    if not isinstance(record.get("id"), str) or not {"labels", "probs"} <= record.keys():
        raise ConfigError(
            f"{where}: not a record of `erv verifier predict` (id, text, labels, probs); use another --out"
        )
    if record.get(PRODUCER_KEY) != producer:
        raise ConfigError(
            f"{where}: written by another verifier or with other settings (--model, --taxonomy, --threshold, "
            f"--top_k, --at_least_one, --head_layout) than this run's; two verifiers' labels must not be mixed in "
            f"one file: use another --out, or --overwrite to start over"
        )


def predict_file(
    verifier: Any,
    rows: Sequence[TextRow],
    out: PathLike,
    *,
    model_location: str,
    taxonomy: Any = None,
    threshold: float = 0.5,
    top_k: int | None = None,
    at_least_one: bool = False,
    chunk_size: int = 4096,
    on_changed: str = "redo",
    overwrite: bool = False,
    progress: bool | None = None,
) -> PredictSummary:
    """Score `rows` into `out` (resuming it, or starting over with `overwrite`); see the module doc."""
    from erv.verifier.predict import select_label_sets

    out = Path(out)
    columns = verifier.columns(taxonomy)
    producer = content_hash(
        folder_fingerprint(model_location),
        verifier.resolve_taxonomy(taxonomy).name,
        sorted(columns.items()),
        verifier.layout.kind,
        float(threshold),
        top_k,
        bool(at_least_one),
    )
    order = {row.id: i for i, row in enumerate(rows)}
    expected = {row.id: content_hash(row.text) for row in rows}
    summary = PredictSummary(total=len(rows))
    start_over = [overwrite]  # the first load, under the lock, discards what is there

    def load() -> list[dict[str, Any]]:
        chosen: dict[str, dict[str, Any]] = {}
        if start_over[0]:
            start_over[0] = False
            return []
        for where, record in resumed_records(out):
            _check_record(where, record, producer)
            keep_record(chosen, record["id"], record, expected.get(record["id"]))
        return list(chosen.values())

    def arrange(records: Any) -> list[dict[str, Any]]:
        kept = [r for r in records if r["id"] in order]
        summary.dropped = max(summary.dropped, sum(1 for r in records if r["id"] not in order))
        return sorted(kept, key=lambda r: order[r["id"]])

    def record_for(row: TextRow, labels: list[str], probs: dict[str, float]) -> dict[str, Any]:
        return {
            "id": row.id,
            "text": row.text,
            "labels": labels,
            "probs": probs,
            INPUT_HASH_KEY: expected[row.id],
            "verifier": verifier.name,
            PRODUCER_KEY: producer,
        }

    job = ResumableJob(
        out, "erv verifier predict", load=load, arrange=arrange, on_changed=on_changed, changed_what="text"
    )
    with job:
        todo = job.pending(rows, lambda row: row.id, lambda row: expected[row.id])
        summary.skipped, summary.changed = job.skipped, job.changed
        known = {r.get(INPUT_HASH_KEY): r for r in job.existing.values() if r.get(INPUT_HASH_KEY)}
        copies = [row for row in todo if expected[row.id] in known]
        if copies:
            job.write(
                [
                    record_for(row, known[expected[row.id]]["labels"], known[expected[row.id]]["probs"])
                    for row in copies
                ]
            )
            summary.copied = len(copies)
        to_score = [row for row in todo if expected[row.id] not in known]
        bar = progress_bar(len(to_score), "verifier predict", "text", progress)
        try:
            step = max(int(chunk_size), 1)
            for start in range(0, len(to_score), step):
                chunk = to_score[start : start + step]
                probs = verifier.predict_proba([row.text for row in chunk])
                selected = select_label_sets(probs, threshold, top_k, at_least_one)
                job.write(
                    [
                        record_for(
                            row,
                            [label for label, col in columns.items() if sel[col]],
                            {label: round(p[col], 6) for label, col in columns.items()},
                        )
                        for row, p, sel in zip(chunk, probs.tolist(), selected.tolist(), strict=True)
                    ]
                )
                summary.scored += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
    return summary
