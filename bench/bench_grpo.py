"""GRPO on HumanOmni: erv's step against the reference pattern, and the shared-prefix loss pass.

Geometry of the 0.5B model (the ERV / R1-Omni layout): 8 frames of 224 px through a 16-px-patch
SigLIP and `all_in_one_small` (392 video tokens), 30 s of audio through a 1,500-position Whisper
encoder (500 audio tokens), the task prompt as text; completions of 128 tokens. On CPU the
widths and depths are cut down ("mid": LLM 384 wide, 6 layers; towers 192 wide, 2 layers) and
the token geometry is kept; `--device cuda --size humanomni-0.5b` runs the real-size random-init
model in bf16.

Section `step` (one GRPO step, G = 4, several prompts, beta 0.04 with a reference model):
- reference pattern: one prompt per device per step, every pass (generation, policy, reference)
  runs the towers for every completion, each prompt prefilled G times, one row per completion;
- erv: several prompts per device, towers once per prompt per round, prefix-shared rollouts,
  shared-prefix packed log-prob passes.
Completions per second over the same number of completions, and the time split into generation,
rewards, the no-grad scoring passes (reference model) and the loss (forward + backward + step).

Section `loss` (G = 8): the policy log-prob pass (forward + backward of a GRPO-style loss) on one
group, plain rows against one packed row, each variant in its own process for its peak memory.

    python bench/bench_grpo.py                  # both sections, CPU
    python bench/bench_grpo.py --section loss --repeats 3
    python bench/bench_grpo.py --smoke          # seconds: tiny sizes, checks the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def bench_config(size: str) -> Any:
    from transformers import SiglipVisionConfig, WhisperConfig

    from erv.model import preset_config

    if size == "smoke":
        return preset_config("humanomni-tiny", num_frames=4, tie_word_embeddings=False)
    if size == "humanomni-0.5b":
        config = preset_config("humanomni-0.5b")
        config.mm_vision_tower, config.mm_audio_tower, config.mm_bert_tower = "siglip", "whisper", "bert"
        return config
    vision = SiglipVisionConfig(
        hidden_size=192,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=16,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )
    audio = WhisperConfig(
        d_model=192,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=384,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=384,
        num_mel_bins=128,
        max_source_positions=1500,
        max_target_positions=32,
        classifier_proj_size=16,
    )
    return preset_config(
        "humanomni-tiny",
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        vocab_size=512,
        num_frames=8,
        tie_word_embeddings=False,
        vision_config=vision,
        audio_config=audio,
    )


def make_world(root: Path, size: str, prompts: int) -> tuple[Path, Path]:
    from erv.data.emotions import DFEW
    from erv.data.prepare import build_record
    from erv.data.prompts import TASK_PROMPT
    from erv.io.jsonl import write_jsonl
    from erv.testing.synthetic_media import write_clip
    from erv.testing.tiny_checkpoint import write_release

    checkpoint = write_release(root, bench_config(size), seed=0)
    rows = []
    for i in range(prompts):
        clip = root / f"clip{i}.mp4"
        write_clip(
            clip, seconds=1.0 if size == "smoke" else 3.0, fps=8, size=(96, 64), audio_rate=16000, channels=1, seed=i
        )
        rows.append(build_record(f"clip{i}", clip, DFEW.labels[i % len(DFEW.labels)], "grpo", TASK_PROMPT, "DFEW"))
    records = root / "grpo.jsonl"
    write_jsonl(records, rows)
    return checkpoint, records


# ---------------------------------------------------------------- section: step


class Timers:
    """Wall time of the trainer's phases, by wrapping its methods."""

    def __init__(self, trainer: Any) -> None:
        import torch

        self.seconds = {"generation": 0.0, "rewards": 0.0, "scoring": 0.0}
        for name, key in (("_generate_single_turn", "generation"), ("_calculate_rewards", "rewards")):
            setattr(trainer, name, self._timed(getattr(trainer, name), key))
        logps = trainer._get_per_token_logps_and_entropies

        def scoring(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                return logps(*args, **kwargs)
            return self._timed(logps, "scoring")(*args, **kwargs)

        trainer._get_per_token_logps_and_entropies = scoring

    def _timed(self, function: Any, key: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start

        return wrapper


def run_step_variant(
    checkpoint: Path,
    records: Path,
    *,
    erv: bool,
    prompts: int,
    generations: int,
    completion: int,
    steps: int,
    device: str,
    dtype: str,
) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from erv.model import load_pretrained
    from erv.train.grpo_data import load_grpo_rows
    from erv.train.grpo_trainer import HumanOmniGRPOConfig, HumanOmniGRPOTrainer

    torch_dtype = getattr(torch, dtype)
    model, processor = load_pretrained(checkpoint, torch_dtype=torch_dtype)
    ref, _ = load_pretrained(checkpoint, torch_dtype=torch_dtype)
    rows = load_grpo_rows(records)
    per_step = prompts if erv else 1
    args = HumanOmniGRPOConfig(
        output_dir=str(Path(checkpoint).parent / ("out-" + ("erv" if erv else "reference"))),
        per_device_train_batch_size=per_step * generations,
        num_generations=generations,
        max_completion_length=completion,
        max_steps=steps * (1 if erv else prompts),
        learning_rate=1e-5,
        beta=0.04,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=0,
        use_cpu=device == "cpu",
        bf16=dtype == "bfloat16",
        gradient_checkpointing=False,
        disable_dropout=True,
        reuse_tower_features=erv,
        shared_prefix_generation=erv,
        shared_prefix=erv,
    )

    def fixed_length(completions: list, **_: Any) -> list[float]:
        return [float(len(c) % 5) for c in completions]

    trainer = HumanOmniGRPOTrainer(
        model, processor, [fixed_length], args, train_dataset=Dataset.from_list(rows), ref_model=ref
    )
    trainer._sampling_settings = _no_eos(trainer._sampling_settings)  # every completion has `completion` tokens
    timers = Timers(trainer)
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    completions = args.max_steps * args.per_device_train_batch_size
    split = dict(timers.seconds)
    split["loss"] = total - sum(split.values())
    return {"seconds": total, "completions": completions, "completions_per_s": completions / total, "split": split}


def _no_eos(settings_fn: Any) -> Any:
    def settings() -> Any:
        from dataclasses import replace

        return replace(settings_fn(), eos_token_ids=(-1,))

    return settings


# ---------------------------------------------------------------- section: loss


def run_loss_variant(
    checkpoint: Path,
    records: Path,
    *,
    shared: bool,
    generations: int,
    completion: int,
    repeats: int,
    device: str,
    dtype: str,
) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from erv.model import load_pretrained
    from erv.train.grpo_data import INDEX_KEY, MEDIA_KEY, RolloutCollator, load_grpo_rows
    from erv.train.grpo_trainer import HumanOmniGRPOConfig, HumanOmniGRPOTrainer

    model, processor = load_pretrained(checkpoint, torch_dtype=getattr(torch, dtype))
    model.to(device).train()
    rows = load_grpo_rows(records)[:1]
    args = HumanOmniGRPOConfig(
        output_dir=str(Path(checkpoint).parent / ("out-loss-" + ("shared" if shared else "plain"))),
        per_device_train_batch_size=generations,
        num_generations=generations,
        max_completion_length=completion,
        report_to="none",
        use_cpu=device == "cpu",
        bf16=dtype == "bfloat16",
        gradient_checkpointing=False,
        shared_prefix=shared,
    )
    trainer = HumanOmniGRPOTrainer(
        model,
        processor,
        [lambda completions, **_: [0.0] * len(completions)],
        args,
        train_dataset=Dataset.from_list(rows),
    )
    batch = RolloutCollator(processor)([{**rows[0], INDEX_KEY: 0, MEDIA_KEY: i == 0} for i in range(generations)])
    media = [row.pop(MEDIA_KEY) for row in batch]
    trainer._round = trainer._build_round(batch, media)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size - 12
    completions = [torch.randint(0, vocab, (completion,), generator=gen).tolist() for _ in range(generations)]
    prompt = trainer._round.prompt_ids[0]
    ids = torch.tensor([prompt + c for c in completions], device=device)
    mask = torch.ones_like(ids)
    trainer._rows_index = torch.arange(generations, device=device)
    advantages = torch.linspace(-1, 1, generations, device=device)[:, None]

    def one_pass() -> float:
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, completion, compute_entropy=True)
        (-(logps * advantages).mean()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    one_pass()  # warm-up
    model.zero_grad(set_to_none=True)
    baseline = _current_mb(device)
    _reset_peak(device)
    times = [one_pass() for _ in range(repeats)]
    tokens = len(prompt) + trainer._round.extra_positions
    rows_tokens = generations * (tokens + completion) if not shared else tokens + generations * (completion + 1)
    return {
        "seconds": statistics.median(times),
        "times": times,
        "peak_mb": _peak_mb(device) - baseline,
        "positions_per_pass": rows_tokens,
    }


def _reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak resident memory)


def _current_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.memory_allocated() / 2**20
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mb("VmHWM:")


def in_subprocess(section: str, **kwargs: Any) -> dict[str, Any]:
    """Run one variant in a fresh process (its own peak memory, no state shared with the other)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'src')!r}); "
        f"from bench.bench_grpo import run_{section}_variant as run; "
        f"kw = json.loads(sys.argv[1]); print('RESULT ' + json.dumps(run(**kw)))"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs, default=str)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"{section} variant failed:\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=["step", "loss", "all"], default="all")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per erv step (the reference runs one)")
    parser.add_argument("--steps", type=int, default=2, help="erv steps (the reference runs prompts x steps)")
    parser.add_argument("--completion", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--size",
        choices=["mid", "humanomni-0.5b"],
        default="mid",
        help="mid: cut-down widths at the real token geometry (CPU); humanomni-0.5b: real size (GPU)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and lengths: seconds, for tests")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    completion = 8 if args.smoke else args.completion
    steps = 1 if args.smoke else args.steps
    prompts = 2 if args.smoke else args.prompts
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    results: dict[str, Any] = {"device": args.device, "completion_tokens": completion}
    with tempfile.TemporaryDirectory(prefix="bench-grpo-world-") as tmp:
        checkpoint, records = make_world(Path(tmp), "smoke" if args.smoke else args.size, prompts)
        common = dict(
            checkpoint=str(checkpoint), records=str(records), completion=completion, device=args.device, dtype=dtype
        )
        if args.section in ("step", "all"):
            step = {
                name: in_subprocess("step", erv=erv, prompts=prompts, generations=4, steps=steps, **common)
                for name, erv in (("reference", False), ("erv", True))
            }
            ratio = step["erv"]["completions_per_s"] / step["reference"]["completions_per_s"]
            results["step"] = {**step, "speedup": ratio}
            print(f"GRPO step, G=4, {completion}-token completions, {prompts} prompts x {steps} step(s):")
            for name in ("reference", "erv"):
                r = step[name]
                split = ", ".join(f"{k} {v:.1f} s" for k, v in r["split"].items())
                print(
                    f"  {name:9s}: {r['completions']} completions in {r['seconds']:.1f} s = "
                    f"{r['completions_per_s']:.2f} completions/s ({split})"
                )
            print(f"  erv / reference: {ratio:.2f}x completions per second (target >= 3x)")
        if args.section in ("loss", "all"):
            loss = {
                name: in_subprocess("loss", shared=shared, generations=8, repeats=args.repeats, **common)
                for name, shared in (("plain", False), ("shared_prefix", True))
            }
            speed = loss["plain"]["seconds"] / loss["shared_prefix"]["seconds"]
            memory = loss["plain"]["peak_mb"] / loss["shared_prefix"]["peak_mb"]
            results["loss"] = {**loss, "speedup": speed, "peak_memory_ratio": memory}
            print(f"policy log-prob pass (forward + backward), G=8, {completion}-token completions:")
            for name in ("plain", "shared_prefix"):
                r = loss[name]
                print(
                    f"  {name:13s}: {r['seconds']:.2f} s median of {len(r['times'])} "
                    f"({r['positions_per_pass']} positions), peak {'GPU' if args.device == 'cuda' else 'RSS'} "
                    f"+{r['peak_mb']:.0f} MB over the loaded model"
                )
            print(f"  shared / plain: {speed:.2f}x faster (target >= 2.5x), peak memory plain/shared {memory:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
