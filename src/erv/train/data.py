"""Training records and media: validation, a media pre-check, and the training dataset/collator.

Why a pre-check: a missing or corrupt clip found by a DataLoader worker hours into a run
either kills it (the reference) or is silently replaced; and a skipped sample that empties a
micro-batch would desynchronise distributed ranks. So before anything is loaded onto a GPU,
every record's media is probed (container opened and demuxed, nothing decoded;
`check_media`): under `on_media_error: error` the run stops naming the file, under `skip`
the record is left out, counted, logged and listed in `output_dir/skipped_media.jsonl`.

What the probe cannot see (a clip that demuxes but fails to decode) is handled in the
workers by :class:`TrainingDataset`: under `skip` the item is replaced by the next loadable
record (batch shapes and step counts stay equal on every rank) and reported through the
batch's `skipped` entry; under `error` the worker raises the MediaError naming the record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, MediaError, RecordError
from erv.io.jsonl import iter_json_records
from erv.media import MediaFile
from erv.media.video import frame_folder_files
from erv.model.constants import AUDIO_PLACEHOLDER, VIDEO_PLACEHOLDER
from erv.model.dataset import (
    HumanOmniCollator,
    HumanOmniDataset,
    record_answer,
    record_instruction,
    resolve_media_path,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- records
@dataclass
class TrainingRecords:
    """Records of one file with where each came from (`file:line` or `file[index]`)."""

    source: str
    records: list[dict[str, Any]]
    locations: list[str]

    def name(self, index: int) -> str:
        rec = self.records[index]
        rid = rec.get("id")
        return self.locations[index] + (f" (id {rid})" if rid is not None else "")


def read_training_records(
    path: str | os.PathLike[str] | None,
    *,
    with_answers: bool,
    instruction: str | None = None,
    needs_video: bool = True,
) -> TrainingRecords:
    """Read and validate a record file; every problem is a RecordError naming the record.

    With `with_answers` (SFT) each record needs an assistant answer (`answer`, `solution` or a
    gpt turn) that is not empty: a record without one would train the model to end its turn.
    """
    if not path:
        raise ConfigError("no dataset_name: set it in the recipe or pass --dataset_name FILE")
    if not Path(path).is_file():
        raise ConfigError(f"dataset_name {path} does not exist")
    records, locations = [], []
    for where, record in iter_json_records(path):
        records.append(record)
        locations.append(where)
    if not records:
        raise RecordError(f"{path}: file holds no records")
    out = TrainingRecords(str(path), records, locations)
    seen: dict[str, str] = {}
    for i, rec in enumerate(records):
        name = out.name(i)
        if needs_video and not isinstance(rec.get("video"), str):
            raise RecordError(f"{name}: no 'video' path")
        record_instruction(rec, instruction, where=name)
        if with_answers:
            answer = record_answer(rec, where=name)
            if not answer.strip():
                raise RecordError(f"{name}: the assistant answer is empty")
        rid = rec.get("id")
        if rid is not None:
            if str(rid) in seen:
                raise RecordError(f"{name}: id {rid!r} also at {seen[str(rid)]}")
            seen[str(rid)] = locations[i]
    return out


# ---------------------------------------------------------------- media pre-check
@dataclass
class MediaIssue:
    """One record whose media cannot be used as the policy requires."""

    index: int
    record: str  # where the record is (file:line (id ...))
    path: str
    kind: str  # "video" (missing/corrupt/no video stream) or "audio" (no audio track)
    reason: str


def _probe(video: str | None, audio: str | None, needs_video: bool, needs_audio: bool) -> tuple[str, str] | None:
    """(kind, reason) of the first problem of one record's media, or None."""
    try:
        if needs_video:
            if video is None:
                return "video", "no video path"
            if Path(video).is_dir():
                frame_folder_files(Path(video))  # the decoder's own rule: images only, at least one
                if needs_audio and audio is None:
                    return "audio", f"{video}: a frame folder has no audio track"
            else:
                with MediaFile(video, video=True, audio=needs_audio and audio is None) as media:
                    if media.video_stream is None:
                        return "video", f"{video}: no video stream"
                    if needs_audio and audio is None and media.audio_stream is None:
                        return "audio", f"{video}: no audio track"
        if needs_audio and audio is not None:
            with MediaFile(audio, video=False, audio=True) as media:
                if media.audio_stream is None:
                    return "audio", f"{audio}: no audio track"
    except MediaError as exc:
        return ("audio" if audio is not None and not needs_video else "video"), str(exc)
    return None


