"""GRPO training data: records -> prompt rows, and media decoded once per distinct prompt per round.

TRL's `RepeatSampler` yields each prompt index G times in a row (its group) and the whole
generation batch `steps_per_generation × num_iterations` times (the trainer generates on the
first pass and replays its buffer on the others). A dataset that decoded media in
`__getitem__` would decode each clip G × steps_per_generation × num_iterations times per round.
Here:

* :class:`RoundSampler` yields TRL's indices unchanged, each tagged with whether it belongs
  to the first pass of its round (`fresh`); replays carry no media;
* :class:`RolloutCollator`, which runs in the DataLoader workers, decodes each distinct fresh
  prompt of a batch once and attaches the sample to its first row.

Rows keep TRL's layout: a `prompt` (the instruction text), the reward columns (`solution`,
`dataset`, `id`, `video`) and two private keys the trainer removes before TRL sees the rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import Dataset
from trl.trainer.utils import RepeatSampler

from erv.data.emotions import get_taxonomy
from erv.data.records import record_id, validate_grpo_record
from erv.errors import MediaError, RecordError
from erv.model.dataset import record_instruction, resolve_media_path
from erv.train.data import TrainingRecords, read_training_records

INDEX_KEY = "_erv_index"
"""Dataset row index of a rollout row: identifies its prompt (its group) within a round."""
MEDIA_KEY = "_erv_media"
"""The decoded `MediaSample` on the first fresh row of each distinct prompt of a batch."""


def grpo_rows(
    data: TrainingRecords,
    kept: Sequence[int] | None = None,
    *,
    video_root: str | os.PathLike[str] | None = None,
    taxonomy: str | None = None,
) -> list[dict[str, Any]]:
    """Prompt rows of validated GRPO records (`erv data prepare --format grpo`), one per kept record.

    The gold label is checked against the record's `dataset` (else `taxonomy`) and stored
    canonical in `solution`; the instruction is the human turn without its `<video>`/`<audio>`
    tags; relative video paths resolve against `video_root`.
    """
    rows: list[dict[str, Any]] = []
    for index in range(len(data.records)) if kept is None else kept:
        record, name = data.records[index], data.name(index)
        dataset = record.get("dataset") or taxonomy
        if dataset is None:
            raise RecordError(
                f"{name}: no 'dataset' in the record and no `taxonomy` in the recipe: the answer "
                f"reward cannot know the label set"
            )
        dataset = get_taxonomy(dataset).name
        label = validate_grpo_record(record, name, dataset)
        rows.append(
            {
                "id": record_id(record),
                "video": resolve_media_path(record["video"], video_root),
                "prompt": record_instruction(record, where=name),
                "solution": label,
                "dataset": dataset,
            }
        )
    return rows


def load_grpo_rows(
    path: str | os.PathLike[str], *, video_root: str | os.PathLike[str] | None = None, taxonomy: str | None = None
) -> list[dict[str, Any]]:
    """`grpo_rows` of a whole record file (no media check; `erv grpo` runs one first)."""
    return grpo_rows(read_training_records(path, with_answers=True), video_root=video_root, taxonomy=taxonomy)


class RoundSampler(RepeatSampler):
    """TRL's `RepeatSampler` order, each index tagged `(index, fresh)` (module doc)."""

    def __iter__(self) -> Iterator[tuple[int, bool]]:  # type: ignore[override]
        per_pass = self.batch_size * self.mini_repeat_count
        per_round = per_pass * self.repeat_count
        for position, index in enumerate(super().__iter__()):
            yield index, position % per_round < per_pass


class RolloutDataset(Dataset):
    """Rows of an HF `datasets.Dataset` fetched by `(index, fresh)` keys (no decoding here)."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, bool]) -> dict[str, Any]:
        index, fresh = key if isinstance(key, tuple) else (key, True)
        row = dict(self.rows[int(index)])
        row[INDEX_KEY] = int(index)
        row[MEDIA_KEY] = fresh  # replaced by the decoded sample (or None) in the collator
        return row


class RolloutCollator:
    """Decodes each distinct fresh prompt of a batch once (in the DataLoader worker)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        decoded: set[int] = set()
        out = []
        for row in rows:
            row = dict(row)
            fresh, row[MEDIA_KEY] = row.get(MEDIA_KEY), None
            if fresh and row[INDEX_KEY] not in decoded:
                decoded.add(row[INDEX_KEY])
                row[MEDIA_KEY] = load_rollout_media(self.processor, row)
            out.append(row)
        return out


def load_rollout_media(processor: Any, row: dict[str, Any]) -> Any:
    """The clip of one row, with the processor's media settings (the reference trains on frames
    padded to square: `aspect_ratio: pad`)."""
    try:
        sample = processor.load_media(row["video"], None, modal="video_audio")
    except MediaError as exc:
        raise MediaError(f"sample {row.get('id')!r}: {exc}") from exc
    if sample is None:
        raise MediaError(
            f"sample {row.get('id')!r}: {row['video']} has no audio track and the media policy skips "
            f"such clips; check the training set before training (erv grpo does)"
        )
    return sample
