"""Batched generation: clips decoded in DataLoader workers, prompts left-padded, K samples per clip.

Per batch the towers encode each clip once and the spliced prompt embeddings are repeated K
times for `--num-samples K` (the reference would run the towers again for every sample);
transformers' generation loop then runs over the embeddings with the merged decoding
(:mod:`erv.inference.settings`), exactly what `HumanOmniQwen2ForCausalLM.generate` does for one
sample. Every row stops at its own end token: transformers pads a finished row while the
others go on, and the row is cut at its first stop id before decoding, so a response never
holds text generated after its end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList

from erv.inference.sampling import RowSampler, row_seed
from erv.inference.settings import Decoding, InferenceSettings, build_decoding
from erv.inference.store import Generated
from erv.model import HumanOmniDataset, HumanOmniQwen2ForCausalLM
from erv.model.dataset import record_instruction


def prompt_ids(
    processor: Any, instruction: str, prefix: str = "", *, style: str | None = None, modal: str | None = None
) -> list[int]:
    """Prompt ids as the processor builds them, with the response prefix (answer-only) after the
    assistant header; the prefix is tokenised together with the prompt, as it would be in a
    conversation the model was trained on."""
    return processor.tokenize_multimodal(processor.prompt_text(instruction, style=style, modal=modal) + prefix)


class InferenceDataset(HumanOmniDataset):
    """The model's dataset with two changes for inference: prompts end with the response prefix,
    and a clip that cannot be read becomes a skipped item with its reason (recorded as that
    clip's error) instead of stopping the run, whatever exception the decoder raised."""

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        processor: Any,
        *,
        prefix: str = "",
        video_root: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(records, processor, video_root=video_root, on_error="skip")
        self.prefix = prefix

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            item = super().__getitem__(index)
        except Exception as exc:  # one unreadable clip must not end a run over thousands: record why
            return {
                "id": str(record["id"]),
                "video": self.resolve(record.get("video")),
                "index": index,
                "media": None,
                "skip_reason": f"{type(exc).__name__}: {exc}",
            }
        if self.prefix:
            instruction = record_instruction(record, self.instruction)
            item["input_ids"] = prompt_ids(
                self.processor, instruction, self.prefix, style=self.prompt_style, modal=self.modal
            )
        return item


class InferenceEngine:
    """A loaded model and processor with the run's decoding; turns collated batches into responses."""

    def __init__(self, model: Any, processor: Any, settings: InferenceSettings) -> None:
        self.model = model
        self.processor = processor
        self.settings = settings
        self.decoding: Decoding = build_decoding(model, processor.tokenizer, settings)
        self.device = next(model.parameters()).device
        self.tokens = 0  # generated tokens so far (for the throughput line)
        self._lengths: dict[str, int] = {}

    def prompt_length(self, record: dict[str, Any]) -> int:
        """Prompt tokens of a record (placeholders count one each), for sorting batches by length."""
        instruction = record_instruction(record)
        if instruction not in self._lengths:  # usually one instruction for a whole test set
            ids = prompt_ids(self.processor, instruction, self.settings.response_prefix)
            self._lengths[instruction] = len(ids)
        return self._lengths[instruction]

    def dataset(
        self, records: Sequence[dict[str, Any]], *, video_root: str | os.PathLike[str] | None = None
    ) -> InferenceDataset:
        return InferenceDataset(records, self.processor, prefix=self.settings.response_prefix, video_root=video_root)

    def _finish(self, rows: list[list[int]]) -> list[Generated]:
        stops = set(self.decoding.stop_ids)
        cut, reasons = [], []
        for row in rows:
            end = next((i for i, token in enumerate(row) if token in stops), None)
            cut.append(row if end is None else row[:end])
            reasons.append("length" if end is None else "stop")
        self.tokens += sum(len(r) for r in cut)
        prefix = self.settings.response_prefix
        texts = self.processor.batch_decode(cut)
        return [
            Generated(prefix + text, reason, tuple(ids)) for text, reason, ids in zip(texts, reasons, cut, strict=True)
        ]

    @torch.inference_mode()
    def generate(self, batch: Any) -> list[list[Generated]]:
        """For each clip kept in the collated `batch` (in `batch["ids"]` order), its K responses."""
        ids: list[str] = list(batch["ids"])
        if not ids:
            return []
        inputs = {name: value.to(self.device) for name, value in self.processor.model_inputs(batch).items()}
        input_ids, attention_mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
        spliced = self.model.model.embed_multimodal(input_ids, attention_mask, **inputs)
        embeds, mask = spliced.inputs_embeds, spliced.attention_mask
        k = self.settings.num_samples
        if k > 1:
            embeds, mask = embeds.repeat_interleave(k, dim=0), mask.repeat_interleave(k, dim=0)
        processors = LogitsProcessorList()
        if self.decoding.sampler is not None:
            seeds = [row_seed(self.settings.seed, sample_id, j) for sample_id in ids for j in range(k)]
            processors.append(RowSampler(self.decoding.sampler, seeds))
        # the generation loop of HumanOmniQwen2ForCausalLM.generate, over embeddings spliced once
        new_tokens = super(HumanOmniQwen2ForCausalLM, self.model).generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            generation_config=self.decoding.generation,
            logits_processor=processors,
        )
        results = self._finish(new_tokens.tolist())
        return [results[i * k : (i + 1) * k] for i in range(len(ids))]
