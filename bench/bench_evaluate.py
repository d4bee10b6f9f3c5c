"""`erv evaluate` on 100,000 predictions with judgments (target: < 10 s incl. bootstrap).

Times the whole command in a fresh process (reading, parsing, normalising, metrics, 1,000
bootstrap resamples, JSON + markdown output), and, as the baseline measured in the same run,
the classic index bootstrap (1,000 × n resampled indices in numpy) of the same six metrics
against erv's multinomial bootstrap.

    python bench/bench_evaluate.py [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = [
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
]
SURFACE = {"anger": "Angry", "happiness": "happy", "sadness": "Sad.", "anxiety": "anxious"}


def make_files(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    preds, judgs = [], []
    for i in range(n):
        gold = rng.choice(LABELS)
        answer = gold if rng.random() < 0.57 else rng.choice(LABELS + ["confused"])
        think = " ".join(
            rng.choice(
                [
                    "He frowns.",
                    "Her voice trembles.",
                    "She smiles warmly.",
                    "The music is tense.",
                    "He shouts at them.",
                ]
            )
            for _ in range(5)
        )
        preds.append(
            json.dumps(
                {
                    "id": f"{i:05d}",
                    "video": f"/data/MAFW/clips/{i:05d}.mp4",
                    "dataset": "MAFW",
                    "gold": gold,
                    "response": f"<think>{think}</think>\n<answer>{SURFACE.get(answer, answer)}</answer>",
                }
            )
        )
        if rng.random() < 0.98:
            emotion = gold if rng.random() < 0.5 else rng.choice(LABELS)
            judgs.append(
                json.dumps(
                    {
                        "id": f"{i:05d}",
                        "judge": "gpt-4.1-mini",
                        "explanation_emotion": emotion,
                        "raw": emotion,
                        "error": None,
                    }
                )
            )
    p, j = folder / "pred.jsonl", folder / "judg.jsonl"
    p.write_text("\n".join(preds) + "\n")
    j.write_text("\n".join(judgs) + "\n")
    return p, j


def bootstrap_comparison(n: int, resamples: int = 1000) -> tuple[float, float]:
    """(index bootstrap seconds, erv multinomial bootstrap seconds) for all six metrics."""
    from erv.data.emotions import MAFW
    from erv.eval.metrics import bootstrap_intervals, encode

    rng = np.random.default_rng(0)
    k = len(MAFW.labels)
    gold = rng.integers(0, k, size=n)
    pred = np.where(rng.random(n) < 0.57, gold, rng.integers(0, k + 1, size=n))
    expl = np.where(rng.random(n) < 0.98, np.where(rng.random(n) < 0.5, gold, rng.integers(0, k, size=n)), -1)
    start = time.perf_counter()
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        g, p, e = gold[idx], pred[idx], expl[idx]
        c, j = p == g, e >= 0
        support = np.bincount(g, minlength=k)
        hits = np.bincount(g[c], minlength=k)
        present = support > 0
        _ = (
            c.mean(),
            (hits[present] / support[present]).mean(),
            (j & (e == g)).sum() / j.sum(),
            (j & (e == p)).sum() / j.sum(),
            (j & (e == g) & c).sum() / j.sum(),
            (j & (e == g) & c).sum() / (j & c).sum(),
        )
    index_seconds = time.perf_counter() - start
    labels = list(MAFW.labels) + ["unknown"]
    outcomes = encode(
        [labels[i] for i in gold], [labels[i] for i in pred], MAFW, [None if i < 0 else labels[i] for i in expl]
    )
    start = time.perf_counter()
    bootstrap_intervals(outcomes, n_resamples=resamples, seed=0)
    return index_seconds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        p, j = make_files(folder, args.n)
        cmd = [
            sys.executable,
            "-m",
            "erv.cli",
            "evaluate",
            "--predictions",
            str(p),
            "--dataset",
            "MAFW",
            "--judgments",
            str(j),
            "--json",
            str(folder / "m.json"),
            "--report",
            str(folder / "r.md"),
        ]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        m = json.loads((folder / "m.json").read_text())
        index_s, ours_s = bootstrap_comparison(args.n)
    best, med = min(times), statistics.median(times)
    print(
        f"erv evaluate, n={args.n} with judgments, 1000 bootstrap resamples: "
        f"best {best:.2f} s, median {med:.2f} s over {args.repeats} runs (whole process, incl. imports)"
    )
    print(f"  -> WAR {m['war']:.4f}  EEA {m['eea']:.4f}  unjudged {m['unjudged']}")
    print(
        f"bootstrap of all six metrics, 1000 resamples: classic index resampling {index_s:.2f} s, "
        f"erv multinomial {ours_s * 1000:.1f} ms -> {index_s / ours_s:.0f}x faster"
    )
    print(f"target: whole command < 10 s -> {'PASS' if med < 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
