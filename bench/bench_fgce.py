"""One GRPO step of the FG-CE reward: `FGCEReward` against a one-request-at-a-time per-sentence loop.

The step: 16 prompts × 16 generations; about 60 % of the answers are right (only those are
judged); each explanation has 4–8 sentences, about half of them taken from a pool shared by
the generations of its prompt, and about a quarter of the generations repeat another one of
their group word for word (as at low temperature). The judge is the OpenAI-compatible test
server in its own process on 127.0.0.1 with a fixed latency per request, so this measures
request scheduling, not a model.

- baseline: the reference scripts' pattern, one blocking request at a time — for each
  sentence of each judged completion a classification request, then (unless "others") a
  score request, nothing de-duplicated — timed on the first `--baseline-subset` judged completions
  and extrapolated linearly to all of them by request count (a sequential loop's time is the sum of its requests);
- `FGCEReward.compute`: the whole step (parsing, splitting, every request in flight at once up
  to `--concurrency`, duplicates sent once), no reply cache, `--repeats` times (median).

The rewards of both paths are compared on the subset (the server's replies are a function of
the request, so they must agree). Exits 1 if `FGCEReward` is slower than 1/10 of the baseline.

    python bench/bench_fgce.py [--latency 0.05] [--concurrency 32] [--baseline-subset 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from erv.data.completions import extract_think, split_sentences  # noqa: E402
from erv.judge.client import JudgeClient, JudgeConfig  # noqa: E402
from erv.judge.prompts import fgce_classify_prompt, fgce_score_prompt, parse_fgce_classification, parse_fgce_score  # noqa: E402
from erv.rewards import FGCEReward, fgce_reward_value  # noqa: E402

LABELS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
CUES = (
    "her brows draw together",
    "his voice drops to a whisper",
    "she looks away from the camera",
    "the speaker's lips tighten",
    "his shoulders slump",
    "she laughs briefly",
    "the pitch rises sharply",
    "he repeats the same words",
    "her hands tremble",
    "the subtitles mention a loss",
)


def make_step(prompts: int, generations: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    completions, solutions = [], []
    for p in range(prompts):
        gold = LABELS[p % len(LABELS)]
        shared = [f"In clip {p}, {rng.choice(CUES)} (shared cue {k})." for k in range(6)]
        group: list[str] = []
        for g in range(generations):
            if group and rng.random() < 0.25:
                completions.append(rng.choice(group))  # a word-for-word repeat
                solutions.append(gold)
                continue
            n = rng.randint(4, 8)
            sentences = [
                rng.choice(shared)
                if rng.random() < 0.5
                else f"Generation {g} of clip {p} notes that {rng.choice(CUES)}."
                for _ in range(n - 1)
            ]
            sentences.append(f"Overall the person seems {gold}.")
            answer = gold if rng.random() < 0.6 else LABELS[(p + 1) % len(LABELS)]
            text = f"<think>{' '.join(sentences)}</think>\n<answer>{answer}</answer>"
            group.append(text)
            completions.append(text)
            solutions.append(gold)
    return completions, solutions


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "erv.testing.judge_server", "--port", "0", "--latency", str(latency), "--seed", "7"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # "erv judge test server on http://127.0.0.1:PORT/v1 (...)"
    return proc, line.split(" on ", 1)[1].split()[0]


def sequential_baseline(
    client: JudgeClient, completions: list[str], gold: list[str]
) -> tuple[list[float], int, float]:
    """The naive loop: one blocking request after another, no de-duplication."""

    async def run() -> tuple[list[float], int]:
        rewards, requests = [], 0
        for text, label in zip(completions, gold, strict=True):
            think = extract_think(text) or ""
            context = think.strip()
            items = []
            for sentence in split_sentences(think, "punkt"):
                stage1 = await client.complete(fgce_classify_prompt(sentence, context), json_mode=True)
                requests += 1
                verdict = parse_fgce_classification(stage1.text)
                if verdict["function"] == "others":
                    items.append(("others", verdict["modality"], 0.0))
                    continue
                stage2 = await client.complete(
                    fgce_score_prompt(sentence, verdict["function"], emotion=label, context=context), json_mode=True
                )
                requests += 1
                items.append((verdict["function"], verdict["modality"], float(parse_fgce_score(stage2.text))))
            rewards.append(fgce_reward_value(items))
        await client.aclose()
        return rewards, requests

    start = time.perf_counter()
    rewards, requests = asyncio.run(run())
    return rewards, requests, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--baseline-subset", type=int, default=12, help="judged completions the baseline is timed on")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message="NLTK's trained English Punkt")
    os.environ.setdefault("ERV_BENCH_KEY", "bench-key")
    completions, solutions = make_step(args.prompts, args.generations)
    pairs = zip(completions, solutions, strict=True)
    judged = [(c, s) for c, s in pairs if c.split("<answer>")[1].startswith(s + "<")]
    proc, base_url = start_server(args.latency)
    try:
        config = JudgeConfig(
            model="test-judge",
            base_url=base_url,
            api_key_env="ERV_BENCH_KEY",
            concurrency=args.concurrency,
            max_retries=0,
            timeout=60,
        )
        client = JudgeClient(config)
        subset = judged[: args.baseline_subset]
        base_rewards, base_requests, base_seconds = sequential_baseline(
            client, [c for c, _ in subset], [s for _, s in subset]
        )
        per_request = base_seconds / base_requests

        reward = FGCEReward(client, taxonomy="DFEW")
        check = reward.compute([c for c, _ in subset], solution=[s for _, s in subset])
        if any(abs(a - b) > 1e-9 for a, b in zip(check, base_rewards, strict=True)):
            print("MISMATCH between FGCEReward and the baseline on the subset", file=sys.stderr)
            return 2
        times, stats = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            rewards = reward.compute(completions, solution=solutions)
            times.append(time.perf_counter() - start)
            stats = dict(reward.last_stats)
        assert stats is not None and all(r is not None for r in rewards)
        # Requests the naive loop would send for the whole step: every sentence, plus a score for
        # every sentence not classified "others" (the same classification the reward received).
        naive_requests = int(stats["sentences"] + stats["sentences"] * (1 - stats["share_others"]))
        baseline_total = per_request * naive_requests
        median = statistics.median(times)
        print(
            f"step: {len(completions)} completions, {int(stats['judged'])} judged, "
            f"{int(stats['sentences'])} sentences "
            f"({int(stats['unique_sentences'])} distinct classification requests, {int(stats['unique_scores'])} "
            f"distinct score requests); server latency {args.latency * 1000:.0f} ms; concurrency {args.concurrency}"
        )
        print(
            f"baseline (sequential, no de-duplication): {base_requests} requests on {len(subset)} completions in "
            f"{base_seconds:.2f} s = {per_request * 1000:.1f} ms/request; whole step {naive_requests} requests "
            f"-> {baseline_total:.1f} s (extrapolated)"
        )
        print(
            f"FGCEReward: {int(stats['requests'])} requests, median {median:.2f} s over {args.repeats} repeats "
            f"({', '.join(f'{t:.2f}' for t in times)} s)"
        )
        ratio = median / baseline_total
        print(
            f"ratio FGCEReward / baseline = {ratio:.4f} (1/{1 / ratio:.1f}); requests saved by de-duplication: "
            f"{naive_requests - int(stats['requests'])} of {naive_requests}"
        )
        return 0 if ratio <= 0.1 else 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
