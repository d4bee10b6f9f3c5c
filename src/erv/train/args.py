"""Recipe fields shared by the HumanOmni trainers (`erv sft`, `erv grpo`).

Three dataclasses make a recipe, parsed together by TRL's parser (`--config recipe.yaml`
plus `--field value` overrides): :class:`ModelArguments` (what to load and what trains),
:class:`DataArguments` (records and media) and the trainer's own `TrainingArguments`
subclass (`erv.train.sft.SFTConfig`, TRL's `GRPOConfig` for GRPO). Field names follow TRL /
open-r1 (`model_name_or_path`, `dataset_name`, `use_peft`, `lora_r` ...) so recipes read
like theirs. docs/training.md lists every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from erv.media.common import AUDIO_MODES, MISSING_AUDIO_POLICIES, VIDEO_BACKENDS
from erv.model.checkpoint import TOWER_WEIGHTS
from erv.train.parts import PAPER_SFT_PARTS, TUNABLE_PARTS

MEDIA_ERROR_POLICIES = ("skip", "error")
ASPECT_RATIO_CHOICES = ("pad", "none")
MODAL_CHOICES = ("video_audio", "video", "audio")


def split_report_to(training_args: Any) -> None:
    """`--report_to tensorboard,wandb` on the command line means both (a YAML list works as well).

    Called by the trainers' config classes before `TrainingArguments.__post_init__`, which would
    turn the string into the one-item list `["tensorboard,wandb"]`.
    """
    value = training_args.report_to
    if isinstance(value, str) and "," in value:
        training_args.report_to = [part.strip() for part in value.split(",") if part.strip()]


@dataclass
class ModelArguments:
    """Which HumanOmni checkpoint, where its parts live, and what trains."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "HumanOmni checkpoint folder (or hub id): a release or an `erv sft` output."},
    )
    vision_tower: str | None = field(
        default=None, metadata={"help": "SigLIP folder or hub id (default: the checkpoint config's mm_vision_tower)."}
    )
    audio_tower: str | None = field(
        default=None, metadata={"help": "Whisper folder or hub id (default: the checkpoint config's mm_audio_tower)."}
    )
    bert: str | None = field(
        default=None, metadata={"help": "BERT folder or hub id for the branch gate (default: bert-base-uncased)."}
    )
    components_dir: str | None = field(
        default=None, metadata={"help": "Folder searched first for the towers and BERT by name."}
    )
    tower_weights: str | None = field(
        default=None,
        metadata={
            "help": "original: towers from their folders (the reference); checkpoint: the copies in the "
            "checkpoint; default: what the checkpoint records (our outputs: checkpoint), else original.",
            "choices": list(TOWER_WEIGHTS),
        },
    )
    torch_dtype: str | None = field(
        default=None,
        metadata={
            "help": "Weight dtype (bfloat16, float16, float32, auto). Default: bfloat16/float16 under DeepSpeed "
            "with bf16/fp16 (it keeps fp32 master weights), else float32 (mixed precision autocasts)."
        },
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "sdpa (default), eager, flash_attention_2 (needs flash-attn)."}
    )
    tune_parts: list[str] = field(
        default_factory=lambda: list(PAPER_SFT_PARTS),
        metadata={"help": f"Parts that train: {', '.join(TUNABLE_PARTS)}. Default: the paper's SFT parts."},
    )
    use_peft: bool = field(default=False, metadata={"help": "LoRA adapters on the LLM instead of training it fully."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "LLM linear layers with adapters (q_proj ... down_proj); default all-linear."},
    )
    lora_merge: bool = field(
        default=True,
        metadata={
            "help": "At the end, merge the adapters into the weights and save a plain checkpoint (true), or "
            "save the PEFT adapter folder (false)."
        },
    )


@dataclass
class DataArguments:
    """Records and how their media are read."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Record file (JSON list or JSONL; `erv data prepare` output or the CA-EMER/ERV schema)."},
    )
    video_root: str | None = field(default=None, metadata={"help": "Prefix for relative video paths."})
    num_frames: int = field(default=8, metadata={"help": "Frames sampled per video (paper: 8)."})
    modal: str = field(
        default="video_audio", metadata={"help": "Inputs the prompts refer to.", "choices": list(MODAL_CHOICES)}
    )
    aspect_ratio: str = field(
        default="pad",
        metadata={
            "help": "pad: frames padded to a square (the reference's training preprocessing); none: squashed.",
            "choices": list(ASPECT_RATIO_CHOICES),
        },
    )
    audio_mode: str = field(
        default="ffmpeg",
        metadata={
            "help": "ffmpeg: correct 16 kHz mono decoding; reference: the released code's decord reader (with its "
            "bugs on stereo / non-16 kHz tracks).",
            "choices": list(AUDIO_MODES),
        },
    )
    video_backend: str = field(default="pyav", metadata={"help": "pyav or decord.", "choices": list(VIDEO_BACKENDS)})
    instruction: str | None = field(
        default=None, metadata={"help": "Instruction for records that have none (default: records must have one)."}
    )
    on_media_error: str = field(
        default="error",
        metadata={
            "help": "A missing or unreadable video: error (stop before training, naming the file) or skip "
            "(leave the record out, counted and reported).",
            "choices": list(MEDIA_ERROR_POLICIES),
        },
    )
    on_missing_audio: str | None = field(
        default=None,
        metadata={
            "help": "A video without an audio track: zeros (the reference's silent substitute, counted), skip, "
            "error. Default: as on_media_error.",
            "choices": list(MISSING_AUDIO_POLICIES),
        },
    )
    check_media: bool = field(
        default=True,
        metadata={"help": "Probe every record's media before training (fast, no decoding) to apply the policy."},
    )

    def missing_audio_policy(self) -> str:
        return self.on_missing_audio or self.on_media_error