def check_media(
    data: TrainingRecords,
    *,
    video_root: str | os.PathLike[str] | None = None,
    modal: str = "video_audio",
) -> list[MediaIssue]:
    """Probe every record's media (open + demux, no decoding); the issues found, in record order."""
    needs_video = modal in ("video_audio", "video")
    needs_audio = modal in ("video_audio", "audio")
    jobs = [
        (
            resolve_media_path(rec.get("video"), video_root),
            resolve_media_path(rec.get("audio"), video_root),
        )
        for rec in data.records
    ]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _probe(job[0], job[1], needs_video, needs_audio), jobs))
    issues = []
    for i, (result, (video, audio)) in enumerate(zip(results, jobs, strict=True)):
        if result is not None:
            kind, reason = result
            issues.append(
                MediaIssue(i, data.name(i), str(audio if kind == "audio" and audio else video), kind, reason)
            )
    return issues


@dataclass
class MediaReport:
    """What the media policy did: records left out before training, clips zero-filled, run-time skips."""

    skipped: list[MediaIssue] | None = None  # left out by the pre-check
    zero_filled_audio: int = 0  # no audio track, trained on the reference's silent substitute
    runtime_skipped: dict[str, str] | None = None  # sample id -> reason, replaced in a worker

    def __post_init__(self) -> None:
        self.skipped = list(self.skipped or [])
        self.runtime_skipped = dict(self.runtime_skipped or {})

    @property
    def num_skipped(self) -> int:
        return len(self.skipped) + len(self.runtime_skipped)

    def rows(self) -> list[dict[str, Any]]:
        rows = [dict(asdict(issue), stage="pre-check") for issue in self.skipped]
        rows += [{"id": sid, "reason": why, "stage": "training"} for sid, why in self.runtime_skipped.items()]
        return rows


def apply_media_policy(
    data: TrainingRecords,
    issues: Sequence[MediaIssue],
    *,
    on_media_error: str,
    on_missing_audio: str,
) -> tuple[list[int], MediaReport]:
    """Indices of the records to train on and the report; raise MediaError where the policy says error."""
    report = MediaReport()
    for kind, policy in (("video", on_media_error), ("audio", on_missing_audio)):
        bad = [i for i in issues if i.kind == kind]
        if bad and policy == "error":
            more = f" (and {len(bad) - 1} more records)" if len(bad) > 1 else ""
            option = "on_media_error: skip" if kind == "video" else "on_missing_audio: skip or zeros"
            raise MediaError(f"{bad[0].record}: {bad[0].reason}{more}; set {option} to train without them")
    left_out = set()
    for issue in issues:
        policy = on_media_error if issue.kind == "video" else on_missing_audio
        if policy == "skip":
            report.skipped.append(issue)
            left_out.add(issue.index)
        elif issue.kind == "audio":  # zeros
            report.zero_filled_audio += 1
    for issue in report.skipped[:20]:
        logger.warning("skipping %s: %s", issue.record, issue.reason)
    if len(report.skipped) > 20:
        logger.warning("... and %d more records skipped for their media", len(report.skipped) - 20)
    if report.zero_filled_audio:
        logger.warning(
            "%d records have no audio track and train on silent (zero) audio (on_missing_audio: zeros)",
            report.zero_filled_audio,
        )
    kept = [i for i in range(len(data.records)) if i not in left_out]
    if not kept:
        raise MediaError(
            f"{data.source}: no record has usable media ({len(issues)} problems, e.g. {issues[0].reason})"
        )
    return kept, report


