"""Infrastructure every HumanOmni trainer shares: recipe parsing, loading for training, media
policy, resuming, saving, logging back-ends.

A trainer's `main(argv)` is: `parse_recipe` -> `check_model_location` (fail fast) ->
`prepare_records` (records validated, media probed, policy applied) -> `load_for_training`
(model + processor, tune parts, optional LoRA) -> the HF/TRL trainer -> `save_final_checkpoint`
-> a summary line (the CLI puts any user error on one line). docs/training.md describes each step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from erv.errors import ConfigError, one_line_text
from erv.io.jsonl import write_jsonl
from erv.io.recipes import check_choices
from erv.train.args import DataArguments, ModelArguments
from erv.train.data import MediaReport, TrainingRecords, apply_media_policy, check_media, read_training_records
from erv.train.parts import (
    apply_tune_parts,
    freeze_unused,
    frozen_parts,
    llm_lora_target_regex,
    modules_to_save,
    normalize_parts,
    parameter_counts,
    unused_parameter_prefixes,
)

logger = logging.getLogger(__name__)

SKIPPED_MEDIA_FILE = "skipped_media.jsonl"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------- parsing and errors
@contextlib.contextmanager
def trainer_config_errors() -> Iterator[None]:
    """A trainer's constructor rejects settings with ValueError (an unknown `report_to`, ...): a user error."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(one_line_text(str(exc))) from None


def validate_data_args(data_args: DataArguments) -> None:
    """The data fields' choices (again, for arguments built in code rather than parsed) and bounds."""
    check_choices(data_args)  # on_missing_audio unset falls back to on_media_error, checked here too
    if data_args.num_frames < 1:
        raise ConfigError(f"num_frames must be at least 1, got {data_args.num_frames}")


def check_model_location(model_args: ModelArguments) -> Path:
    """The local checkpoint folder; a missing one is a one-line ConfigError before anything loads."""
    from erv.model.checkpoint import checkpoint_dir, read_checkpoint_config

    if not model_args.model_name_or_path:
        raise ConfigError("no model_name_or_path: set it in the recipe or pass --model_name_or_path DIR")
    folder = checkpoint_dir(model_args.model_name_or_path)
    read_checkpoint_config(folder)
    normalize_parts(model_args.tune_parts)
    check_choices(model_args)  # tower_weights, for arguments built in code
    return folder


# ---------------------------------------------------------------- records and media
def prepare_records(
    data_args: DataArguments,
    *,
    with_answers: bool,
    output_dir: str | os.PathLike[str] | None = None,
    main_process: bool = True,
) -> tuple[TrainingRecords, list[int], MediaReport]:
    """Records validated, media probed and the media policy applied: (records, kept indices, report).

    Every rank runs this (the probe is cheap and deterministic); the main process writes the
    left-out records to `output_dir/skipped_media.jsonl`.
    """
    validate_data_args(data_args)
    data = read_training_records(
        data_args.dataset_name,
        with_answers=with_answers,
        instruction=data_args.instruction,
        needs_video=data_args.modal in ("video_audio", "video"),
    )
    issues = check_media(data, video_root=data_args.video_root, modal=data_args.modal) if data_args.check_media else []
    kept, report = apply_media_policy(
        data, issues, on_media_error=data_args.on_media_error, on_missing_audio=data_args.missing_audio_policy()
    )
    if main_process and output_dir is not None and report.skipped:
        write_jsonl(Path(output_dir) / SKIPPED_MEDIA_FILE, report.rows())
    logger.info(
        "%s: %d records, %d to train on, %d left out for their media",
        data.source,
        len(data.records),
        len(kept),
        len(report.skipped),
    )
    return data, kept, report


# ---------------------------------------------------------------- loading for training
def training_dtype(model_args: ModelArguments, training_args: Any) -> str:
    """The weight dtype (see `ModelArguments.torch_dtype`)."""
    if model_args.torch_dtype:
        return model_args.torch_dtype
    if uses_deepspeed(training_args):
        if training_args.bf16:
            return "bfloat16"
        if training_args.fp16:
            return "float16"
    return "float32"


def absolute_location(location: str | None) -> str | None:
    """An existing local folder as an absolute path (hub ids unchanged), so a saved config stays valid."""
    if location and Path(location).expanduser().exists():
        return str(Path(location).expanduser().resolve())
    return location


