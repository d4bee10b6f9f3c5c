"""Synthetic clips shared by the media and processor tests, made once per test session.

Files live under pytest's session base temp folder and are named by their parameters, so
every test module asking for the same clip gets the same file without re-encoding it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from erv.testing.synthetic_media import write_clip


def clip_path(tmp_path_factory: pytest.TempPathFactory, name: str, **params) -> Path:
    folder = tmp_path_factory.getbasetemp() / "media-clips"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.mp4"
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        write_clip(tmp, **params)
        tmp.rename(path)
    return path


# name -> parameters; small pictures keep encoding and decoding fast
CLIPS = {
    "stereo48k": dict(seconds=2.0, fps=25, size=(160, 96), audio_rate=48000, channels=2, seed=1),
    "stereo44k": dict(seconds=2.3, fps=30, size=(176, 100), audio_rate=44100, channels=2, seed=2),
    # audio length a multiple of 1024 samples: decord and ffmpeg agree exactly (see docs/media.md)
    "mono16k": dict(seconds=2.048, fps=25, size=(128, 72), audio_rate=16000, channels=1, seed=3),
    "mono16k_partial": dict(seconds=1.7, fps=25, size=(96, 64), audio_rate=16000, channels=1, seed=4),
    "gop": dict(seconds=3.0, fps=24, size=(128, 80), audio_rate=48000, channels=2, gop=10, seed=5),
    "odd": dict(seconds=0.6, fps=25, size=(90, 58), audio_rate=22050, channels=1, seed=6),
    "silent": dict(seconds=1.0, fps=25, size=(96, 64), audio_rate=None, seed=7),
}


def get_clip(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return clip_path(tmp_path_factory, name, **CLIPS[name])


def ffmpeg_exe() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_decode_audio(path: Path) -> np.ndarray:
    """`ffmpeg -i clip -ac 1 -ar 16000 -f f32le -`: the decode our default must equal."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(out.stdout, dtype=np.float32)
