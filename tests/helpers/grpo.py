"""A tiny GRPO world for the trainer tests: a tiny HumanOmni release, clips, records, a verifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from erv.data.prepare import build_record
from erv.data.prompts import TASK_PROMPT
from erv.testing.synthetic_media import write_clip
from erv.testing.tiny_checkpoint import write_tiny_release
from tests.helpers.paths import write_records

LABELS = ("happy", "sad", "angry", "neutral", "surprise", "fear")
VERIFIER_WORDS = (
    "he she is sad angry happy neutral surprise fear looks smiles cries shouts the and . < > think".split()
)


@dataclass
class GrpoWorld:
    root: Path
    checkpoint: Path
    records: Path
    verifier: Path
    clips: list[Path]


def grpo_records(clips: list[Path], prompts: list[str] | None = None) -> list[dict]:
    return [
        build_record(f"clip{i}", clip, LABELS[i % len(LABELS)], "grpo", prompts[i] if prompts else TASK_PROMPT, "DFEW")
        for i, clip in enumerate(clips)
    ]


def build_world(root: Path, clips: int = 4) -> GrpoWorld:
    from erv.testing.synthetic_text import save_tiny_verifier, word_tokenizer

    checkpoint = write_tiny_release(root, seed=0)
    paths = []
    for i in range(clips):
        path = root / f"clip{i}.mp4"
        write_clip(path, seconds=0.8, fps=8, size=(48, 32), audio_rate=16000, channels=1, seed=i)
        paths.append(path)
    records = write_records(root / "grpo.jsonl", grpo_records(paths))
    tokenizer = word_tokenizer(VERIFIER_WORDS)
    verifier = save_tiny_verifier(
        root / "verifier", tokenizer, ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
    )
    return GrpoWorld(root, checkpoint, records, verifier, paths)
