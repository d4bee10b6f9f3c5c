"""`erv grpo`: GRPO of HumanOmni with the format, answer and ERV explanation rewards, from a recipe.

    erv grpo --config configs/grpo/erv_0.5b.yaml [--field value ...]

A recipe is four dataclasses parsed together by TRL's parser: the model and data fields SFT
uses (`erv.train.args`), the reward options (:class:`RewardArguments`) and every
`GRPOConfig` field plus erv's own (:class:`erv.train.grpo_trainer.HumanOmniGRPOConfig`).
The run: cheap checks (checkpoint folder, recipe values, rewards built, so a verifier folder
that does not exist stops the run before anything loads) -> records validated and media
probed, the media policy applied -> the policy (and, with `beta != 0`, a frozen reference copy
of the same checkpoint) loaded with the recipe's trainable parts -> TRL's loop -> a checkpoint
`erv.model.load_pretrained` loads -> a summary line. docs/training.md documents the fields.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from erv.errors import ConfigError
from erv.io.recipes import parse_recipe
from erv.train.args import DataArguments, ModelArguments
from erv.train.common import (
    check_model_location,
    load_checkpoint_model,
    load_for_training,
    prepare_records,
    prepare_reporting,
    resolve_resume,
    save_final_checkpoint,
    setup_logging,
    trainer_config_errors,
)
from erv.train.grpo_trainer import HumanOmniGRPOConfig, HumanOmniGRPOTrainer

PROG = "erv grpo"
logger = logging.getLogger(__name__)


@dataclass
class RewardArguments:
    """Which rewards, by registry name, and the options of each (erv.rewards.registry)."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "accuracy", "explanation"],
        metadata={
            "help": "rewards by name (format, accuracy, explanation, fgce) or package.module:function; "
            "weights in reward_weights (GRPOConfig), default equal"
        },
    )
    taxonomy: str | None = field(
        default=None, metadata={"help": "label set for records without a 'dataset' field (DFEW, MAFW, ...)"}
    )
    verifier: str | None = field(
        default=None, metadata={"help": "ERV checkpoint folder (erv verifier train) for the explanation reward"}
    )
    explanation_preset: str = field(
        default="released",
        metadata={
            "help": "released: tau 0.1, neutral = labels exactly {neutral}; paper: tau 0.5, neutral among the labels",
            "choices": ["released", "paper"],
        },
    )
    verifier_threshold: float | None = field(default=None, metadata={"help": "tau (default: the preset's)"})
    verifier_top_k: int | None = field(default=None, metadata={"help": "k (default: the preset's, 2)"})
    neutral_rule: str | None = field(
        default=None, metadata={"help": "only / any (default: the preset's)", "choices": ["only", "any"]}
    )
    neutral_filter: bool = field(default=True, metadata={"help": "Table 2 ablation: false = always c / N"})
    sentence_level: bool = field(
        default=True, metadata={"help": "Table 2 ablation: false = the whole explanation classified once"}
    )
    sentence_splitter: str = field(
        default="regex", metadata={"help": "regex (released code) or punkt (CA-EMER)", "choices": ["regex", "punkt"]}
    )
    verifier_batch_size: int | None = field(default=None, metadata={"help": "verifier scoring batch size"})
    verifier_device: str | None = field(default=None, metadata={"help": "verifier device (default: the policy's)"})
    judge_model: str | None = field(default=None, metadata={"help": "FG-CE judge model name"})
    judge_base_url: str | None = field(default=None, metadata={"help": "FG-CE OpenAI-compatible endpoint"})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable with the key"})
    judge_concurrency: int = field(default=16, metadata={"help": "FG-CE requests in flight"})
    judge_cache: str | None = field(default=None, metadata={"help": "FG-CE reply cache (SQLite file)"})
    fgce_weighted: bool = field(default=True, metadata={"help": "FG-CE function/modality weights (false: plain mean)"})
    fgce_splitter: str = field(default="punkt", metadata={"help": "FG-CE sentence splitter"})
    fgce_malformed: str = field(
        default="others", metadata={"help": "a malformed judge reply counts as 'others' or gives None"}
    )