def record_checkpoint_fields(model: Any, data_args: DataArguments) -> None:
    """What the saved config must say for `load_pretrained` to rebuild this model with no other argument.

    Tower and BERT locations become absolute paths (hub ids stay), the frame count is the one
    trained with, and `tower_weights: checkpoint` makes the loader keep the tower weights saved
    with the checkpoint (the towers may have trained) instead of re-reading their folders.
    """
    from erv.model.checkpoint import TOWER_WEIGHTS_KEY

    config = model.config
    config.mm_vision_tower = absolute_location(config.mm_vision_tower)
    config.mm_audio_tower = absolute_location(config.mm_audio_tower)
    config.mm_bert_tower = absolute_location(config.mm_bert_tower)
    config.num_frames = int(data_args.num_frames)
    setattr(config, TOWER_WEIGHTS_KEY, "checkpoint")
    config.use_cache = True


def build_processor(checkpoint: Path, model: Any, data_args: DataArguments, *, prompt_style: str) -> Any:
    from erv.model.processor import HumanOmniProcessor

    config = model.config
    return HumanOmniProcessor.from_pretrained(
        str(checkpoint),
        vision_tower=config.mm_vision_tower,
        audio_tower=config.mm_audio_tower,
        bert=config.mm_bert_tower,
        config=config,
        prompt_style=prompt_style,
        modal=data_args.modal,
        aspect_ratio="pad" if data_args.aspect_ratio == "pad" else None,
        audio_mode=data_args.audio_mode,
        on_missing_audio=data_args.missing_audio_policy(),
        video_backend=data_args.video_backend,
        num_frames=data_args.num_frames,
    )


def wrap_lora(model: Any, model_args: ModelArguments, parts: Sequence[str]) -> Any:
    """LoRA adapters on the LLM's linear layers; the other tuned parts train fully (PEFT `modules_to_save`)."""
    from peft import LoraConfig, get_peft_model

    if "llm" not in parts:
        raise ConfigError("use_peft puts LoRA adapters on the LLM: add llm to tune_parts (or set use_peft false)")
    config = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=llm_lora_target_regex(model_args.lora_target_modules),
        modules_to_save=modules_to_save(model, parts) or None,
        task_type="CAUSAL_LM",
    )
    unused = unused_parameter_prefixes(model)
    wrapped = get_peft_model(model, config)
    freeze_unused(wrapped, unused)
    return wrapped


def load_checkpoint_model(model_args: ModelArguments, training_args: Any) -> tuple[Path, Any]:
    """(checkpoint folder, model) as the recipe names them; under ZeRO-3 the weights load partitioned."""
    from erv.model.loading import load_model

    checkpoint = check_model_location(model_args)
    if uses_deepspeed(training_args):
        init_deepspeed_comm(training_args)
    model = load_model(
        checkpoint,
        vision_tower=model_args.vision_tower,
        audio_tower=model_args.audio_tower,
        bert=model_args.bert,
        components_dir=model_args.components_dir,
        torch_dtype=training_dtype(model_args, training_args),
        tower_weights=model_args.tower_weights,
        attn_implementation=model_args.attn_implementation,
    )
    return checkpoint, model


def load_for_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: Any,
    *,
    prompt_style: str,
) -> tuple[Any, Any]:
    """(model, processor) ready for a trainer: parts set trainable, LoRA applied if asked.

    Under ZeRO-3 (`training_args.deepspeed` with stage 3) the weights load partitioned, because
    `TrainingArguments` registered the DeepSpeed config before this call.
    """

    if model_args.use_peft and is_zero3(training_args):
        raise ConfigError("use_peft with ZeRO-3 is not supported here; use configs/deepspeed/zero2.json or DDP")
    checkpoint, model = load_checkpoint_model(model_args, training_args)
    record_checkpoint_fields(model, data_args)
    processor = build_processor(checkpoint, model, data_args, prompt_style=prompt_style)
    parts = apply_tune_parts(model, model_args.tune_parts)
    counts = parameter_counts(model)
    logger.info(
        "trainable parts: %s; frozen: %s; parameters %s",
        ", ".join(parts),
        ", ".join(frozen_parts(model)) or "none",
        "; ".join(f"{p} {c['trainable']:,} trainable / {c['frozen']:,} frozen" for p, c in counts.items()),
    )
    if model_args.use_peft:
        model = wrap_lora(model, model_args, parts)
    return model, processor


