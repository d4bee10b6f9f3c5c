"""Forward and generation throughput of a real-size, randomly initialised HumanOmni model.

On CUDA (the intended use): the 0.5B layout (Qwen2-0.5B + siglip-base-patch16-224 +
whisper-large-v3 + bert-base-uncased, `all_in_one_small`) in bf16 with SDPA, 8 frames of 224²,
30 s of audio (500 audio + 392 video tokens) and a ~100-token prompt per sample. For each batch
size it measures one forward pass over the batch (prefill, what scoring/GRPO log-probs cost) and
greedy generation of a fixed number of new tokens (KV cache), and prints samples/s and tokens/s
with the speed-up over the baseline measured in the same run on the same samples: one sample at
a time (batch size 1), which is the only mode the reference code supports.

Without CUDA it says so and runs a scaled-down CPU smoke version (the `humanomni-tiny` preset)
so that the script itself stays tested; those numbers say nothing about GPU throughput.

    python bench/bench_model_gpu.py                      # GPU: 0.5B, batches 1/4/8
    python bench/bench_model_gpu.py --preset humanomni-7b --batch-sizes 1 4
    python bench/bench_model_gpu.py --json out.json      # also write the figures
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from erv.model import AUDIO_PLACEHOLDER, VIDEO_PLACEHOLDER, build_model, preset_config


def make_batch(
    model, batch: int, prompt_tokens: int, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random inputs shaped like the processor's: left-padded prompts of slightly different lengths."""
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    vocab = min(cfg.vocab_size, 100_000) - 10
    lengths = [prompt_tokens - 3 * i for i in range(batch)]
    width = max(lengths) + 2
    ids = torch.full((batch, width), cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else 0)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for row, n in enumerate(lengths):
        text = torch.randint(0, vocab, (n,), generator=gen)
        sample = torch.cat(
            [text[:20], torch.tensor([VIDEO_PLACEHOLDER]), text[20:25], torch.tensor([AUDIO_PLACEHOLDER]), text[25:]]
        )
        ids[row, width - len(sample) :] = sample
        mask[row, width - len(sample) :] = 1
    vision = cfg.vision_config
    audio = model.model.audio_tower
    bert_len = 48
    return dict(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        pixel_values_videos=torch.randn(
            batch, cfg.num_frames, 3, vision.image_size, vision.image_size, generator=gen
        ).to(device, dtype),
        audio_input_features=torch.randn(batch, audio.config.num_mel_bins, audio.expected_frames, generator=gen).to(
            device, dtype
        ),
        bert_input_ids=torch.randint(1, cfg.bert_config.vocab_size, (batch, bert_len), generator=gen).to(device),
        bert_attention_mask=torch.ones(batch, bert_len, dtype=torch.long, device=device),
    )