@dataclass
class GRPOResult:
    output_dir: Path
    global_step: int
    epochs: float
    train_loss: float
    prompts: int
    trained_prompts: int
    skipped_media: int
    rewards: dict[str, float | None]
    model: Any = field(default=None, repr=False)

    def summary(self) -> str:
        rewards = ", ".join(f"{k} {v:.3f}" for k, v in self.rewards.items() if v is not None) or "none logged"
        return (
            f"{PROG}: done: {self.global_step} steps ({self.epochs:.2f} epochs) on {self.trained_prompts} of "
            f"{self.prompts} prompts; skipped {self.skipped_media} for missing or unreadable media; last rewards: "
            f"{rewards}; train loss {self.train_loss:.4f}; model in {self.output_dir}"
        )


def reward_options(reward_args: RewardArguments) -> dict[str, Any]:
    options = asdict(reward_args)
    options.pop("reward_funcs")
    return options


def check_reward_weights(reward_args: RewardArguments, training_args: HumanOmniGRPOConfig) -> None:
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(reward_args.reward_funcs):
        raise ConfigError(
            f"reward_weights has {len(weights)} values for {len(reward_args.reward_funcs)} reward "
            f"functions ({', '.join(reward_args.reward_funcs)})"
        )


def train_grpo(
    model_args: ModelArguments,
    data_args: DataArguments,
    reward_args: RewardArguments,
    training_args: HumanOmniGRPOConfig,
    *,
    callbacks: Sequence[Any] | None = None,
) -> GRPOResult:
    """Check, load, train, save; see the module doc."""
    from datasets import Dataset

    from erv.model.checkpoint import unpartitioned_loading
    from erv.rewards import build_rewards
    from erv.train.grpo_data import grpo_rows

    prepare_reporting(training_args)
    main_process = training_args.process_index == 0
    output_dir = Path(training_args.output_dir)
    check_model_location(model_args)
    check_reward_weights(reward_args, training_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, output_dir)
    with unpartitioned_loading():  # the verifier is small and whole on every rank, not a ZeRO-3 model
        rewards = build_rewards(reward_args.reward_funcs, reward_options(reward_args))
    data, kept, media_report = prepare_records(
        data_args, with_answers=True, output_dir=output_dir, main_process=main_process
    )
    rows = grpo_rows(data, kept, video_root=data_args.video_root, taxonomy=reward_args.taxonomy)
    model, processor = load_for_training(model_args, data_args, training_args, prompt_style=training_args.prompt_style)
    ref_model = None
    if training_args.beta != 0.0 and not model_args.use_peft:
        ref_model = load_reference(model_args, training_args)
    with trainer_config_errors():
        trainer = HumanOmniGRPOTrainer(
            model,
            processor,
            rewards,
            training_args,
            train_dataset=Dataset.from_list(rows),
            ref_model=ref_model,
            callbacks=list(callbacks or []),
        )
    result = trainer.train(resume_from_checkpoint=resume)
    save_final_checkpoint(trainer, output_dir, lora_merge=model_args.lora_merge)
    if main_process:
        trainer.save_state()
    logged = [entry for entry in trainer.state.log_history if any(k.startswith("rewards/") for k in entry)]
    last = logged[-1] if logged else {}
    names = [
        key[len("rewards/") : -len("/mean")] for key in last if key.startswith("rewards/") and key.endswith("/mean")
    ]
    return GRPOResult(
        output_dir=output_dir,
        global_step=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0),
        train_loss=float(result.training_loss) if result.training_loss is not None else math.nan,
        prompts=len(data.records),
        trained_prompts=len(rows),
        skipped_media=len(media_report.skipped),
        rewards={name: last.get(f"rewards/{name}/mean") for name in names},
        model=trainer.model,
    )


def load_reference(model_args: ModelArguments, training_args: HumanOmniGRPOConfig) -> Any:
    """A copy of the starting checkpoint, for the KL term (TRL cannot build one for HumanOmni); the
    trainer freezes and prepares it."""
    _, model = load_checkpoint_model(model_args, training_args)
    return model


def parse_grpo_args(argv: Sequence[str]) -> tuple[ModelArguments, DataArguments, RewardArguments, HumanOmniGRPOConfig]:
    return parse_recipe((ModelArguments, DataArguments, RewardArguments, HumanOmniGRPOConfig), argv, PROG)


def main(argv: Sequence[str]) -> int:
    model_args, data_args, reward_args, training_args = parse_grpo_args(argv)
    setup_logging(training_args)
    result = train_grpo(model_args, data_args, reward_args, training_args)
    if training_args.process_index == 0:
        print(result.summary(), flush=True)
    return 0