def init_deepspeed_comm(training_args: Any) -> None:
    """Let DeepSpeed adopt the process group the trainer's arguments created, before ZeRO-3 builds
    partitioned weights (its `zero.Init` otherwise sees a world of one process and rejects the
    batch sizes filled in for the real world size)."""
    import deepspeed
    import torch.distributed as dist

    _ = training_args.world_size  # creates the process group under torchrun / accelerate launch
    if dist.is_available() and dist.is_initialized():
        deepspeed.init_distributed(dist_backend=dist.get_backend())


def uses_deepspeed(training_args: Any) -> bool:
    """DeepSpeed from the recipe's `deepspeed` field or from an `accelerate launch` DeepSpeed config."""
    return (
        bool(getattr(training_args, "deepspeed", None)) or getattr(training_args, "deepspeed_plugin", None) is not None
    )


def is_zero3(training_args: Any) -> bool:
    from transformers.integrations import is_deepspeed_zero3_enabled

    return uses_deepspeed(training_args) and is_deepspeed_zero3_enabled()


# ---------------------------------------------------------------- resuming
def last_complete_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The newest `checkpoint-N` in output_dir whose trainer state was written (the last file a save writes)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT_DIR.match(child.name)
        if match and child.is_dir():
            if (child / "trainer_state.json").is_file():
                found.append((int(match.group(1)), child))
            else:
                logger.warning("ignoring %s: it was not saved completely (no trainer_state.json)", child)
    return str(max(found)[1]) if found else None


def resolve_resume(value: str | bool | None, output_dir: str | os.PathLike[str]) -> str | None:
    """`resume_from_checkpoint`: auto / true -> the last complete checkpoint in output_dir (or a fresh
    start when there is none); a path -> that checkpoint; empty / false -> a fresh start."""
    if value is None or value is False or str(value).strip().lower() in ("", "false", "no", "none"):
        return None
    if value is True or str(value).strip().lower() in ("auto", "true", "last", "yes"):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            logger.info("resume_from_checkpoint=%s: no checkpoint in %s, starting fresh", value, output_dir)
        else:
            logger.info("resuming from %s", last)
        return last
    path = Path(str(value))
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"resume_from_checkpoint {path} is not a complete checkpoint folder (no trainer_state.json)")
    return str(path)


# ---------------------------------------------------------------- saving
def save_final_checkpoint(trainer: Any, output_dir: str | os.PathLike[str], *, lora_merge: bool = True) -> Path:
    """Save what `load_pretrained(output_dir)` loads: weights (gathered under ZeRO-3), config with
    the tower locations, generation config, tokenizer with its chat template.

    A LoRA run is merged into plain weights (`lora_merge`) or saved as a PEFT adapter folder.
    """
    from peft import PeftModel

    output = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    base.config.use_cache = True  # the trainer turns it off for training; generation wants it
    if isinstance(model, PeftModel) and lora_merge:
        merged = model.merge_and_unload()
        if trainer.args.should_save:
            merged.save_pretrained(output, safe_serialization=True)
            trainer.processing_class.save_pretrained(output)
        trainer.model = merged
    else:
        trainer.save_model(str(output))
    trainer.accelerator.wait_for_everyone()
    return output


# ---------------------------------------------------------------- logging back-ends
def prepare_reporting(training_args: Any) -> None:
    """wandb: key only from the environment; without one, log offline under output_dir (sync later).

    Nothing here reads or stores a key: wandb reads WANDB_API_KEY itself.
    """
    report_to = training_args.report_to or []
    if isinstance(report_to, str):
        report_to = [report_to]
    if "wandb" in report_to or "all" in report_to:
        os.environ.setdefault("WANDB_DIR", str(training_args.output_dir))
        if not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
            logger.warning(
                "report_to wandb without WANDB_API_KEY in the environment: logging offline under %s "
                "(upload later with `wandb sync`)",
                os.environ["WANDB_DIR"],
            )
            os.environ["WANDB_MODE"] = "offline"


def setup_logging(training_args: Any) -> None:
    """INFO on the main process, warnings elsewhere (one log, not one per rank)."""
    import transformers

    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("erv").setLevel(level)
    transformers.utils.logging.set_verbosity(level if level == logging.WARNING else logging.WARNING)
