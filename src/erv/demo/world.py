"""The demo's dataset on disk: clips, DFEW-style label files, records, verifier text, a tiny release.

Laid out as a user's data would be, and turned into records by `erv data prepare` like theirs:

    data/clips/NNNNN.mp4                     every clip (H.264 + AAC)
    data/label/single_trainset_5.csv         DFEW fold-5 layout: the GRPO training clips
    data/label/single_testset_5.csv          ... and the test clips
    data/sft/labels.csv, explanations.csv    the SFT clips (an EMER-style table with reasons)
    data/records/{sft.json, grpo_train.json, test.jsonl}    erv data prepare's output
    data/verifier/{train,held_out}.jsonl     emotion-labelled text (erv verifier data format)
    models/release/                          a tiny random HumanOmni release (checkpoint, towers, BERT)
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

from erv.data.emotions import DFEW
from erv.io.jsonl import atomic_write_text
from erv.testing.emotion_world import (
    ClipSpec,
    WorldConfig,
    best_accuracy,
    draw_clips,
    explanation,
    verifier_texts,
    vocabulary_texts,
    write_world_clip,
)


@dataclass(frozen=True)
class Sizes:
    """How many clips and texts each split gets."""

    sft: int
    grpo: int
    test: int
    verifier_train: int
    verifier_held_out: int


# The SFT clips are clear examples (both channels show the gold emotion), as curated SFT sets such
# as EMER are; the GRPO and test clips are as ambiguous as the world's defaults make them.
SFT_WORLD = WorldConfig(visual_reliability=1.0, audio_reliability=1.0)

FULL = Sizes(sft=420, grpo=280, test=420, verifier_train=1400, verifier_held_out=280)
QUICK = Sizes(sft=14, grpo=14, test=14, verifier_train=140, verifier_held_out=28)


@dataclass(frozen=True)
class LLMShape:
    """The tiny HumanOmni's language model (towers and BERT are the `humanomni-tiny` preset's)."""

    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int = 1024
    audio_init_std: float = 0.3


@dataclass(frozen=True)
class DemoData:
    checkpoint: Path
    bert: Path
    sft_records: Path
    grpo_records: Path
    test_records: Path
    verifier_train: Path
    verifier_held_out: Path
    clips: dict[str, ClipSpec]
    sft_ids: list[str]
    grpo_ids: list[str]
    test_ids: list[str]
    config: WorldConfig  # the world of the GRPO and test clips
    sft_config: WorldConfig  # the world of the SFT clips


def _dfew_csv(path: Path, clips: list[ClipSpec]) -> Path:
    body = "".join(f"{clip.id},{DFEW.label_id(clip.gold)}\n" for clip in clips)
    atomic_write_text(path, "video_name,label\n" + body)
    return path


def _explanations_csv(path: Path, clips: list[ClipSpec], seed: int, config: WorldConfig) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["names", "emotions", "reasons"])
    for clip in clips:
        writer.writerow([clip.id, clip.gold, explanation(clip, seed, config)])
    atomic_write_text(path, buffer.getvalue())
    return path


def write_release_for_world(root: Path, shape: LLMShape, seed: int) -> Path:
    """A tiny random HumanOmni whose LLM tokenizer knows the world's words (short completions)."""
    from erv.model import preset_config
    from erv.testing.tiny_checkpoint import write_release

    specials = shape.vocab_size - 12  # <|endoftext|>, <|im_start|>, <|im_end|> follow the BPE pieces
    config = preset_config(
        "humanomni-tiny",
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        max_window_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        vocab_size=shape.vocab_size,
        bos_token_id=specials,
        eos_token_id=specials + 2,
        tie_word_embeddings=False,
    )
    # A random Whisper at the default init (0.02) is dominated by its position embeddings: two
    # clips with different voices give almost the same states. Larger random weights let its
    # output carry its input, as a trained encoder's does.
    config.audio_config.init_std = shape.audio_init_std
    return write_release(root, config, seed=seed, head_scale=1.0, texts=vocabulary_texts() * 2)


def write_clips(folder: Path, clips: list[ClipSpec], config: WorldConfig) -> None:
    for clip in clips:
        path = folder / f"{clip.id}.mp4"
        if not path.exists():
            write_world_clip(path, clip, config)


