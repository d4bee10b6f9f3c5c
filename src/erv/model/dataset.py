"""PyTorch dataset and collator over video records, for inference and training DataLoaders.

Why: media decoding is the slow part of every stage, so it has to happen in DataLoader
workers, in parallel, while the GPU works; the reference decodes inside its training and
inference loops one sample at a time. Each item is decoded and tokenised in a worker
(`HumanOmniDataset.__getitem__`); the collator only pads and stacks.

Records are dicts (or a JSON/JSONL file of them) with:

* ``video``: a video file or a folder of frames (relative paths resolve against `video_root`);
* the instruction: ``instruction``, or ``problem`` (GRPO datasets), or the reference layout
  ``conversations`` (first human turn, `<video>`/`<audio>` tags removed); or the dataset's
  `instruction=` default;
* optional ``id`` (default: the ``video`` string), ``audio`` (separate audio file),
  ``start``/``end`` seconds, ``question`` (BERT question), and for training the answer:
  ``answer``, ``solution``, or the first gpt turn of ``conversations``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from erv.errors import ConfigError, MediaError, RecordError
from erv.io.jsonl import read_json_records
from erv.media import AspectRatio
from erv.model.constants import IGNORE_INDEX
from erv.model.processor import HumanOmniProcessor, strip_modal_tags

OnError = Literal["raise", "skip"]


def record_instruction(record: dict[str, Any], default: str | None = None, *, where: str = "record") -> str:
    """The instruction text of a record (see the module doc for the accepted fields)."""
    for key in ("instruction", "problem"):
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return strip_modal_tags(value) if "<video>" in value or "<audio>" in value else value
    turns = record.get("conversations")
    if isinstance(turns, list):
        for turn in turns:
            if isinstance(turn, dict) and turn.get("from") == "human" and isinstance(turn.get("value"), str):
                return strip_modal_tags(turn["value"])
    if default is not None:
        return default
    raise RecordError(
        f"{where}: no instruction (expected 'instruction', 'problem' or a human turn in 'conversations')"
    )


def record_answer(record: dict[str, Any], *, where: str = "record") -> str:
    """The supervised answer of a record: `answer`, `solution` or the first gpt turn."""
    for key in ("answer", "solution"):
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value
    turns = record.get("conversations")
    if isinstance(turns, list):
        for turn in turns:
            if isinstance(turn, dict) and turn.get("from") == "gpt" and isinstance(turn.get("value"), str):
                return turn["value"]
    raise RecordError(f"{where}: no answer (expected 'answer', 'solution' or a gpt turn in 'conversations')")


def resolve_media_path(path: str | None, video_root: str | os.PathLike[str] | None) -> str | None:
    """A record's media path; a relative one is taken under `video_root` when one is given."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute() and video_root is not None:
        p = Path(video_root) / p
    return str(p)


