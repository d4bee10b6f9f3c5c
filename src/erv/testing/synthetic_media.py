"""Small synthetic video clips (H.264 + AAC in MP4) for tests, benchmarks and the demo.

Why synthetic: real emotion datasets cannot ship with the project, and tests must not download.
The picture is a textured scene panned over time with a moving block, so that H.264 uses
motion compensation and B-frames like real footage (pure noise would make every frame a
P-frame and misrepresent decoding costs). The audio is two tones plus a little noise, with
different content per channel so that down-mixing mistakes are visible.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np


def _scene(width: int, height: int, rng: np.random.Generator, pan: int) -> np.ndarray:
    yy, xx = np.mgrid[0 : height + 64, 0 : width + pan].astype(np.float32)
    tex = np.stack(
        [
            128 + 60 * np.sin(xx / 17 + yy / 29),
            128 + 60 * np.sin(yy / 13 - xx / 41),
            128 + 50 * np.cos((xx + yy) / 23),
        ],
        axis=-1,
    )
    tex += rng.normal(0.0, 12.0, tex.shape)
    return np.clip(tex, 0, 255).astype(np.uint8)


def iter_synthetic_frames(num_frames: int, width: int, height: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames of the panning scene, one at a time (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    pan = max(8, 2 * num_frames)
    tex = _scene(width, height, rng, pan)
    for i in range(num_frames):
        ox = (2 * i) % pan
        oy = int(16 + 12 * np.sin(i / 15))
        img = tex[oy : oy + height, ox : ox + width].copy()
        cx = int(width / 2 + width / 3 * np.sin(i / 20))
        cy = int(height / 2 + height / 4 * np.cos(i / 17))
        bw, bh = max(2, width // 20), max(2, height // 9)
        img[max(0, cy - bh) : cy + bh, max(0, cx - bw) : cx + bw] = (220, 180 - (i % 50), 120)
        yield img


def synthetic_frames(num_frames: int, width: int, height: int, *, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of the panning scene (deterministic for a seed)."""
    return np.stack(list(iter_synthetic_frames(num_frames, width, height, seed=seed)))


def synthetic_waveform(seconds: float, sample_rate: int, channels: int, *, seed: int = 0) -> np.ndarray:
    """(channels, samples) float32 tones with noise; channel k has its own pitch."""
    rng = np.random.default_rng(seed + 1)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    rows = []
    for k in range(channels):
        freq = 220.0 * (k + 2) + 13.0 * seed
        wave = 0.3 * np.sin(2 * np.pi * freq * t + k) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        rows.append(wave + 0.03 * rng.standard_normal(n))
    return np.stack(rows).astype(np.float32)


def write_clip(
    path: str | os.PathLike[str],
    *,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (160, 96),
    audio_rate: int | None = 48000,
    channels: int = 2,
    gop: int | None = None,
    crf: int = 23,
    seed: int = 0,
    video_codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    colorspace: int | None = None,
    color_range: int | None = None,
) -> Path:
    """Write an MP4 with an H.264 video track and (unless `audio_rate` is None) an AAC track.

    `size` is (width, height). `gop` sets the keyframe interval (x264's default is 250).
    `colorspace` / `color_range` tag the stream (FFmpeg's AVColorSpace / AVColorRange values,
    e.g. 1 = BT.709, 2 = full range). Returns the path.
    """
    options: dict[str, str] = {}
    if video_codec == "libx264":
        options = {"preset": "veryfast", "crf": str(crf)}
        if gop:
            options.update({"keyint": str(gop), "min-keyint": str(gop), "scenecut": "0"})
    width, height = size
    n_frames = max(1, int(round(seconds * fps)))
    audio = synthetic_waveform(seconds, audio_rate, channels, seed=seed) if audio_rate else None
    return encode_mp4(
        path,
        iter_synthetic_frames(n_frames, width, height, seed=seed),
        size=size,
        fps=fps,
        audio=audio,
        audio_rate=audio_rate,
        video_codec=video_codec,
        pix_fmt=pix_fmt,
        video_options=options,
        gop=gop,
        colorspace=colorspace,
        color_range=color_range,
    )


def encode_mp4(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    *,
    size: tuple[int, int],
    fps: int,
    audio: np.ndarray | None = None,
    audio_rate: int | None = None,
    video_codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    video_options: dict[str, str] | None = None,
    gop: int | None = None,
    colorspace: int | None = None,
    color_range: int | None = None,
) -> Path:
    """Mux RGB frames and an optional (channels, samples) float waveform into an MP4.

    Audio is interleaved up to each frame's time, as real files are, so that demuxing costs
    and seeking behave like those of camera footage rather than of one audio block at the end.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream(video_codec, rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = pix_fmt
        if colorspace is not None:
            vs.codec_context.colorspace = colorspace
        if color_range is not None:
            vs.codec_context.color_range = color_range
        if video_options:
            vs.options = dict(video_options)
        if gop:
            vs.codec_context.gop_size = gop
        astream = None
        if audio is not None:
            if not audio_rate:
                raise ValueError("encode_mp4: audio needs audio_rate")
            channels = audio.shape[0]
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo" if channels == 2 else ("mono" if channels == 1 else f"{channels}c")
        a_pos, a_chunk = 0, 1024
        for i, image in enumerate(frames):
            for packet in vs.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            while astream is not None and a_pos < audio.shape[1] and a_pos < (i + 1) * audio_rate / fps:
                a_pos = _mux_audio_chunk(out, astream, audio, a_pos, a_chunk, audio_rate)
        for packet in vs.encode():
            out.mux(packet)
        while astream is not None and a_pos < audio.shape[1]:
            a_pos = _mux_audio_chunk(out, astream, audio, a_pos, a_chunk, audio_rate)
        if astream is not None:
            for packet in astream.encode():
                out.mux(packet)
    return path


def _mux_audio_chunk(out, astream, audio: np.ndarray, pos: int, chunk: int, rate: int) -> int:
    import av

    block = np.ascontiguousarray(audio[:, pos : pos + chunk])
    frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=astream.layout.name)
    frame.sample_rate = rate
    frame.pts = pos
    frame.time_base = fractions.Fraction(1, rate)
    for packet in astream.encode(frame):
        out.mux(packet)
    return pos + block.shape[1]


def write_frame_folder(
    folder: str | os.PathLike[str], num_frames: int = 20, *, size: tuple[int, int] = (56, 40), seed: int = 0
) -> Path:
    """A folder of PNG frames `frame_000.png`, ... (the reference's folder-of-frames input)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(synthetic_frames(num_frames, size[0], size[1], seed=seed)):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")
    return folder
