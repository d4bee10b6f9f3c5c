"""Per-sample media preprocessing: erv.media versus the reference path, and DataLoader scaling.

Workload: 20 synthetic 640x360 H.264 clips of 2-10 s with stereo AAC (44.1 / 48 kHz);
per sample 8 uniformly sampled frames preprocessed for SigLIP at 224 px, and Whisper
log-mel features with whisper-large-v3 settings (128 mel bins, 30 s window; the extractor is
built from its parameters, nothing is downloaded).

Reference path (the released code): decord `VideoReader(num_threads=1)` + `get_batch`, PIL
`SiglipImageProcessor`, decord `AudioReader(sample_rate=16000)` + channel mean,
`WhisperFeatureExtractor`. Ours: `erv.media.MediaProcessor.load`.

Both paths run interleaved clip by clip in the same process, `--repeats` times; the figure per
path is the median over repeats of the mean time per sample, and the printed ratio is
reference / ours. The DataLoader part times whole epochs with persistent workers (one
warm-up epoch, then `--epochs` timed ones) for 1 and 2 workers.

    PYTHONPATH=src python bench/bench_media.py [--repeats 3] [--threads 2] [--workdir DIR]

The decoded-audio fidelity of both paths (correlation with ffmpeg's decode, Whisper feature
difference) is printed too: it is the evidence behind the default audio decoder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from erv import media
from erv.testing.synthetic_media import write_clip

SIZE = (640, 360)
NUM_CLIPS = 20


def make_clips(workdir: Path) -> list[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(NUM_CLIPS):
        seconds = 2.0 + 8.0 * i / (NUM_CLIPS - 1)
        rate = 48000 if i % 2 == 0 else 44100
        fps = (25, 30, 24)[i % 3]
        path = workdir / f"clip{i:02d}_{seconds:.1f}s_{fps}fps_{rate}.mp4"
        if not path.exists():
            part = path.with_suffix(".part.mp4")
            write_clip(part, seconds=seconds, fps=fps, size=SIZE, audio_rate=rate, channels=2, seed=i)
            part.rename(path)
        clips.append(path)
    return clips


def whisper_large_v3_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400, padding_value=0.0
    )


class ReferencePath:
    """The released code's per-sample preprocessing, written out (process_video / process_audio)."""

    def __init__(self, extractor) -> None:
        import decord
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        self.decord = decord
        self.siglip = SiglipImageProcessorPil(
            size={"height": 224, "width": 224},
            image_mean=[0.5] * 3,
            image_std=[0.5] * 3,
            resample=3,
            rescale_factor=1 / 255,
        )
        self.extractor = extractor

    def __call__(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        reader = self.decord.VideoReader(str(path), ctx=self.decord.cpu(0), num_threads=1)
        idx = media.uniform_frame_indices(len(reader), 8)
        frames = [Image.fromarray(f) for f in reader.get_batch(idx).asnumpy()]
        pixels = self.siglip.preprocess(frames, return_tensors="pt")["pixel_values"]
        audio_reader = self.decord.AudioReader(str(path), ctx=self.decord.cpu(0), sample_rate=16000)
        audio = torch.from_numpy(audio_reader._array)
        if torch.isnan(audio).any():
            audio = torch.nan_to_num(audio, nan=-1.5)
        if audio.dim() > 1:
            audio = audio.mean(dim=0)
        feats = self.extractor(audio, sampling_rate=16000, return_tensors="pt")["input_features"]
        return pixels, feats


def per_sample(clips, reference, ours, repeats: int) -> dict[str, dict[str, float]]:
    """Median over passes of the mean wall and CPU (all threads of the process) ms per sample."""
    wall = {"reference": [], "ours": []}
    cpu = {"reference": [], "ours": []}
    for _ in range(repeats):
        total = {k: [0.0, 0.0] for k in wall}
        for path in clips:
            for name, fn in (("reference", reference), ("ours", ours)):
                w0, c0 = time.perf_counter(), time.process_time()
                fn(path)
                total[name][0] += time.perf_counter() - w0
                total[name][1] += time.process_time() - c0
        for name in wall:
            wall[name].append(1000 * total[name][0] / len(clips))
            cpu[name].append(1000 * total[name][1] / len(clips))
    return {
        "wall": {k: statistics.median(v) for k, v in wall.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
    }


class MediaOnlyDataset(torch.utils.data.Dataset):
    """What an inference/training DataLoader does per item, minus the (tiny) tokenisation.

    The clips are repeated and shuffled (fixed seed): 20 clips sorted by length would leave one
    worker alone with the longest ones at the end of every epoch, which measures the epoch's
    tail rather than the throughput a long inference or training run sees.
    """

    def __init__(self, clips, processor: media.MediaProcessor, repeat: int = 3, seed: int = 0) -> None:
        order = np.random.default_rng(seed).permutation(len(clips) * repeat)
        self.clips = [clips[i % len(clips)] for i in order]
        self.processor = processor

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        s = self.processor.load(self.clips[i])
        return s.pixel_values, s.audio_features


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc); 0 where unavailable."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def loader_rates(
    dataset, worker_counts: tuple[int, ...], epochs: int, batch_size: int
) -> dict[int, tuple[float, float]]:
    """(samples/s, worker CPU ms per sample) per worker count.

    Timed epochs alternate between the loaders so that load changes on a shared machine hit
    all of them alike. The CPU time per sample, summed over a loader's workers, shows whether
    more workers do more work per sample (they should not): then any shortfall in scaling is
    cores taken by other processes, not the pipeline.
    """
    loaders = {
        w: torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=w, persistent_workers=True, prefetch_factor=2
        )
        for w in worker_counts
    }
    iterators = {}
    for w, loader in loaders.items():  # warm-up epoch: worker start-up and first-touch costs
        for _ in loader:
            pass
        iterators[w] = loader._iterator  # persistent: the same worker processes every epoch
    seconds = {w: 0.0 for w in worker_counts}
    cpu = {w: 0.0 for w in worker_counts}
    samples = {w: 0 for w in worker_counts}
    for _ in range(epochs):
        for w, loader in loaders.items():
            pids = [p.pid for p in getattr(iterators[w], "_workers", [])]
            c0, t0 = _cpu_seconds(pids), time.perf_counter()
            for pixels, _feats in loader:
                samples[w] += pixels.shape[0]
            seconds[w] += time.perf_counter() - t0
            cpu[w] += _cpu_seconds(pids) - c0
    del loaders, iterators
    return {w: (samples[w] / seconds[w], 1000 * cpu[w] / samples[w]) for w in worker_counts}


