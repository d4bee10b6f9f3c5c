"""Throughput of `erv judge` against a sequential, one-request-at-a-time loop (the paper's script).

Both talk to the OpenAI-compatible test server (a separate process on 127.0.0.1) with a fixed
latency per request, so the measurement is about request scheduling, not a model. The
baseline is timed on a subset of the same explanations and extrapolated linearly to all of
them (a sequential loop's time is the sum of its requests); the ratio is computed in the
same run. Exits 1 if `erv judge` takes more than 1/20 of the baseline.

    python bench/bench_judge.py [--n 2000] [--latency 0.3] [--concurrency 32] [--baseline-subset 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from erv.judge.client import JudgeConfig  # noqa: E402
from erv.judge.prompts import explanation_emotion_prompt  # noqa: E402
from erv.judge.run import run_judge  # noqa: E402

LABELS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "erv.testing.judge_server", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # "erv judge test server on http://127.0.0.1:PORT/v1 (...)"
    url = line.split(" on ", 1)[1].split()[0]
    return proc, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--baseline-subset", type=int, default=40)
    args = parser.parse_args()

    os.environ.setdefault("ERV_BENCH_KEY", "bench-key")
    proc, base_url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pred = Path(tmp) / "P.jsonl"
            with pred.open("w") as f:
                for i in range(args.n):
                    label = LABELS[i % len(LABELS)]
                    f.write(
                        json.dumps(
                            {
                                "id": f"s{i:05d}",
                                "gold": label,
                                "dataset": "DFEW",
                                "response": f"<think>Sample {i}: the speaker frowns, the voice is low and slow; "
                                f"it reads as {label}.</think><answer>{label}</answer>",
                            }
                        )
                        + "\n"
                    )

            # Baseline: the paper's loop, one blocking SDK call after another, on a subset.
            from openai import OpenAI

            client = OpenAI(api_key="bench-key", base_url=base_url, timeout=60, max_retries=2)
            subset = [
                explanation_emotion_prompt(
                    f"Sample {i}: the speaker frowns, the voice is low and slow; "
                    f"it reads as {LABELS[i % len(LABELS)]}.",
                    "DFEW",
                )
                for i in range(args.baseline_subset)
            ]
            start = time.perf_counter()
            for prompt in subset:
                client.chat.completions.create(
                    model="test-judge", messages=[{"role": "user", "content": prompt}], temperature=0
                )
            baseline_subset_s = time.perf_counter() - start
            client.close()
            per_request = baseline_subset_s / len(subset)
            baseline_s = per_request * args.n

            # erv judge: the full job (reading predictions, prompts, records appended and compacted).
            config = JudgeConfig(
                model="test-judge",
                base_url=base_url,
                api_key_env="ERV_BENCH_KEY",
                concurrency=args.concurrency,
                timeout=60,
                max_retries=2,
                cache=None,
            )
            start = time.perf_counter()
            summary = run_judge(pred, "DFEW", Path(tmp) / "J.jsonl", config, progress=False)
            judge_s = time.perf_counter() - start
            assert summary.judged == args.n and summary.failed == 0, summary
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    ratio = judge_s / baseline_s
    ideal = args.n / args.concurrency * args.latency
    print(f"server latency {args.latency:.3f} s, {args.n} explanations, concurrency {args.concurrency}")
    print(
        f"baseline (sequential SDK loop): {len(subset)} requests in {baseline_subset_s:.2f} s = "
        f"{per_request * 1000:.1f} ms/request "
        f"-> extrapolated to {args.n}: {baseline_s:.1f} s (1 repetition, linear extrapolation)"
    )
    print(
        f"erv judge: {args.n} judged in {judge_s:.2f} s ({args.n / judge_s:.1f} req/s; "
        f"ideal {ideal:.1f} s at this latency)"
    )
    print(
        f"ratio erv judge / baseline = {ratio:.4f} (1/{1 / ratio:.1f}); target <= 1/20 = 0.05: "
        f"{'PASS' if ratio <= 0.05 else 'FAIL'}"
    )
    return 0 if ratio <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
