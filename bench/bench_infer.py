"""`erv infer` throughput: batched inference versus one clip at a time, same model, same run.

Both sides run the whole inference job (`erv.inference.run.run_inference`: clips decoded in
DataLoader workers, prompts tokenised, towers, generation, records appended and merged) on the
same randomly initialised model and the same synthetic clips; only the batch size differs. The
baseline, batch size 1, is how the reference scripts run (one prompt per GPU). Every clip
generates exactly `--max-new-tokens` tokens (min_new_tokens is set to the same value), so both
sides do the same generation work. The two are timed alternately `--reps` times; medians.

    python bench/bench_infer.py                        # CPU: small model (LLM width 512, 8 layers)
    python bench/bench_infer.py --device cuda          # GPU: real-size 0.5B layout, bf16 (goal >= 8x)
    python bench/bench_infer.py --smoke                # seconds-long check that the script works

GPU mode: Qwen2-0.5B + siglip-base-patch16-224 + whisper-large-v3 + bert-base-uncased
(`all_in_one_small`), random weights in bf16, 8 frames of 224 px and 30 s of audio per clip
(892 multimodal tokens), 640x360 H.264 + stereo AAC clips, several DataLoader workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from erv.data.prepare import build_record
from erv.data.prompts import TASK_PROMPT
from erv.inference.engine import InferenceEngine
from erv.inference.identity import build_header
from erv.inference.inputs import read_inference_items
from erv.inference.run import run_inference
from erv.inference.settings import InferenceSettings
from erv.io.jsonl import write_jsonl
from erv.model import HumanOmniProcessor, build_model, preset_config
from erv.testing.synthetic_media import write_clip
from erv.testing.tiny_checkpoint import build_bert_tokenizer, build_llm_tokenizer, write_preprocessors

MODES = {
    # name: clip size, seconds, defaults (clips, baseline clips, batch, new tokens, workers)
    "cpu": dict(size=(160, 96), seconds=1.0, clips=64, baseline=16, batch=32, tokens=128, workers=1),
    "cuda": dict(size=(640, 360), seconds=3.0, clips=256, baseline=32, batch=32, tokens=128, workers=8),
    "smoke": dict(size=(64, 48), seconds=0.5, clips=4, baseline=2, batch=2, tokens=3, workers=0),
}


def model_config(mode: str, hidden: int, layers: int):
    if mode == "cuda":
        return preset_config("humanomni-0.5b")
    if mode == "smoke":
        return preset_config("humanomni-tiny", tie_word_embeddings=False)
    return preset_config(
        "humanomni-tiny",
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 128),
        tie_word_embeddings=False,
    )


def write_components(folder: Path, config) -> dict[str, Path]:
    """Tokenizers and preprocessor configs the processor reads (no weights: the model is in memory)."""
    paths = {name: folder / name for name in ("checkpoint", "siglip", "whisper", "bert")}
    build_llm_tokenizer(500).save_pretrained(paths["checkpoint"])
    (paths["checkpoint"] / "config.json").write_text(config.to_json_string())
    bert_tokenizer, bert_vocab = build_bert_tokenizer(paths["bert"])
    bert_tokenizer.save_pretrained(paths["bert"])
    config.bert_config.vocab_size = max(config.bert_config.vocab_size, bert_vocab)
    write_preprocessors(config, paths["siglip"], paths["whisper"])
    return paths


def write_data(folder: Path, mode: str, clips: int, distinct: int) -> Path:
    spec = MODES[mode]
    videos = [
        write_clip(folder / f"clip{i}.mp4", seconds=spec["seconds"], size=spec["size"], seed=i)
        for i in range(min(distinct, clips))
    ]
    prompts = [TASK_PROMPT, "Which emotion does the person in the clip show?"]
    records = [
        build_record(f"{i:05d}", videos[i % len(videos)], "happy", "grpo", prompts[i % 2], "DFEW")
        for i in range(clips)
    ]
    path = folder / "records.jsonl"
    write_jsonl(path, records)
    return path


def timed_run(engine, items, header, data, out: Path, batch_size: int, workers: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    summary = run_inference(
        engine, items, out, header, data=data, batch_size=batch_size, num_workers=workers, progress=False
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert summary is not None and summary.done == len(items) and summary.failed == 0, summary
    return seconds


def run(args: argparse.Namespace) -> dict:
    mode = "smoke" if args.smoke else ("cuda" if args.device == "cuda" else "cpu")
    spec = MODES[mode]
    if mode == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_infer: --device cuda needs a GPU (run without --device for the CPU figures)")
    clips = args.clips or spec["clips"]
    baseline_clips = min(args.baseline_clips or spec["baseline"], clips)
    batch = args.batch_size or spec["batch"]
    tokens = args.max_new_tokens or spec["tokens"]
    workers = spec["workers"] if args.num_workers is None else args.num_workers
    device = torch.device("cuda" if mode == "cuda" else "cpu")
    dtype = torch.bfloat16 if mode == "cuda" else torch.float32
    if mode != "cuda":
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        config = model_config(mode, args.llm_hidden, args.llm_layers)
        paths = write_components(root / "components", config)
        model = build_model(config, dtype=dtype, device=device, attn_implementation=args.attn)
        processor = HumanOmniProcessor.from_pretrained(
            paths["checkpoint"],
            vision_tower=str(paths["siglip"]),
            audio_tower=str(paths["whisper"]),
            bert=str(paths["bert"]),
            config=model.config,
        )
        gen = model.generation_config
        gen.eos_token_id, gen.pad_token_id = processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id
        gen.min_new_tokens = tokens  # random weights: every clip generates exactly `tokens` tokens
        engine = InferenceEngine(model, processor, InferenceSettings(max_new_tokens=tokens, dtype=str(dtype)))
        data = write_data(root / "clips", mode, clips, args.distinct_clips)
        items = read_inference_items(data)
        header = build_header(
            checkpoint=paths["checkpoint"],
            components={k: str(v) for k, v in paths.items() if k != "checkpoint"},
            settings={**engine.settings.as_dict(), **engine.decoding.describe()},
            data=data,
        )
        params = sum(p.numel() for p in model.parameters())
        llm = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
        print(
            f"mode {mode}: device {torch.cuda.get_device_name(0) if mode == 'cuda' else 'cpu'}; {params / 1e6:.1f} M "
            f"parameters ({llm / 1e6:.1f} M in the decoder layers), {dtype}; {tokens} new tokens per clip; "
            f"{workers} DataLoader workers; torch threads {torch.get_num_threads()}"
        )
        print(
            f"batched: {clips} clips at batch size {batch}; baseline: {baseline_clips} clips at batch size 1; "
            f"{args.reps} repetitions each, alternating, after one warm-up of each"
        )
        run_no = iter(range(10_000))

        def once(batch_size: int, subset: list) -> float:
            out = root / "out" / f"run{next(run_no)}.jsonl"
            return timed_run(engine, subset, header, data, out, batch_size, workers, device)

        base_items = items[:baseline_clips]
        once(1, base_items[: min(2, len(base_items))])  # warm-up: first DataLoader, kernels, caches
        once(batch, items[: min(batch, len(items))])
        loop_s, batch_s = [], []
        for _ in range(args.reps):
            loop_s.append(once(1, base_items))
            batch_s.append(once(batch, items))
        loop_rate = baseline_clips / statistics.median(loop_s)
        batch_rate = clips / statistics.median(batch_s)
        result = {
            "mode": mode,
            "device": torch.cuda.get_device_name(0) if mode == "cuda" else "cpu",
            "parameters": params,
            "decoder_parameters": llm,
            "llm_hidden": config.hidden_size,
            "llm_layers": config.num_hidden_layers,
            "dtype": str(dtype),
            "new_tokens": tokens,
            "clips": clips,
            "baseline_clips": baseline_clips,
            "batch_size": batch,
            "workers": workers,
            "threads": torch.get_num_threads(),
            "reps": args.reps,
            "baseline_seconds": loop_s,
            "batched_seconds": batch_s,
            "baseline_samples_s": loop_rate,
            "batched_samples_s": batch_rate,
            "speedup": batch_rate / loop_rate,
        }
        if mode == "cuda":
            result["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"{'':>10} | {'samples/s':>9} | {'new tokens/s':>12}")
    print(f"{'batch 1':>10} | {loop_rate:>9.2f} | {loop_rate * tokens:>12.1f}")
    print(f"{'batch ' + str(batch):>10} | {batch_rate:>9.2f} | {batch_rate * tokens:>12.1f}")
    print(f"speed-up: {result['speedup']:.2f}x")
    if hasattr(os, "getloadavg"):
        result["load_average_end"] = os.getloadavg()[0]
        print(f"load average (1 min) at the end: {result['load_average_end']:.2f}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 4 clips: checks that the script runs")
    parser.add_argument("--clips", type=int, help="clips in the batched run")
    parser.add_argument("--baseline-clips", type=int, help="clips in the batch-size-1 run (a prefix of the same)")
    parser.add_argument("--distinct-clips", type=int, default=16, help="video files the records cycle through")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--llm-hidden", type=int, default=512, help="CPU mode: decoder width")
    parser.add_argument("--llm-layers", type=int, default=8, help="CPU mode: decoder layers")
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--threads", type=int, default=1, help="CPU torch threads (1 on a shared machine)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