def split(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The same samples one by one, without padding (what a per-sample loop feeds)."""
    out = []
    for row in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][row].bool()
        out.append(
            {
                k: (v[row : row + 1][:, keep] if k in ("input_ids", "attention_mask") else v[row : row + 1])
                for k, v in batch.items()
            }
        )
    return out


def _clock(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(loop_fn, batch_fn, device: torch.device, reps: int) -> tuple[float, float]:
    """Median seconds of the per-sample loop and of the batched call, measured alternately after a warm-up
    of each, so that drift and noise from other processes hit both alike."""
    loop_fn()
    batch_fn()
    loops, batches = [], []
    for _ in range(reps):
        loops.append(_clock(loop_fn, device))
        batches.append(_clock(batch_fn, device))
    return statistics.median(loops), statistics.median(batches)


def run(args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available() and not args.cpu
    if cuda:
        device, dtype, preset = torch.device("cuda"), getattr(torch, args.dtype), args.preset
        batch_sizes, new_tokens, prompt_tokens, reps = args.batch_sizes, args.new_tokens, args.prompt_tokens, args.reps
        print(f"device: {torch.cuda.get_device_name(0)}; preset {preset}; dtype {args.dtype}; attn {args.attn}")
    else:
        torch.set_num_threads(args.threads)
        device, dtype, preset = torch.device("cpu"), torch.float32, "humanomni-tiny"
        batch_sizes, new_tokens, prompt_tokens, reps = [1, 4], 8, 40, args.reps
        print(
            "CUDA is not available: running the scaled-down CPU smoke version (humanomni-tiny, float32, "
            f"torch threads: {args.threads}). These figures do not describe GPU throughput."
        )
    torch.manual_seed(0)
    model = build_model(preset_config(preset), dtype=dtype, device=device, attn_implementation=args.attn)
    model.generation_config.eos_token_id = None  # random weights: never stop early, always new_tokens steps
    model.generation_config.pad_token_id = 0
    n_params = sum(p.numel() for p in model.parameters())
    per_sample_tokens = model.model.num_video_tokens() + model.model.num_audio_tokens()
    print(
        f"parameters: {n_params / 1e6:.1f} M; multimodal tokens per sample: {per_sample_tokens}; "
        f"{reps} repetitions per figure (median; loop and batch timed alternately after one warm-up each)"
    )
    print("baseline: the same samples one at a time, unpadded (batch size 1, the only mode the reference supports)")

    @torch.no_grad()
    def forward(batch):
        return model(**batch, logits_to_keep=1)

    def generate(batch):
        return model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    results: dict = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "preset": preset,
        "dtype": str(dtype),
        "attn": args.attn,
        "reps": reps,
        "new_tokens": new_tokens,
        "parameters": n_params,
        "rows": [],
    }
    full = make_batch(model, max(batch_sizes), prompt_tokens, device, dtype)
    singles = split(full)
    expanded = [int(s["input_ids"].shape[1]) - 2 + per_sample_tokens for s in singles]
    print(
        f"{'batch':>5} | {'fwd samples/s':>13} | {'fwd tokens/s':>12} | {'vs loop':>7} | "
        f"{'gen new tok/s':>13} | {'gen samples/s':>13} | {'vs loop':>7}"
    )
    for size in batch_sizes:
        batch = {k: v[:size] for k, v in full.items()}
        keep = batch["attention_mask"].any(0)  # drop all-padding columns of the smaller batch
        batch["input_ids"], batch["attention_mask"] = batch["input_ids"][:, keep], batch["attention_mask"][:, keep]
        mine = singles[:size]
        loop_fwd, t_fwd = paired(lambda m=mine: [forward(s) for s in m], lambda b=batch: forward(b), device, reps)
        loop_gen, t_gen = paired(lambda m=mine: [generate(s) for s in m], lambda b=batch: generate(b), device, reps)
        row = {
            "batch": size,
            "forward_samples_s": size / t_fwd,
            "forward_tokens_s": sum(expanded[:size]) / t_fwd,
            "forward_loop_samples_s": size / loop_fwd,
            "forward_speedup": loop_fwd / t_fwd,
            "generate_tokens_s": size * new_tokens / t_gen,
            "generate_samples_s": size / t_gen,
            "generate_loop_tokens_s": size * new_tokens / loop_gen,
            "generate_speedup": loop_gen / t_gen,
        }
        results["rows"].append(row)
        print(
            f"{size:>5} | {row['forward_samples_s']:>13.2f} | {row['forward_tokens_s']:>12,.0f} | "
            f"{row['forward_speedup']:>6.2f}x | {row['generate_tokens_s']:>13.1f} | "
            f"{row['generate_samples_s']:>13.2f} | "
            f"{row['generate_speedup']:>6.2f}x"
        )
    if cuda:
        results["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory: {results['max_memory_gib']:.1f} GiB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="humanomni-0.5b", choices=["humanomni-0.5b", "humanomni-7b"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for the smoke version (1: avoids OpenMP spin-waiting on a shared machine)",
    )
    parser.add_argument("--cpu", action="store_true", help="force the CPU smoke version")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
