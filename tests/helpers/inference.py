"""Records, clips and runs shared by the `erv infer` tests (fixtures in tests/inference/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from erv.data.prepare import build_record
from erv.data.prompts import TASK_PROMPT
from tests.helpers.paths import REPO, subprocess_env

# Instructions of clearly different token lengths, so batches mix prompt lengths.
INSTRUCTIONS = (TASK_PROMPT, "Which emotion?", "Which emotion does the person show? Answer in <answer> </answer>.")
LABELS = ("happy", "sad", "angry", "fear", "neutral", "surprise", "disgust")


def write_clips(folder: Path, n: int = 8) -> Path:
    """`n` readable clips of different lengths and sizes, one without audio, one corrupt file."""
    from erv.testing.synthetic_media import write_clip

    for i in range(n):
        write_clip(folder / f"clip{i}.mp4", seconds=0.4 + 0.1 * (i % 8), size=(64 + 8 * (i % 3), 48), seed=i)
    write_clip(folder / "silent.mp4", seconds=0.5, size=(64, 48), audio_rate=None, seed=99)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


def record(sample_id: str, video: Path | str, i: int) -> dict:
    return build_record(
        sample_id, Path(video), LABELS[i % len(LABELS)], "grpo", INSTRUCTIONS[i % len(INSTRUCTIONS)], "DFEW"
    )


def torchrun(nproc: int, *infer_args: str) -> list[str]:
    """The command line of `erv infer` under torchrun with `nproc` CPU processes (gloo)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "erv.cli",
        "infer",
        *infer_args,
    ]


def run_command(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)