def audio_evidence(clips, extractor) -> list[tuple[str, float, float]]:
    import imageio_ffmpeg

    feats = media.AudioFeatureExtractor(extractor)
    rows = []
    for path in clips[:6]:
        out = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v",
                "error",
                "-i",
                str(path),
                "-vn",
                "-ac",
                "1",
                "-ar",
                "16000",
                "-f",
                "f32le",
                "-",
            ],
            capture_output=True,
            check=True,
        )
        truth = np.frombuffer(out.stdout, np.float32)
        ours = media.read_audio(path)
        ref = media.read_audio(path, mode="reference")
        n = min(len(truth), len(ref))
        rows.append(
            (
                path.name,
                float(np.corrcoef(truth[:n], ref[:n])[0, 1]),
                float((feats(truth) - feats(ref)).abs().max()),
                float(np.abs(ours - truth).max()) if len(ours) == len(truth) else float("nan"),
            )
        )
    return rows


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=os.environ.get("ERV_BENCH_DIR", "/tmp/erv-bench-media"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads",
        default="auto",
        help="decode threads for the first per-sample run ('auto' or N); a second run always uses 1",
    )
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--skip-loader", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    clips = make_clips(Path(args.workdir))
    print(
        f"clips: {len(clips)} x {SIZE[0]}x{SIZE[1]} H.264, 2-10 s, stereo AAC 44.1/48 kHz "
        f"in {args.workdir} (ready in {time.perf_counter() - t0:.1f} s)"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()}, torch threads 1, python {sys.version.split()[0]}")

    extractor = whisper_large_v3_extractor()
    reference = ReferencePath(extractor)
    fp = media.FrameProcessor(224)
    threads = media.default_decode_threads() if args.threads == "auto" else int(args.threads)
    ours = media.MediaProcessor(fp, media.AudioFeatureExtractor(extractor), decode_threads=threads)
    ours_1t = media.MediaProcessor(fp, media.AudioFeatureExtractor(extractor), decode_threads=1)

    # same outputs first: frames bit-identical; audio differs only where decord is wrong (stereo)
    ref_pix, _ = reference(clips[0])
    assert torch.equal(ours.load(clips[0]).pixel_values, ref_pix), "frames differ from the reference path"

    res = per_sample(clips, reference, lambda p: ours.load(p), args.repeats)
    res_1t = per_sample(clips, reference, lambda p: ours_1t.load(p), args.repeats)
    print(
        f"\nper-sample preprocessing (median of {args.repeats} passes over {len(clips)} clips, "
        f"reference and ours interleaved clip by clip); wall ms/sample, CPU ms/sample (all threads):"
    )
    for label, r in ((f"decode threads={threads}", res), ("decode threads=1", res_1t)):
        w, c = r["wall"], r["cpu"]
        print(
            f"  reference (decord 1 thread + PIL SigLIP + decord audio + Whisper): wall {w['reference']:7.1f}  "
            f"cpu {c['reference']:7.1f}"
        )
        print(
            f"  erv.media, {label:<18}                              wall {w['ours']:7.1f}  cpu {c['ours']:7.1f}"
            f"  -> wall speed-up x{w['reference'] / w['ours']:.2f}, cpu x{c['reference'] / c['ours']:.2f}"
        )

    if not args.skip_loader:
        dataset = MediaOnlyDataset(clips, media.MediaProcessor(fp, media.AudioFeatureExtractor(extractor)))
        rates = loader_rates(dataset, (1, 2), args.epochs, args.batch_size)
        (r1, c1), (r2, c2) = rates[1], rates[2]
        print(
            f"\nDataLoader ({len(dataset)} items = the clips x3 shuffled, batch {args.batch_size}, "
            f"{args.epochs} timed "
            f"epochs each after a warm-up, alternating between the two loaders; decode threads auto = 1 per worker):"
        )
        print(f"  1 worker : {r1:6.2f} samples/s   worker CPU {c1:6.1f} ms/sample")
        print(f"  2 workers: {r2:6.2f} samples/s   worker CPU {c2:6.1f} ms/sample  -> scaling x{r2 / r1:.2f}")

    print(f"\nload average at the end: {_load()} (other processes share these cores)")
    print(
        "\naudio fidelity (first 6 clips): correlation of decord's 16 kHz mono with ffmpeg's decode, "
        "max |Whisper feature difference|, max |ours - ffmpeg|"
    )
    for name, corr, fdiff, ours_diff in audio_evidence(clips, extractor):
        print(f"  {name}: corr {corr:+.3f}  feature diff {fdiff:.3f}  ours vs ffmpeg {ours_diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
