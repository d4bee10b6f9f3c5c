"""`erv sft`: supervised fine-tuning of HumanOmni (the paper's cold-start stage on EMER).

    erv sft --config configs/sft/emer_0.5b.yaml [--field value ...]
    torchrun --nproc_per_node 8 -m erv.cli sft --config configs/sft/emer_0.5b.yaml
    scripts/finetune_omni_add_reasoning.sh configs/sft/emer_7b.yaml

Each record becomes the reference's SFT prompt (processor style "sft", docs/reference.md
§11), its answer `<think>…</think><answer>…</answer>` plus the end-of-turn token are the only
supervised positions; frames are padded to squares as in the reference's training
preprocessing; media decode in DataLoader workers. The trainer is HF `Trainer` (TRL's
`SFTTrainer` computes the loss through a fused LM-head path that skips the multimodal
splice). The loss is the sum over supervised tokens divided by their number in the whole
accumulated batch on all devices (`num_items_in_batch`), so per-device batch x accumulation x
GPU count does not change it. docs/training.md has the recipe fields and the launch options.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainingArguments

from erv.io.recipes import parse_recipe
from erv.model.processor import MODEL_INPUT_NAMES
from erv.train.args import DataArguments, ModelArguments, split_report_to
from erv.train.common import (
    SKIPPED_MEDIA_FILE,
    check_model_location,
    load_for_training,
    prepare_records,
    prepare_reporting,
    resolve_resume,
    save_final_checkpoint,
    setup_logging,
    trainer_config_errors,
)
from erv.train.data import MediaReport, TrainingCollator, TrainingDataset, placeholder_expansion

logger = logging.getLogger(__name__)

PROG = "erv sft"


@dataclass
class SFTConfig(TrainingArguments):
    """`TrainingArguments` with SFT defaults; `max_length` as TRL's `SFTConfig` names it."""

    output_dir: str | None = field(default="outputs/sft", metadata={"help": "Checkpoints and the final model."})
    max_length: int | None = field(
        default=2048,
        metadata={
            "help": "Longest sequence the LLM sees, video and audio tokens included (paper: 2048); longer "
            "examples lose the end of their answer (counted). None: no limit."
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay false: items carry media and BERT ids the model reads."}
    )
    activation_checkpointing_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"use_reentrant": False},
        metadata={"help": "Passed to activation (gradient) checkpointing; non-reentrant works with frozen parts."},
    )
    dataloader_num_workers: int = field(
        default=4, metadata={"help": "Processes decoding media while the model trains (0: in the training loop)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_steps: float = field(default=500, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=3, metadata={"help": "Checkpoints kept."})

    def __post_init__(self) -> None:
        split_report_to(self)
        super().__post_init__()


@dataclass
class SFTResult:
    """What a run did (also summarised in the last line `erv sft` prints)."""

    output_dir: Path
    global_step: int
    epochs: float
    train_loss: float
    last_loss: float | None
    records: int
    trained_records: int
    truncated: int
    media: MediaReport
    metrics: dict[str, Any]
    model: Any = field(default=None, repr=False)  # the trained model, still in memory
    processor: Any = field(default=None, repr=False)

    def summary(self) -> str:
        skipped = self.media.num_skipped
        where = f" (listed in {self.output_dir / SKIPPED_MEDIA_FILE})" if self.media.skipped else ""
        last = "n/a" if self.last_loss is None else f"{self.last_loss:.4f}"
        return (
            f"{PROG}: done: {self.global_step} steps ({self.epochs:.2f} epochs) on {self.trained_records} of "
            f"{self.records} records; skipped {skipped} for missing or unreadable media{where}; "
            f"zero-filled audio {self.media.zero_filled_audio}; truncated {self.truncated}; "
            f"train loss {self.train_loss:.4f}, last logged loss {last}; model in {self.output_dir}"
        )


class HumanOmniSFTTrainer(Trainer):
    """HF `Trainer` that feeds the model its multimodal inputs only and counts in-worker media skips."""

    def __init__(self, *args: Any, media_report: MediaReport | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.media_report = media_report if media_report is not None else MediaReport()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        for row in inputs.get("skipped") or ():
            if row["id"] not in self.media_report.runtime_skipped:
                logger.warning("replaced %s in its batch: %s", row["id"], row["reason"])
            self.media_report.runtime_skipped[str(row["id"])] = str(row["reason"])
        model_inputs = {k: inputs[k] for k in (*MODEL_INPUT_NAMES, "labels") if k in inputs}
        model_inputs["use_cache"] = False
        return super().compute_loss(model, model_inputs, return_outputs, num_items_in_batch)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self.media_report.runtime_skipped:
            logs["media_skipped"] = float(len(self.media_report.runtime_skipped))
        super().log(logs, *args, **kwargs)


def _gather_runtime_skips(trainer: HumanOmniSFTTrainer) -> None:
    from accelerate.utils import gather_object

    if trainer.args.world_size > 1:
        merged: dict[str, str] = {}
        for part in gather_object([trainer.media_report.runtime_skipped]):
            merged.update(part)
        trainer.media_report.runtime_skipped = merged


def train_sft(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: SFTConfig,
    *,
    callbacks: Sequence[Any] | None = None,
) -> SFTResult:
    """Validate data, probe media, load, train, save; see the module doc."""
    prepare_reporting(training_args)
    main_process = training_args.process_index == 0
    output_dir = Path(training_args.output_dir)
    check_model_location(model_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, output_dir)
    data, kept, media_report = prepare_records(
        data_args, with_answers=True, output_dir=output_dir, main_process=main_process
    )
    model, processor = load_for_training(model_args, data_args, training_args, prompt_style="sft")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dataset = TrainingDataset(
        data,
        processor,
        indices=kept,
        max_length=training_args.max_length,
        expansion=placeholder_expansion(base, data_args.num_frames),
        video_root=data_args.video_root,
        instruction=data_args.instruction,
        with_answers=True,
        prompt_style="sft",
        modal=data_args.modal,
        aspect_ratio="pad" if data_args.aspect_ratio == "pad" else None,
        on_error="skip" if data_args.on_media_error == "skip" else "raise",
    )
    if dataset.truncated:
        logger.warning(
            "%d examples exceed max_length=%d tokens (video and audio tokens included) and lose the end of "
            "their answer",
            dataset.truncated,
            training_args.max_length,
        )
    with trainer_config_errors():
        trainer = HumanOmniSFTTrainer(
            model=model,
            args=training_args,
            train_dataset=dataset,
            data_collator=TrainingCollator(processor, padding_side="right"),
            processing_class=processor.tokenizer,
            callbacks=list(callbacks or []),
            media_report=media_report,
        )
    result = trainer.train(resume_from_checkpoint=resume)
    _gather_runtime_skips(trainer)
    save_final_checkpoint(trainer, output_dir, lora_merge=model_args.lora_merge)
    if main_process:
        trainer.save_state()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    train_loss = float(result.training_loss) if result.training_loss is not None else math.nan
    return SFTResult(
        output_dir=output_dir,
        global_step=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0),
        train_loss=train_loss,
        last_loss=float(losses[-1]) if losses else None,
        records=len(data.records),
        trained_records=len(kept),
        truncated=dataset.truncated,
        media=media_report,
        metrics=dict(result.metrics),
        model=trainer.model,
        processor=processor,
    )


def parse_sft_args(argv: Sequence[str]) -> tuple[ModelArguments, DataArguments, SFTConfig]:
    model_args, data_args, training_args = parse_recipe((ModelArguments, DataArguments, SFTConfig), argv, PROG)
    return model_args, data_args, training_args


def main(argv: Sequence[str]) -> int:
    model_args, data_args, training_args = parse_sft_args(argv)
    setup_logging(training_args)
    result = train_sft(model_args, data_args, training_args)
    if training_args.process_index == 0:
        print(result.summary(), flush=True)
    return 0