def build_world(
    root: Path,
    sizes: Sizes,
    *,
    seed: int = 0,
    config: WorldConfig = WorldConfig(),
    sft_config: WorldConfig | None = None,
    shape: LLMShape = LLMShape(),
) -> DemoData:
    """Everything the demo trains and tests on (module doc), under `root`."""
    from erv.data.prepare import prepare
    from erv.verifier.data import TextExample, write_examples

    sft_config = sft_config or config

    data = root / "data"
    clips_dir, labels_dir, sft_dir, records, text_dir = (
        data / "clips",
        data / "label",
        data / "sft",
        data / "records",
        data / "verifier",
    )
    for folder in (clips_dir, labels_dir, sft_dir, records, text_dir):
        folder.mkdir(parents=True, exist_ok=True)
    sft = draw_clips(sizes.sft, seed, sft_config, first_id=1)
    later = draw_clips(sizes.grpo + sizes.test, seed + 1, config, first_id=sizes.sft + 1)
    grpo, test = later[: sizes.grpo], later[sizes.grpo :]
    every = sft + later
    write_clips(clips_dir, every, config)

    _dfew_csv(labels_dir / "single_trainset_5.csv", grpo)
    test_labels = _dfew_csv(labels_dir / "single_testset_5.csv", test)
    sft_labels = _dfew_csv(sft_dir / "labels.csv", sft)
    sft_reasons = _explanations_csv(sft_dir / "explanations.csv", sft, seed, config)
    common = dict(dataset="DFEW", video_dir=str(clips_dir))
    prepare(
        **common,
        out=str(records / "sft.json"),
        fmt="sft",
        labels=str(sft_labels),
        explanations=str(sft_reasons),
        leak_check_labels=str(test_labels),
    )
    prepare(**common, out=str(records / "grpo_train.json"), fmt="grpo", label_dir=str(labels_dir), fold=5)
    prepare(**common, out=str(records / "test.jsonl"), fmt="infer", label_dir=str(labels_dir), fold=5, split="test")

    examples = [TextExample(text, labels) for text, labels in verifier_texts(sizes.verifier_train, seed)]
    write_examples(text_dir / "train.jsonl", examples)
    held_out = [TextExample(t, lab) for t, lab in verifier_texts(sizes.verifier_held_out, seed, held_out=True)]
    write_examples(text_dir / "held_out.jsonl", held_out)

    release = root / "models" / "release"
    checkpoint = write_release_for_world(release, shape, seed)
    return DemoData(
        checkpoint=checkpoint,
        bert=release / "bert-tiny",
        sft_records=records / "sft.json",
        grpo_records=records / "grpo_train.json",
        test_records=records / "test.jsonl",
        verifier_train=text_dir / "train.jsonl",
        verifier_held_out=text_dir / "held_out.jsonl",
        clips={clip.id: clip for clip in every},
        sft_ids=[c.id for c in sft],
        grpo_ids=[c.id for c in grpo],
        test_ids=[c.id for c in test],
        config=config,
        sft_config=sft_config,
    )


def describe(data: DemoData) -> dict[str, object]:
    """What the report says about the world: sizes, reliabilities, accuracy ceilings, incoherent share."""
    config = data.config
    sft = [data.clips[i] for i in data.sft_ids]
    return {
        "clips": {"sft": len(data.sft_ids), "grpo": len(data.grpo_ids), "test": len(data.test_ids)},
        "reliability": config.visual_reliability,
        "config": dataclasses.asdict(config),
        "sft_config": dataclasses.asdict(data.sft_config),
        "best_accuracy": best_accuracy(config),
        "best_accuracy_visual": best_accuracy(config, audio=False),
        "best_accuracy_audio": best_accuracy(config, visual=False),
        "sft_incoherent": sum(c.bystander is not None for c in sft) / max(len(sft), 1),
    }


def write_verifier_backbone(folder: Path, seed: int) -> Path:
    """A tiny random RoBERTa (word-level tokenizer over the world's words) for `erv verifier train`."""
    from erv.testing.synthetic_text import save_tiny_verifier, word_tokenizer

    words = {word.strip(".,") for text in vocabulary_texts() for word in text.split()}
    tokenizer = word_tokenizer(w for w in words if w)  # lower-cased and sorted there
    options = dict(hidden=64, layers=2, heads=4, dropout=0.0, init_range=0.1, seed=seed, max_positions=64)
    return save_tiny_verifier(folder, tokenizer, DFEW.labels, **options)
