#!/usr/bin/env python
"""Write a small synthetic SFT set for `configs/sft/tiny.yaml`: H.264 + AAC clips and EMER-style records.

    python scripts/make_tiny_sft_data.py [OUT_DIR] [--records N] [--format sft|grpo]
    erv sft --config configs/sft/tiny.yaml
    python scripts/make_tiny_sft_data.py data/grpo_tiny --format grpo && erv grpo --config configs/grpo/tiny.yaml

OUT_DIR defaults to data/sft_tiny (the recipe's dataset_name is OUT_DIR/records.json with
video_root OUT_DIR). Each record has the `erv data prepare --format sft` layout: a human turn
`<video>\\n<audio>\\n` + the task prompt and a gpt turn `<think>…</think>\\n<answer>label</answer>`;
answers have different lengths, so padding and loss normalisation are exercised.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from erv.data.prepare import build_record
from erv.data.prompts import TASK_PROMPT
from erv.testing.synthetic_media import write_clip

EXPLANATIONS = {
    "happy": "The person smiles widely and the voice sounds bright.",
    "sad": "The eyes look down, the shoulders drop and the voice is low and slow, with long pauses.",
    "angry": "Brows are drawn together.",
    "surprise": "The mouth opens and the eyebrows rise suddenly as the sound gets louder and the person leans back.",
    "neutral": "The face is calm.",
    "fear": "The person steps back, eyes wide, and the voice trembles.",
}


def make_tiny_sft_data(out_dir: str | Path, records: int = 6, *, seconds: float = 0.6, fmt: str = "sft") -> Path:
    """Clips `clip_K.mp4` and `records.json` under `out_dir`; returns the records file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(EXPLANATIONS)
    rows = []
    for k in range(records):
        name = f"clip_{k}.mp4"
        if not (out / name).exists():
            write_clip(out / name, seconds=seconds, fps=10, size=(64, 48), audio_rate=16000, channels=1, seed=k)
        label = labels[k % len(labels)]
        if fmt == "grpo":  # the gpt turn is the bare (DFEW) label
            rows.append(build_record(f"s{k}", Path(name), label, "grpo", TASK_PROMPT, "DFEW"))
        else:
            rows.append(build_record(f"s{k}", Path(name), label, "sft", TASK_PROMPT, "synthetic", EXPLANATIONS[label]))
    path = out / "records.json"
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="data/sft_tiny")
    parser.add_argument("--records", type=int, default=6)
    parser.add_argument(
        "--format",
        choices=["sft", "grpo"],
        default="sft",
        help="sft: think/answer targets; grpo: bare DFEW labels (configs/grpo/tiny.yaml)",
    )
    args = parser.parse_args(argv)
    path = make_tiny_sft_data(args.out_dir, args.records, fmt=args.format)
    print(f"make_tiny_sft_data: wrote {args.records} records and clips to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