# ---------------------------------------------------------------- dataset and collator
class TrainingDataset(HumanOmniDataset):
    """`HumanOmniDataset` over the kept records, with truncation to `max_length` and in-worker skips.

    `max_length` counts the sequence the LLM sees: text tokens plus the video and audio tokens
    each placeholder expands into. Longer examples lose the end of their answer (as the
    reference's tokenizer truncation does) and are counted in `truncated` at construction.
    """

    def __init__(
        self,
        data: TrainingRecords,
        processor: Any,
        *,
        indices: Sequence[int] | None = None,
        max_length: int | None = None,
        expansion: dict[int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.data = data  # before the base class validates records through _where
        super().__init__(data.records, processor, **kwargs)
        self.source = data.source
        self.indices = list(range(len(data.records)) if indices is None else indices)
        self.max_length = max_length
        self.expansion = dict(expansion or {})  # placeholder id -> tokens it becomes
        self.truncated = 0
        self.end_of_turn_id = end_of_turn_id(processor.tokenizer)
        if max_length is not None and self.with_answers:
            for i in self.indices:
                rec = self.records[i]
                ex = processor.build_training_example(
                    record_instruction(rec, self.instruction, where=data.name(i)),
                    record_answer(rec, where=data.name(i)),
                    style=self.prompt_style,
                    modal=self.modal,
                )
                ids = ex["input_ids"][: self._turn_end(ex["labels"])]
                limit = self._text_limit(ids)
                if limit <= ex["prompt_length"]:
                    needed = self.llm_length(ex["input_ids"][: ex["prompt_length"]])
                    raise RecordError(
                        f"{data.name(i)}: the prompt alone needs {needed} of max_length={max_length} tokens "
                        f"(video and audio tokens included); raise max_length"
                    )
                if limit < len(ids):
                    self.truncated += 1

    def _where(self, index: int) -> str:
        return self.data.locations[index]  # the base class appends "(id ...)" to media errors

    def llm_length(self, ids: Sequence[int]) -> int:
        """Length of `ids` once the placeholders are expanded into their feature rows."""
        return len(ids) + added_positions(ids, self.expansion)

    def _text_limit(self, ids: Sequence[int]) -> int:
        assert self.max_length is not None
        return self.max_length - (self.llm_length(ids) - len(ids))

    def __len__(self) -> int:
        return len(self.indices)

    def _turn_end(self, labels: Sequence[int]) -> int:
        """Length of the example up to and including the assistant's end-of-turn token.

        The chat template may add text after that token (ChatML adds a newline); the model
        never generates it, so it is neither supervised nor kept.
        """
        if self.end_of_turn_id is None:
            return len(labels)
        for pos, label in enumerate(labels):
            if label == self.end_of_turn_id:
                return pos + 1
        return len(labels)

    def _load(self, record_index: int) -> dict[str, Any]:
        item = super().__getitem__(record_index)
        if "labels" in item:
            end = self._turn_end(item["labels"])
            item["input_ids"], item["labels"] = item["input_ids"][:end], item["labels"][:end]
        if self.max_length is not None and "labels" in item:
            limit = self._text_limit(item["input_ids"])
            if limit < len(item["input_ids"]):
                item["input_ids"] = item["input_ids"][:limit]
                item["labels"] = item["labels"][:limit]
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        replaced: list[dict[str, Any]] = []
        for step in range(len(self.indices)):
            item = self._load(self.indices[(index + step) % len(self.indices)])
            if item.get("media") is not None:
                item["replaced"] = replaced
                return item
            replaced.append({"id": item["id"], "video": item.get("video"), "reason": item.get("skip_reason")})
        raise MediaError(f"{self.source}: no record could be loaded (last: {replaced[-1]['reason']})")


class TrainingCollator(HumanOmniCollator):
    """Right-padded training batches; `skipped` lists the records replaced in the workers."""

    def __call__(self, items: Sequence[dict[str, Any]]):
        batch = super().__call__(items)
        batch["skipped"] = [r for it in items for r in it.get("replaced", ())] + list(batch.get("skipped", []))
        return batch


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes an assistant turn: ChatML's `<|im_end|>` when the vocabulary has it, else eos."""
    token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(token_id, int) and token_id != getattr(tokenizer, "unk_token_id", None) and token_id >= 0:
        return token_id
    return tokenizer.eos_token_id


def added_positions(ids: Sequence[int], expansion: dict[int, int]) -> int:
    """Positions the placeholders of `ids` add once each becomes its `expansion[placeholder]` rows."""
    return sum(ids.count(placeholder) * (n - 1) for placeholder, n in expansion.items())


def placeholder_expansion(model: Any, num_frames: int) -> dict[int, int]:
    """Tokens each placeholder becomes for this model: {-201: video tokens, -202: audio tokens}."""
    inner = model.model
    return {VIDEO_PLACEHOLDER: inner.num_video_tokens(num_frames), AUDIO_PLACEHOLDER: inner.num_audio_tokens()}