class HumanOmniDataset(Dataset):
    """One item per record: decoded media, prompt ids (and labels), BERT question ids.

    `with_answers=True` builds supervised examples (prompt masked with -100) in `prompt_style`
    (default "sft"); otherwise generation prompts (default "inference"). `on_error="skip"`
    turns a media failure into a skipped item (reported by the collator in `skipped`) instead
    of stopping the run; the missing-audio policy of the processor applies as well.
    """

    def __init__(
        self,
        records: Sequence[dict[str, Any]] | str | os.PathLike[str],
        processor: HumanOmniProcessor,
        *,
        video_root: str | os.PathLike[str] | None = None,
        instruction: str | None = None,
        with_answers: bool = False,
        prompt_style: str | None = None,
        modal: str | None = None,
        aspect_ratio: AspectRatio | str = "default",
        on_error: OnError = "raise",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if isinstance(records, (str, os.PathLike)):
            self.source = str(records)
            self.records = read_json_records(records)
        else:
            self.source = "records"
            self.records = list(records)
        self.processor = processor
        self.video_root = Path(video_root) if video_root is not None else None
        self.instruction = instruction
        self.with_answers = with_answers
        self.prompt_style = prompt_style or ("sft" if with_answers else processor.prompt_style)
        self.modal = modal or processor.modal
        self.aspect_ratio = aspect_ratio
        self.on_error = on_error
        for i, rec in enumerate(self.records):  # fail early on records that can never work
            where = self._where(i)
            if not isinstance(rec, dict):
                raise RecordError(f"{where}: expected an object, got {type(rec).__name__}")
            if self.modal in ("video_audio", "video") and not isinstance(rec.get("video"), str):
                raise RecordError(f"{where}: no 'video' path")
            record_instruction(rec, instruction, where=where)
            if with_answers:
                record_answer(rec, where=where)

    def _where(self, index: int) -> str:
        return f"{self.source}[{index}]"

    def __len__(self) -> int:
        return len(self.records)

    def resolve(self, path: str | None) -> str | None:
        return resolve_media_path(path, self.video_root)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        where = self._where(index)
        video = self.resolve(rec.get("video"))
        sample_id = str(rec.get("id", rec.get("video", index)))
        item: dict[str, Any] = {"id": sample_id, "video": video, "index": index}
        instruction = record_instruction(rec, self.instruction, where=where)
        proc = self.processor
        question = rec.get("question")
        if self.with_answers:
            ex = proc.build_training_example(
                instruction,
                record_answer(rec, where=where),
                question=question,
                style=self.prompt_style,
                modal=self.modal,
            )
            item.update(input_ids=ex["input_ids"], labels=ex["labels"], question=ex["question"])
        else:
            enc = proc.encode_prompt(instruction, question=question, style=self.prompt_style, modal=self.modal)
            item.update(input_ids=enc.input_ids, question=enc.question)
        item["bert"] = proc.tokenize_question(item["question"])
        try:
            media = proc.load_media(
                video,
                self.resolve(rec.get("audio")),
                modal=self.modal,
                start=rec.get("start"),
                end=rec.get("end"),
                aspect_ratio=self.aspect_ratio,
            )
        except MediaError as exc:
            if self.on_error == "raise":
                raise MediaError(f"{where} (id {sample_id}): {exc}") from exc
            item.update(media=None, skip_reason=str(exc))
            return item
        item["media"] = media
        item["skip_reason"] = None if media is not None else "no audio (on_missing_audio='skip')"
        return item


class HumanOmniCollator:
    """Pads prompt ids (left for generation, right for training), stacks media, pads BERT ids.

    Returns a `BatchFeature` with the model inputs (`HumanOmniProcessor.model_input_names`),
    `labels` for training items, and bookkeeping: `ids`, `videos`, `audio_missing`, and
    `skipped` = [{"id", "video", "reason"}] for items that were skipped.
    """

    def __init__(self, processor: HumanOmniProcessor, *, padding_side: str | None = None) -> None:
        self.processor = processor
        self.padding_side = padding_side

    def __call__(self, items: Sequence[dict[str, Any]]):
        from transformers import BatchFeature

        kept = [it for it in items if it.get("media") is not None]
        skipped = [
            {"id": it["id"], "video": it.get("video"), "reason": it.get("skip_reason")}
            for it in items
            if it.get("media") is None
        ]
        data: dict[str, Any] = {
            "ids": [it["id"] for it in kept],
            "videos": [it.get("video") for it in kept],
            "skipped": skipped,
        }
        if not kept:
            return BatchFeature(data=data)
        proc = self.processor
        training = "labels" in kept[0]
        side = self.padding_side or ("right" if training else "left")
        ids, mask = proc.pad_sequences([it["input_ids"] for it in kept], padding_side=side)
        data.update(input_ids=ids, attention_mask=mask)
        if training:
            labels, _ = proc.pad_sequences([it["labels"] for it in kept], padding_side=side, pad_value=IGNORE_INDEX)
            data["labels"] = labels
        with_audio = all(it["media"].audio_features is not None for it in kept)
        data.update(proc.stack_media([it["media"] for it in kept], with_audio=with_audio))
        data.update(proc.pad_questions([it["bert"] for it in kept]))
        return BatchFeature(data=data)


def make_dataloader(
    dataset: HumanOmniDataset,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    shuffle: bool = False,
    padding_side: str | None = None,
    **kwargs: Any,
) -> torch.utils.data.DataLoader:
    """A DataLoader with the collator, persistent workers and prefetching when workers are used."""
    if num_workers > 0:
        kwargs.setdefault("persistent_workers", True)
        kwargs.setdefault("prefetch_factor", 2)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=HumanOmniCollator(dataset.processor, padding_side=padding_side),
        **kwargs,
    )
