"""Multi-label fine-tuning of the verifier with the HF `Trainer` (sigmoid outputs, BCE loss).

Recipes are YAML files read with TRL's parser (`configs/verifier_*.yaml`); any field can be
overridden on the command line (`--learning_rate 1e-5`). The defaults of
:class:`VerifierTrainingArguments` are the paper's: 10 epochs, batch 64, lr 3e-5, starting
from `SamLowe/roberta-base-go_emotions`.

Head layouts (see :mod:`erv.verifier.model`): ``head: goemotions`` keeps the backbone's
28-label GoEmotions head and trains the dataset labels on their GoEmotions columns, as the
released `Emo_Classifier` did (the other 20 columns get negative targets); ``head:
taxonomy`` puts a fresh head over the taxonomy's own labels. The checkpoint records the
taxonomy (`config.erv_taxonomy`), so the reward and `erv verifier eval` know it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from erv.data.emotions import GOEMOTIONS_LABELS, Taxonomy, get_taxonomy
from erv.errors import ConfigError, TaxonomyError
from erv.io.jsonl import write_json
from erv.verifier.data import (
    FORMATS,
    ImportReport,
    TextExample,
    format_counts,
    label_counts,
    load_many,
    train_eval_split,
    write_examples,
)

logger = logging.getLogger(__name__)

HEADS = ("goemotions", "taxonomy")


@dataclass
class VerifierModelArguments:
    model_name_or_path: str = field(
        default="SamLowe/roberta-base-go_emotions",
        metadata={
            "help": "Backbone: a save_pretrained directory or a hub id (paper: SamLowe/roberta-base-go_emotions)."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer location if not the model's."}
    )
    head: str = field(
        default="goemotions",
        metadata={
            "help": "goemotions: keep a 28-label GoEmotions head (released Emo_Classifier layout); "
            "taxonomy: a new head over the taxonomy's labels.",
            "choices": HEADS,
        },
    )
    max_length: int = field(
        default=256, metadata={"help": "Token limit per text (longer texts are truncated, counted)."}
    )


@dataclass
class VerifierDataArguments:
    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Training data: JSONL {text, labels}, EMER CSV, MERR-fine JSON or judge pseudo-label JSONL."
        },
    )
    eval_files: list[str] = field(
        default_factory=list,
        metadata={"help": "Held-out data; if empty, eval_fraction of the training texts is held out."},
    )
    eval_fraction: float = field(default=0.05, metadata={"help": "Share of texts held out when eval_files is empty."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the train/eval split."})
    taxonomy: str = field(default="MAFW", metadata={"help": "Label set of the data (MAFW covers DFEW and EMER too)."})
    data_format: str = field(
        default="auto", metadata={"help": "auto | " + " | ".join(FORMATS[1:]), "choices": FORMATS}
    )
    drop_unknown_labels: bool = field(
        default=False,
        metadata={"help": "Drop labels the taxonomy does not know (counted and reported) instead of failing."},
    )


@dataclass
class VerifierTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's verifier settings as defaults."""

    output_dir: str | None = field(
        default="outputs/verifier", metadata={"help": "Where checkpoints and the model go."}
    )
    num_train_epochs: float = field(default=10.0, metadata={"help": "Paper: 10 epochs."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Paper: batch 64."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Evaluation batch size."})
    learning_rate: float = field(default=3e-5, metadata={"help": "Paper: 3e-5."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate (no | steps | epoch)."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save a checkpoint (no | steps | epoch)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})


@dataclass
class TrainResult:
    output_dir: Path
    train_examples: int
    eval_examples: int
    label_counts: dict[str, int]
    import_report: dict[str, Any]
    metrics: dict[str, Any]
    model: Any = field(default=None, repr=False)  # the trained model, still in memory
    tokenizer: Any = field(default=None, repr=False)


def head_targets(head: str, taxonomy: str | Taxonomy) -> tuple[tuple[str, ...], dict[str, int]]:
    """Head labels and the head column each taxonomy label is trained on."""
    taxonomy = get_taxonomy(taxonomy)
    if head == "goemotions":
        columns = {}
        for label in taxonomy.labels:
            try:
                columns[label] = taxonomy.goemotions_index(label)
            except TaxonomyError:
                raise ConfigError(
                    f"head 'goemotions' cannot learn {taxonomy.name} label {label!r} (no GoEmotions "
                    f"counterpart); use head: taxonomy"
                ) from None
        return GOEMOTIONS_LABELS, columns
    if head == "taxonomy":
        return taxonomy.labels, {label: i for i, label in enumerate(taxonomy.labels)}
    raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {head!r}")


class MultiLabelDataset:
    """Tokenised texts with float multi-hot targets over the head's columns."""

    def __init__(
        self,
        examples: Sequence[TextExample],
        tokenizer: Any,
        columns: dict[str, int],
        num_labels: int,
        max_length: int,
    ) -> None:
        encoded = tokenizer(
            [ex.text for ex in examples],
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        self.truncated = sum(len(ids) >= max_length for ids in encoded)
        self.items = []
        for ex, ids in zip(examples, encoded, strict=True):
            target = [0.0] * num_labels
            for label in ex.labels:
                target[columns[label]] = 1.0
            self.items.append({"input_ids": ids, "labels": target})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class MultiLabelCollator:
    """Right-pads `input_ids`, builds the attention mask, stacks float targets."""

    def __init__(self, tokenizer: Any) -> None:
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from erv.verifier.predict import pad_batch

        ids, mask = pad_batch([f["input_ids"] for f in features], self.pad_id)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([f["labels"] for f in features], dtype=torch.float32),
        }


def _reinit_head(model: Any) -> None:
    import torch

    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    if head is None:
        logger.warning("could not find the classification head to re-initialise; its old weights are kept")
        return
    std = getattr(model.config, "initializer_range", 0.02)
    for module in head.modules() if isinstance(head, torch.nn.Module) else ():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def load_backbone(
    model_args: VerifierModelArguments, head_labels: Sequence[str], taxonomy: Taxonomy
) -> tuple[Any, Any]:
    """The tokenizer and a sequence classifier with the requested head (fresh if the labels differ)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from erv.io.locations import resolve_model_location

    source = resolve_model_location(model_args.model_name_or_path, "model_name_or_path")
    tokenizer_source = (
        resolve_model_location(model_args.tokenizer_name_or_path, "tokenizer_name_or_path")
        if model_args.tokenizer_name_or_path
        else source
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        base_config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load backbone {source!r}: {str(exc).splitlines()[0]}") from None
    old_labels = (
        tuple(str(base_config.id2label.get(i, "")).lower() for i in range(base_config.num_labels))
        if getattr(base_config, "id2label", None)
        else ()
    )
    new_labels = tuple(head_labels)
    config = AutoConfig.from_pretrained(
        source,
        id2label=dict(enumerate(new_labels)),
        label2id={label: i for i, label in enumerate(new_labels)},
        problem_type="multi_label_classification",
    )
    model = AutoModelForSequenceClassification.from_pretrained(source, config=config, ignore_mismatched_sizes=True)
    if old_labels and old_labels != tuple(lab.lower() for lab in new_labels) and len(old_labels) == len(new_labels):
        logger.info("backbone head labels differ from the requested ones; re-initialising the head")
        _reinit_head(model)
    model.config.erv_taxonomy = taxonomy.name
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"tokenizer of {source!r} has no pad token")
    return model, tokenizer


def compute_metrics_for(columns: dict[str, int]):
    """`Trainer.compute_metrics`: micro/macro F1 at tau 0.5 over the taxonomy columns."""
    import numpy as np

    from erv.verifier.eval import multilabel_report

    labels = tuple(columns)
    column_list = [columns[label] for label in labels]

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, targets = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        probs = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        report = multilabel_report(np.asarray(targets)[:, column_list] > 0.5, probs[:, column_list] > 0.5, labels)
        return {"micro_f1": report["micro_f1"], "macro_f1": report["macro_f1"]}

    return compute


RUN_FINGERPRINT_FILE = "erv_run.json"


def run_fingerprint(model_args: VerifierModelArguments, taxonomy: Taxonomy, examples: Sequence[TextExample]) -> dict:
    """What a training run's checkpoints were computed from: the backbone, the head and the data."""
    from erv.io.identity import content_hash

    name = str(model_args.model_name_or_path)
    local = Path(name).expanduser()
    return {
        "model_name_or_path": str(local.resolve()) if local.is_dir() else name,
        "head": model_args.head,
        "taxonomy": taxonomy.name,
        "max_length": model_args.max_length,
        "train_data_hash": content_hash([(ex.text, list(ex.labels)) for ex in examples]),
        "train_examples": len(examples),
    }


def check_resume_matches(output_dir: str | None, current: dict, resume: str | None) -> None:
    """Resuming a checkpoint of another backbone, head or training set would mix two runs: refuse."""
    if resume is None or output_dir is None:
        return
    saved_path = Path(output_dir) / RUN_FINGERPRINT_FILE
    if not saved_path.is_file():
        return  # written by an older version: nothing to compare
    import json

    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    differs = [key for key in current if key in saved and saved[key] != current[key]]
    if differs:
        raise ConfigError(
            f"resume_from_checkpoint: {output_dir} holds a run with another {', '.join(differs)} "
            f"({saved_path}); resuming would mix two runs: use another output_dir, or resume with the same "
            f"model and data"
        )


def _resume_checkpoint(training_args: TrainingArguments) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    value = training_args.resume_from_checkpoint
    if value in (None, "", "false", "False"):
        return None
    if str(value).lower() in ("true", "last", "auto"):
        last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        if last is None:
            logger.info("no checkpoint to resume from in %s; starting fresh", training_args.output_dir)
        return last
    return str(value)


def train_verifier(
    model_args: VerifierModelArguments, data_args: VerifierDataArguments, training_args: TrainingArguments
) -> TrainResult:
    """Load data, fine-tune, save the model + tokenizer and an evaluation report in output_dir."""
    from transformers import Trainer

    from erv.io.locations import resolve_model_location
    from erv.io.outputs import check_output_dir
    from erv.verifier.eval import EvalSettings, evaluate_verifier
    from erv.verifier.model import Verifier

    taxonomy = get_taxonomy(data_args.taxonomy)
    if not data_args.train_files:
        raise ConfigError("no training data: set train_files in the recipe or pass --train_files FILE ...")
    # Everything that can be checked without the data is checked before it is read and split.
    head_labels, columns = head_targets(model_args.head, taxonomy)
    resolve_model_location(model_args.model_name_or_path, "model_name_or_path")
    if model_args.tokenizer_name_or_path:
        resolve_model_location(model_args.tokenizer_name_or_path, "tokenizer_name_or_path")
    check_output_dir(training_args.output_dir, "output_dir")
    report = ImportReport()
    examples = load_many(
        data_args.train_files,
        taxonomy,
        drop_unknown=data_args.drop_unknown_labels,
        report=report,
        fmt=data_args.data_format,
    )
    if data_args.eval_files:
        train_examples = examples
        eval_examples = load_many(
            data_args.eval_files,
            taxonomy,
            drop_unknown=data_args.drop_unknown_labels,
            report=report,
            fmt=data_args.data_format,
        )
    else:
        train_examples, eval_examples = train_eval_split(examples, data_args.eval_fraction, data_args.split_seed)
    if not examples:
        raise ConfigError(f"no training examples in {', '.join(map(str, data_args.train_files))} ({report.summary()})")
    if not train_examples:
        raise ConfigError("no training examples left after the split")
    counts = label_counts(train_examples, taxonomy)
    logger.info("verifier data: %s", report.summary())
    logger.info("training examples per class: %s", format_counts(counts))

    resume = _resume_checkpoint(training_args)
    fingerprint = run_fingerprint(model_args, taxonomy, train_examples)
    check_resume_matches(training_args.output_dir, fingerprint, resume)
    model, tokenizer = load_backbone(model_args, head_labels, taxonomy)
    train_set = MultiLabelDataset(train_examples, tokenizer, columns, len(head_labels), model_args.max_length)
    eval_set = (
        MultiLabelDataset(eval_examples, tokenizer, columns, len(head_labels), model_args.max_length)
        if eval_examples
        else None
    )
    if train_set.truncated:
        logger.warning(
            "%d training texts reached max_length=%d and were truncated", train_set.truncated, model_args.max_length
        )
    if eval_set is None and training_args.eval_strategy not in ("no", None):
        training_args.eval_strategy = "no"
    output_dir = Path(training_args.output_dir)
    main_process = training_args.process_index == 0
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / RUN_FINGERPRINT_FILE, fingerprint)
        write_examples(output_dir / "train_examples.jsonl", train_examples)
        if eval_examples:
            write_examples(output_dir / "eval_examples.jsonl", eval_examples)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=MultiLabelCollator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_for(columns),
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(output_dir))
    trainer.save_state()

    metrics: dict[str, Any] = {}
    summary = {
        "train_examples": len(train_examples),
        "eval_examples": len(eval_examples),
        "label_counts": counts,
        "import": report.to_dict(),
        "head": model_args.head,
        "taxonomy": taxonomy.name,
        "truncated_train_texts": train_set.truncated,
    }
    if main_process:
        # Evaluate what was saved, reloaded: that is what the reward will load, and it works
        # the same whatever the training strategy sharded or wrapped.
        if eval_examples:
            verifier = Verifier.from_pretrained(
                output_dir,
                taxonomy=taxonomy,
                max_length=model_args.max_length,
                batch_size=training_args.per_device_eval_batch_size,
                device=training_args.device,
            )
            metrics = evaluate_verifier(verifier, eval_examples, taxonomy, EvalSettings())
            write_json(output_dir / "eval_results.json", metrics)
        write_json(output_dir / "verifier_data_summary.json", summary)
    macro = metrics.get("macro_f1")
    logger.info(
        "verifier saved to %s: %d train / %d eval texts%s",
        output_dir,
        len(train_examples),
        len(eval_examples),
        "" if macro is None or math.isnan(macro) else f", eval macro-F1 {macro:.4f}",
    )
    return TrainResult(
        output_dir,
        len(train_examples),
        len(eval_examples),
        counts,
        report.to_dict(),
        metrics,
        trainer.model,
        tokenizer,
    )


def parse_train_args(
    argv: Sequence[str],
) -> tuple[VerifierModelArguments, VerifierDataArguments, VerifierTrainingArguments]:
    """`--config recipe.yaml` plus `--key value` overrides (TRL's parser)."""
    from erv.io.recipes import parse_recipe

    model_args, data_args, training_args = parse_recipe(
        (VerifierModelArguments, VerifierDataArguments, VerifierTrainingArguments), argv, "erv verifier train"
    )
    return model_args, data_args, training_args


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_args, data_args, training_args = parse_train_args(argv)
    result = train_verifier(model_args, data_args, training_args)
    macro = result.metrics.get("macro_f1")
    print(
        f"erv verifier train: done: {result.train_examples} train / {result.eval_examples} eval texts, "
        f"model in {result.output_dir}" + ("" if macro is None else f", eval macro-F1 {macro:.4f}")
    )
    return 0
