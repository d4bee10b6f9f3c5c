"""SFT step time, samples/s and peak memory of a real-size, randomly initialised HumanOmni.

On CUDA (the intended use): the 0.5B layout (Qwen2-0.5B + siglip-base-patch16-224 +
whisper-large-v3 + bert-base-uncased, `all_in_one_small`) with the paper's trainable parts
(LLM, projectors, gate, vision tower), fp32 master weights with bf16 autocast (what `erv sft`
does on one GPU without DeepSpeed), gradient checkpointing, SDPA, AdamW; each sample is 8
frames of 224 px + 30 s of Whisper features (392 video + 500 audio tokens) + a ~120-token
prompt and a 60-200-token answer (right-padded, loss normalised over the answer tokens as in
training). For each per-device batch size it measures full optimizer steps and prints step
time, samples/s, the speed-up over batch size 1 measured in the same run, and peak GPU memory.

Without CUDA it says so and runs a scaled-down CPU smoke version (the `humanomni-tiny` preset)
so that the script itself stays tested; those numbers say nothing about GPU throughput.

    python bench/bench_sft_gpu.py                           # GPU: 0.5B, batches 1/4/8
    python bench/bench_sft_gpu.py --batch-sizes 1 2 --steps 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from erv.model import AUDIO_PLACEHOLDER, IGNORE_INDEX, VIDEO_PLACEHOLDER, build_model, preset_config
from erv.train.parts import PAPER_SFT_PARTS, apply_tune_parts


def make_batch(model, batch: int, prompt_tokens: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded SFT examples: prompt with both placeholders, answers of different lengths."""
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    vocab = min(cfg.vocab_size, 100_000) - 10
    answers = [60 + (140 * i) // max(batch - 1, 1) for i in range(batch)]
    lengths = [prompt_tokens + 2 + a for a in answers]
    width = max(lengths)
    ids = torch.zeros(batch, width, dtype=torch.long)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for row, (n, a) in enumerate(zip(lengths, answers, strict=True)):
        text = torch.randint(0, vocab, (n - 2,), generator=gen)
        sample = torch.cat(
            [text[:20], torch.tensor([VIDEO_PLACEHOLDER]), text[20:25], torch.tensor([AUDIO_PLACEHOLDER]), text[25:]]
        )
        ids[row, :n] = sample
        labels[row, n - a : n] = sample[n - a :]
        mask[row, :n] = 1
    vision, audio = cfg.vision_config, model.model.audio_tower
    bert_len = 48
    return dict(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        labels=labels.to(device),
        pixel_values_videos=torch.randn(
            batch, cfg.num_frames, 3, vision.image_size, vision.image_size, generator=gen
        ).to(device),
        audio_input_features=torch.randn(batch, audio.config.num_mel_bins, audio.expected_frames, generator=gen).to(
            device
        ),
        bert_input_ids=torch.randint(1, cfg.bert_config.vocab_size, (batch, bert_len), generator=gen).to(device),
        bert_attention_mask=torch.ones(batch, bert_len, dtype=torch.long, device=device),
    )


def train_steps(model, optimizer, batch, steps: int, device: torch.device, autocast_dtype) -> list[float]:
    times = []
    items = (batch["labels"][..., 1:] != IGNORE_INDEX).sum()
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(**batch, num_items_in_batch=items, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SFT step benchmark (real-size random-init HumanOmni)")
    parser.add_argument("--preset", default="humanomni-0.5b")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per batch size (after 2 warm-up)")
    parser.add_argument("--prompt-tokens", type=int, default=120)
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    warmup = 2
    if cuda:
        device, autocast_dtype, preset = torch.device("cuda"), torch.bfloat16, args.preset
        batch_sizes = args.batch_sizes
    else:
        print("CUDA is not available: running the CPU smoke version (humanomni-tiny, fp32); not GPU figures")
        torch.set_num_threads(1)
        device, autocast_dtype, preset = torch.device("cpu"), None, "humanomni-tiny"
        batch_sizes, warmup = [1, 2], 1
        args.prompt_tokens = min(args.prompt_tokens, 40)
    config = preset_config(preset)
    model = build_model(config, dtype=torch.float32, device=device)
    apply_tune_parts(model, PAPER_SFT_PARTS)
    model.train()
    if not args.no_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-5, fused=cuda)
    trainable = sum(p.numel() for p in params)
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"{preset} on {name}: {trainable / 1e6:.1f}M trainable parameters, frames {config.num_frames}")

    rows = []
    for batch_size in batch_sizes:
        batch = make_batch(model, batch_size, args.prompt_tokens, device)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        train_steps(model, optimizer, batch, warmup, device, autocast_dtype)
        times = train_steps(model, optimizer, batch, args.steps, device, autocast_dtype)
        step = statistics.median(times)
        rows.append(
            {
                "batch": batch_size,
                "step_s": step,
                "samples_s": batch_size / step,
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                "sequence_tokens": int(batch["attention_mask"].sum(1).max())
                + model.model.num_video_tokens()
                + model.model.num_audio_tokens()
                - 2,
            }
        )
    base = rows[0]["samples_s"]
    for row in rows:
        row["speedup_vs_batch_1"] = row["samples_s"] / base if rows[0]["batch"] == 1 else None
        memory = "n/a" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f} GiB"
        speed = "" if row["speedup_vs_batch_1"] is None else f"  x{row['speedup_vs_batch_1']:.2f} vs batch 1"
        print(
            f"batch {row['batch']:>2}: step {row['step_s'] * 1000:8.1f} ms  {row['samples_s']:7.2f} samples/s"
            f"{speed}  peak {memory}  ({row['sequence_tokens']} tokens per sample)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "preset": preset,
                    "device": name,
                    "gradient_checkpointing": not args.no_gradient_checkpointing,
                    "rows": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
