"""Helpers shared by the judge tests: prediction files and a running test server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.helpers.paths import REPO

DFEW_LABELS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")


def write_predictions(
    path: Path, n: int, *, no_think_every: int = 0, labels: Iterable[str] = DFEW_LABELS, dataset: str = "DFEW"
) -> list[dict[str, Any]]:
    """`n` predictions with distinct explanations; every `no_think_every`-th has no <think>."""
    labels = tuple(labels)
    records = []
    for i in range(n):
        gold = labels[i % len(labels)]
        answer = labels[(i * 3) % len(labels)]
        if no_think_every and i % no_think_every == no_think_every - 1:
            response = f"<answer>{answer}</answer>"
        else:
            response = (
                f"<think>In clip {i} the speaker's brows are drawn and the voice is tense; "
                f"sample {i} suggests {answer}.</think>\n<answer>{answer}</answer>"
            )
        records.append(
            {
                "id": f"clip{i:04d}",
                "video": f"clips/clip{i:04d}.mp4",
                "dataset": dataset,
                "gold": gold,
                "response": response,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def erv_judge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "erv.cli", "judge", *args]


def run_erv_judge(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(erv_judge_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
