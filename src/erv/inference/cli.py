"""`erv infer`: predictions of a HumanOmni checkpoint for an inference record file.

    erv infer --model CKPT --data data/DFEW/test_set_5.json --out out/dfew_f5.jsonl
    torchrun --nproc_per_node 8 -m erv.cli infer --model CKPT --data ... --out ...

Greedy by default; `--temperature 0.3` samples as the paper does (top-p 0.9). Re-running the
same command resumes. The output's header `out/dfew_f5.meta.json` records the checkpoint and
the settings. See docs/inference.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from erv.errors import ConfigError
from erv.inference.settings import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TOP_P, PAPER_TEMPERATURE, InferenceSettings
from erv.io.outputs import check_output_file

DTYPES = ("auto", "bfloat16", "float16", "float32")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="HumanOmni checkpoint folder (or a hub id in the local cache)")
    parser.add_argument("--data", required=True, help="inference records (erv data prepare --format infer)")
    parser.add_argument("--out", required=True, help="predictions JSONL; resumed if it exists")
    parser.add_argument("--dataset", help="taxonomy of the gold labels (default: each record's 'dataset')")
    parser.add_argument("--video-root", help="folder that relative video paths are resolved against")
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--batch-size", type=int, default=8, help="clips per generation batch (default 8)")
    decoding.add_argument(
        "--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="default %(default)s (ERV's)"
    )
    decoding.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help=f"0 = greedy (default); > 0 samples (the paper: {PAPER_TEMPERATURE})",
    )
    decoding.add_argument("--top-p", type=float, default=DEFAULT_TOP_P, help="nucleus when sampling (default 0.9)")
    decoding.add_argument(
        "--num-samples",
        type=int,
        default=1,
        metavar="K",
        help="responses per clip when sampling: all K in 'samples', the first also in 'response'",
    )
    decoding.add_argument(
        "--seed", type=int, default=0, help="sampling seed; a clip's samples depend on it and its id"
    )
    decoding.add_argument(
        "--answer-only",
        action="store_true",
        help="start the response with an empty <think>\\n</think>\\n (CA-EMER's early-answer mode)",
    )
    decoding.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    decoding.add_argument("--attn-implementation", default="sdpa", help="sdpa (default), eager, flash_attention_2")
    parts = parser.add_argument_group("components (as load_pretrained)")
    parts.add_argument("--vision-tower", help="SigLIP folder (default: the config's mm_vision_tower)")
    parts.add_argument("--audio-tower", help="Whisper folder (default: the config's mm_audio_tower)")
    parts.add_argument("--bert", help="BERT folder of the branch gate (default: the config's)")
    parts.add_argument("--components-dir", help="folder where relative component names are looked up")
    parts.add_argument(
        "--tower-weights",
        choices=("original", "checkpoint"),
        default="original",
        help="tower weights from their folders (the reference's behaviour) or the checkpoint's copies",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--on-missing-audio",
        choices=("error", "zeros"),
        default="error",
        help="a video without audio: a recorded error (default), or 10 s of silence as the reference "
        "(marked audio_missing in the record)",
    )
    run.add_argument("--limit", type=int, help="only the first N records (a quick look)")
    run.add_argument("--overwrite", action="store_true", help="replace an output written by another run")
    run.add_argument("--num-workers", type=int, default=None, help="DataLoader workers per process (default: auto)")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: this rank's GPU, else the CPU)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _default_workers(world_size: int) -> int:
    return max(1, min(8, (os.cpu_count() or 2) // world_size - 1))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from erv.model.checkpoint import checkpoint_dir

    ckpt = checkpoint_dir(args.model)  # a path-like name that does not exist fails here, at once
    check_output_file(args.out, "--out", inputs=[args.data])
    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError(f"--num-workers must be 0 or more, got {args.num_workers}")
    from erv.inference.run import check_run_options

    check_run_options(batch_size=args.batch_size, limit=args.limit)
    from erv.inference.inputs import read_inference_items

    items = read_inference_items(args.data, dataset=args.dataset)

    import torch
    from transformers.utils import logging as hf_logging

    from erv.inference.distributed import Ranks
    from erv.inference.engine import InferenceEngine
    from erv.inference.identity import build_header
    from erv.inference.run import run_inference
    from erv.model import HumanOmniProcessor, load_model

    hf_logging.disable_progress_bar()
    ranks = Ranks.from_environment()
    try:
        device = ranks.device(args.device)
        dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
        settings = InferenceSettings(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            num_samples=args.num_samples,
            seed=args.seed,
            answer_only=args.answer_only,
            on_missing_audio=args.on_missing_audio,
            dtype=dtype,
        )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        model = load_model(
            ckpt,
            vision_tower=args.vision_tower,
            audio_tower=args.audio_tower,
            bert=args.bert,
            components_dir=args.components_dir,
            torch_dtype=dtype,
            tower_weights=args.tower_weights,
            device_map=str(device) if device.type != "cpu" else None,
            attn_implementation=args.attn_implementation,
        )
        cfg = model.config
        processor = HumanOmniProcessor.from_pretrained(
            str(ckpt),
            vision_tower=cfg.mm_vision_tower,
            audio_tower=cfg.mm_audio_tower,
            bert=cfg.mm_bert_tower,
            config=cfg,
            on_missing_audio=args.on_missing_audio,
        )
        engine = InferenceEngine(model, processor, settings)
        header = build_header(
            checkpoint=ckpt,
            components={
                "vision_tower": cfg.mm_vision_tower,
                "audio_tower": cfg.mm_audio_tower,
                "bert": cfg.mm_bert_tower,
            },
            settings={**settings.as_dict(), **engine.decoding.describe(), "tower_weights": args.tower_weights},
            data=args.data,
        )
        header = ranks.broadcast(header)  # one run id for all ranks, whatever each one read
        summary = run_inference(
            engine,
            items,
            args.out,
            header,
            data=args.data,
            limit=args.limit,
            batch_size=args.batch_size,
            num_workers=args.num_workers if args.num_workers is not None else _default_workers(ranks.world_size),
            video_root=args.video_root,
            overwrite=args.overwrite,
            progress=False if args.no_progress else None,
            ranks=ranks,
        )
    finally:
        ranks.close()
    if summary is None:
        return 0
    if summary.failures:
        print(
            f"erv infer: {summary.failed} clip(s) failed; each is recorded with its reason in {args.out}:",
            file=sys.stderr,
        )
        for sample_id, reason in summary.failures:
            print(f"  {sample_id}: {reason}", file=sys.stderr)
    notes = [summary.throughput()]
    if summary.redone:
        notes.append(f"{summary.redone} predicted again because their input record changed")
    if summary.audio_zero_filled:
        notes.append(f"{summary.audio_zero_filled} without audio predicted on silence (audio_missing)")
    print(f"{args.out}: {summary.total} clips; " + "; ".join(notes))
    print(summary.line(), flush=True)
    return 0
