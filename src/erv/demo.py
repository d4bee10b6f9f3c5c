"""`erv demo`: the framework end to end on a synthetic dataset, offline, in about a minute.

What runs for real (the same code paths as on a cluster):
1. a synthetic DFEW-style dataset: fold-5 label files and H.264 + AAC clips;
2. `erv data prepare` (label parsing, video matching, leakage check) → inference records;
3. a tiny random HumanOmni release (checkpoint, SigLIP, Whisper, BERT, tokenizers) loaded with
   `erv.model.load_pretrained`, media decoded in DataLoader workers, batched generation;
4. an Emotional Rationale Verifier trained with the `erv verifier train` recipe machinery on a
   synthetic emotion-text corpus, and evaluated on held-out sentence templates;
5. the GRPO rewards (format, accuracy, ERV explanation reward) on model-style completions;
6. `erv judge` through the real OpenAI SDK against a local OpenAI-compatible server;
7. `erv evaluate`: WAR/UAR, EEA/EPC/FCR with bootstrap intervals, report and plots.

What is simulated, and said so in the report: the SFT and GRPO stages are not part of this
release, and a random tiny model answers nonsense, so the coherence part uses two scripted
policies over the same clips that give the same answers (right about 60% of the time) and
differ only in their explanations: "answer-only" (sentences about random emotions, like a
format+answer GRPO baseline) and "coherent" (sentences that mostly describe the emotion it
answers, what the ERV reward pays for).
The local judge names the emotion whose cue words dominate an explanation. Everything is
seeded: two runs give the same numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from erv.data.emotions import DFEW
from erv.io.jsonl import write_json, write_jsonl

TEST_CLIPS_PER_CLASS = 3
TRAIN_CLIPS = 7
POLICIES = ("answer-only", "coherent")


# ---------------------------------------------------------------- small helpers


class Stages:
    """Prints numbered stage lines with timings; keeps them for the report."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        number = len(self.done) + 1
        print(f"[{number}/{self.total}] {title} ...", flush=True)
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.done.append((title, seconds))
        print(f"[{number}/{self.total}] {title}: done in {seconds:.1f} s", flush=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Library chatter (weight-loading bars, trainer logs) would bury the demo's own lines."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            hf_logging.set_verbosity(previous)
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------- 1-2: data


def make_dataset(root: Path, seed: int) -> Path:
    """DFEW-style label folder (fold 5) and clips; returns the prepared test records file."""
    from erv.data.prepare import prepare
    from erv.testing.synthetic_media import write_clip

    labels_dir, clips = root / "label", root / "clip"
    labels_dir.mkdir(parents=True, exist_ok=True)
    clips.mkdir(parents=True, exist_ok=True)
    test = [(i + 1, DFEW.labels[i % len(DFEW)]) for i in range(TEST_CLIPS_PER_CLASS * len(DFEW))]
    train = [(len(test) + i + 1, DFEW.labels[i % len(DFEW)]) for i in range(TRAIN_CLIPS)]
    for name, rows in (("single_testset_5.csv", test), ("single_trainset_5.csv", train)):
        body = "".join(f"{clip},{DFEW.label_id(label)}\n" for clip, label in rows)
        (labels_dir / name).write_text("video_name,label\n" + body)
    for clip, _ in test:  # only the test clips are used below
        write_clip(
            clips / f"{clip:05d}.mp4",
            seconds=1.0,
            fps=10,
            size=(96, 64),
            audio_rate=44100,
            channels=2,
            seed=seed * 1000 + clip,
        )
    out = root / "dfew_fold5_test.jsonl"
    prepare(
        dataset="DFEW",
        video_dir=str(clips),
        out=str(out),
        fmt="infer",
        label_dir=str(labels_dir),
        fold=5,
        split="test",
    )
    return out


# ---------------------------------------------------------------- 3: model inference


def run_tiny_model(records_path: Path, root: Path, out: Path, seed: int) -> dict[str, Any]:
    import torch

    from erv.io.jsonl import read_json_records
    from erv.model import load_pretrained
    from erv.model.dataset import HumanOmniDataset, make_dataloader
    from erv.testing.tiny_checkpoint import write_tiny_release

    checkpoint = write_tiny_release(root, seed=seed)
    model, processor = load_pretrained(checkpoint, torch_dtype=torch.float32)
    model.eval()
    records = read_json_records(records_path)
    gold = {str(r["id"]): r["conversations"][1]["value"] for r in records}
    dataset = HumanOmniDataset(records, processor)
    loader = make_dataloader(dataset, batch_size=8, num_workers=2)
    rows = []
    with torch.inference_mode():
        for batch in loader:
            new = model.generate(**processor.model_inputs(batch), max_new_tokens=24, do_sample=False)
            for sample_id, video, text in zip(batch["ids"], batch["videos"], processor.batch_decode(new), strict=True):
                rows.append(
                    {"id": sample_id, "video": video, "dataset": "DFEW", "gold": gold[sample_id], "response": text}
                )
    write_jsonl(out, rows)
    return {
        "checkpoint": str(checkpoint),
        "samples": len(rows),
        "batches": len(loader),
        "example_response": rows[0]["response"] if rows else None,
    }


# ---------------------------------------------------------------- 4: verifier


def train_demo_verifier(root: Path, seed: int) -> dict[str, Any]:
    import torch

    from erv.testing.synthetic_text import corpus_words, synthetic_corpus, tiny_roberta, word_tokenizer
    from erv.verifier.data import TextExample, write_examples
    from erv.verifier.train import parse_train_args, train_verifier

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = word_tokenizer(corpus_words())
    base = tiny_roberta(tokenizer, DFEW.labels, hidden=64, layers=1, heads=4, dropout=0.0, init_range=0.1, seed=seed)
    base.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    write_examples(root / "train.jsonl", [TextExample(t, lab) for t, lab in synthetic_corpus(800, seed=seed + 1)])
    write_examples(
        root / "held_out.jsonl",
        [TextExample(t, lab) for t, lab in synthetic_corpus(300, seed=seed + 2, held_out=True)],
    )
    argv = [
        "--model_name_or_path",
        str(root / "base"),
        "--head",
        "taxonomy",
        "--max_length",
        "32",
        "--train_files",
        str(root / "train.jsonl"),
        "--eval_files",
        str(root / "held_out.jsonl"),
        "--taxonomy",
        "DFEW",
        "--output_dir",
        str(root / "verifier"),
        "--num_train_epochs",
        "15",
        "--per_device_train_batch_size",
        "16",
        "--learning_rate",
        "2e-3",
        "--warmup_steps",
        "30",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--logging_steps",
        "1000",
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--seed",
        str(seed),
    ]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: extra threads only spin
    try:
        result = train_verifier(*parse_train_args(argv))
    finally:
        torch.set_num_threads(previous)
    return {
        "path": str(result.output_dir),
        "train_texts": result.train_examples,
        "held_out_texts": result.eval_examples,
        "held_out_macro_f1": result.metrics.get("macro_f1"),
        "held_out_micro_f1": result.metrics.get("micro_f1"),
    }


# ---------------------------------------------------------------- 5: scripted policies + rewards


def _explanation(rng: random.Random, emotions: Sequence[str]) -> str:
    from erv.testing.synthetic_text import CUES, HELD_OUT_TEMPLATES, SCENES, SUBJECTS

    sentences = []
    for emotion in emotions:
        text = rng.choice(HELD_OUT_TEMPLATES).format(
            s=rng.choice(SUBJECTS), c=rng.choice(CUES[emotion]), p=rng.choice(SCENES)
        )
        sentences.append(text.replace(" .", ".").capitalize())
    return " ".join(sentences)


def scripted_predictions(records_path: Path, policy: str, seed: int) -> list[dict[str, Any]]:
    """Model-style responses of a scripted policy for every test clip (see module doc)."""
    from erv.io.jsonl import read_json_records

    # Answers (and the occasional malformed completion) come from one stream shared by both
    # policies, so the policies differ only in their explanations.
    answers_rng = random.Random(f"{seed}-answers")
    rng = random.Random(f"{seed}-{policy}")
    labels = list(DFEW.labels)
    rows = []
    for record in read_json_records(records_path):
        gold = record["conversations"][1]["value"]
        answer = gold if answers_rng.random() < 0.6 else answers_rng.choice([lab for lab in labels if lab != gold])
        malformed = answers_rng.random() < 0.05  # as sampled models sometimes produce
        count = rng.randint(3, 5)
        if policy == "coherent":
            emotions = [answer if rng.random() < 0.85 else "neutral" for _ in range(count)]
        else:
            emotions = [rng.choice(labels) for _ in range(count)]
        response = f"<think>{_explanation(rng, emotions)}</think>\n<answer>{answer}</answer>"
        if malformed:
            response = response.replace("</answer>", "")
        rows.append(
            {
                "id": str(record["id"]),
                "video": record["video"],
                "dataset": "DFEW",
                "gold": gold,
                "response": response,
                "policy": policy,
            }
        )
    return rows


def score_rewards(rows: list[dict[str, Any]], verifier_path: str) -> dict[str, float]:
    from erv.rewards import ExplanationReward, accuracy_reward, format_reward

    completions = [[{"role": "assistant", "content": r["response"]}] for r in rows]
    solution = [r["gold"] for r in rows]
    dataset = [r["dataset"] for r in rows]
    explanation = ExplanationReward(verifier_path, taxonomy="DFEW")
    scores = {
        "format": format_reward(completions=completions),
        "accuracy": accuracy_reward(completions=completions, solution=solution, dataset=dataset),
        "explanation (ERV)": explanation(completions=completions, solution=solution, dataset=dataset),
    }
    out = {}
    for name, values in scores.items():
        valid = [v for v in values if v is not None]
        out[name] = sum(valid) / len(valid) if valid else float("nan")
    out["total"] = sum(out.values())
    return out


# ---------------------------------------------------------------- 6: judge


def keyword_judge_reply(body: dict[str, Any]) -> str:
    """The local judge: the label whose cue words dominate the explanation, else "unsure"."""
    from erv.testing.synthetic_text import CUES

    text = str(body["messages"][-1]["content"])
    reason = text.split("Reason:", 1)[-1].lower()
    counts = {label: sum(reason.count(cue) for cue in cues) for label, cues in CUES.items()}
    best = max(counts.values())
    if best == 0:
        return "unsure"  # outside the label list: stored as unjudged, never coerced
    return next(label for label in DFEW.labels if counts.get(label) == best)


def judge_file(predictions: Path, out: Path, base_url: str) -> dict[str, Any]:
    from erv.judge.client import JudgeConfig
    from erv.judge.run import run_judge

    config = JudgeConfig(
        model="demo-keyword-judge",
        base_url=base_url,
        api_key_env="ERV_DEMO_JUDGE_KEY",
        concurrency=16,
        timeout=10.0,
        max_retries=2,
        cache=None,
    )
    summary = run_judge(predictions, "DFEW", out, config, progress=False)
    return {"line": summary.line(), "requests": summary.requests, "out_of_taxonomy": summary.out_of_taxonomy}


# ---------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def write_report(out: Path, info: dict[str, Any], stages: Stages) -> None:
    from erv.io.jsonl import atomic_write_text

    ev = info["evaluation"]
    lines = [
        "# erv demo report",
        "",
        "Synthetic DFEW-style data, tiny models, everything offline. See `erv demo --help` for what is real "
        "and what is scripted.",
        "",
        "## Stages",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {title} | {seconds:.1f} |" for title, seconds in stages.done]
    tm = info["tiny_model"]
    m = ev["tiny-model"]
    lines += [
        "",
        "## Tiny random HumanOmni",
        "",
        f"{tm['samples']} clips in {tm['batches']} batches through the processor, DataLoader workers and batched "
        f"generation. Its weights are random, so its answers are not emotions: WAR {_pct(m['war'])}%, "
        f"{m['unknown']} of {m['n']} answers unknown (counted as wrong, never as neutral).",
        f"Example response: `{(tm['example_response'] or '')[:60]!r}`",
    ]
    ver = info["verifier"]
    lines += [
        "",
        "## Emotional Rationale Verifier",
        "",
        f"Trained on {ver['train_texts']} synthetic sentences; on {ver['held_out_texts']} sentences from unseen "
        f"templates: macro-F1 {_pct(ver['held_out_macro_f1'])}%, micro-F1 {_pct(ver['held_out_micro_f1'])}%.",
    ]
    lines += [
        "",
        "## Rewards (mean per completion)",
        "",
        "| policy | format | accuracy | explanation (ERV) | total |",
        "|---|---|---|---|---|",
    ]
    for policy, r in info["rewards"].items():
        lines.append(
            f"| {policy} | {r['format']:.3f} | {r['accuracy']:.3f} | {r['explanation (ERV)']:.3f} | {r['total']:.3f} |"
        )
    lines += [
        "",
        "## Evaluation (%, 95% bootstrap interval)",
        "",
        "| policy | n | WAR | UAR | EEA | EPC | FCR | FCR given correct | unjudged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        m = ev[policy]
        cells = []
        for key in ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct"):
            ci = m["ci95"].get(key)
            cells.append(f"{_pct(m[key])}" + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""))
        lines.append(f"| {policy} | {m['n']} | " + " | ".join(cells) + f" | {m['unjudged']} |")
    lines += [
        "",
        "Both scripted policies give the same answers, so format, accuracy, WAR and UAR are equal; the coherent "
        "policy's explanations match its answers, which the ERV reward pays for and EEA/EPC/FCR measure. "
        "The SFT and GRPO stages themselves are not part of this release.",
        "",
        "Files: `predictions_*.jsonl`, `judgments_*.jsonl`, `metrics.json`, `plots/`.",
    ]
    atomic_write_text(out, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- main


def run_demo(out: Path, seed: int = 0) -> dict[str, Any]:
    from erv.eval.evaluate import evaluate
    from erv.eval.report import plot_confusions
    from erv.testing.judge_server import JudgeTestServer, ServerConfig

    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(7)
    info: dict[str, Any] = {"seed": seed}
    with _quiet():
        with stages.stage("synthetic DFEW-style clips and label files, erv data prepare"):
            records = make_dataset(out / "data", seed)
        with stages.stage("tiny HumanOmni release, batched inference"):
            info["tiny_model"] = run_tiny_model(records, out / "models", out / "predictions_tiny-model.jsonl", seed)
        with stages.stage("train the Emotional Rationale Verifier"):
            info["verifier"] = train_demo_verifier(out / "verifier", seed)
        with stages.stage("scripted policies and GRPO rewards"):
            info["rewards"] = {}
            for policy in POLICIES:
                rows = scripted_predictions(records, policy, seed)
                write_jsonl(out / f"predictions_{policy}.jsonl", rows)
                info["rewards"][policy] = score_rewards(rows, info["verifier"]["path"])
        with stages.stage("LLM judge against a local OpenAI-compatible server"):
            os.environ.setdefault("ERV_DEMO_JUDGE_KEY", "local-demo-key")
            info["judge"] = {}
            with JudgeTestServer(ServerConfig(responder=keyword_judge_reply)) as server:
                for name in ("tiny-model",) + POLICIES:
                    info["judge"][name] = judge_file(
                        out / f"predictions_{name}.jsonl", out / f"judgments_{name}.jsonl", server.base_url
                    )
        with stages.stage("erv evaluate with bootstrap intervals"):
            info["evaluation"] = {}
            for name in ("tiny-model",) + POLICIES:
                result = evaluate(
                    [str(out / f"predictions_{name}.jsonl")],
                    "DFEW",
                    judgments=[str(out / f"judgments_{name}.jsonl")],
                    seed=seed,
                )
                info["evaluation"][name] = result
                plot_confusions(result, out / "plots")
        with stages.stage("report"):
            write_json(out / "metrics.json", info)
            write_report(out / "report.md", info, stages)
    return info


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="erv demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from erv.io.outputs import check_output_dir

    check_output_dir(args.out, "--out")  # before a minute of work
    logging.getLogger("erv").setLevel(logging.WARNING)
    start = time.perf_counter()
    info = run_demo(Path(args.out), seed=args.seed)
    ev = info["evaluation"]
    print()
    for policy in POLICIES:
        m, r = ev[policy], info["rewards"][policy]
        print(
            f"{policy:>12}: ERV reward {r['explanation (ERV)']:.3f}  WAR {_pct(m['war'])}  EEA {_pct(m['eea'])}  "
            f"EPC {_pct(m['epc'])}  FCR {_pct(m['fcr'])}"
        )
    print(
        f"verifier held-out macro-F1 {_pct(info['verifier']['held_out_macro_f1'])}; "
        f"tiny random model: {ev['tiny-model']['unknown']}/{ev['tiny-model']['n']} answers unknown"
    )
    print(
        f"wrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'} in "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
