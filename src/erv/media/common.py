"""Media constants, option types, and the checks every reader shares (files, decoder threads)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from erv.errors import ConfigError, MediaError

NUM_FRAMES = 8
"""Frames per video in R1-Omni / ERV (`constants.NUM_FRAMES`)."""
SAMPLE_RATE = 16000
"""Whisper's input rate; every waveform this module returns is 16 kHz mono float32."""
FRAME_FOLDER_FPS = 3.0
"""Frame rate the reference assumes for a folder of frames (only used by start/end cropping)."""
GIF_FPS = 25.0
"""Frame rate the reference assumes for GIF files."""
MISSING_AUDIO_SECONDS = 10.0
"""Length of the silence the reference substitutes for unreadable audio."""
DUMMY_VIDEO_FRAMES = 32
"""Frames of the all-zero video the reference feeds for audio-only / text-only requests."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

AspectRatio = Literal["pad"] | None
AudioMode = Literal["ffmpeg", "reference"]
MissingAudioPolicy = Literal["zeros", "skip", "error"]
VideoBackend = Literal["pyav", "decord"]
FrameLike = np.ndarray | Image.Image | str | os.PathLike
VideoInput = str | os.PathLike | np.ndarray | Sequence[FrameLike]

AUDIO_MODES = ("ffmpeg", "reference")
MISSING_AUDIO_POLICIES = ("zeros", "skip", "error")
VIDEO_BACKENDS = ("pyav", "decord")
ASPECT_RATIOS = ("pad", None)


class AudioMissingError(MediaError):
    """The media file has no (decodable) audio track; callers apply an `on_missing_audio` policy."""


def check_file(path: str | os.PathLike[str], what: str = "media file") -> str:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} not found: {p}")
    if p.is_dir():
        raise MediaError(f"{what} is a folder, not a file: {p}")
    try:
        size = p.stat().st_size
    except OSError as exc:  # pragma: no cover - stat failing after exists() is a race
        raise MediaError(f"cannot read {what} {p}: {exc}") from exc
    if size == 0:
        raise MediaError(f"{what} is empty (0 bytes): {p}")
    if not os.access(p, os.R_OK):
        raise MediaError(f"cannot read {what} {p}: permission denied")
    return str(p)


def default_decode_threads() -> int:
    """Decoder threads when the caller says "auto": one inside DataLoader workers, else up to 4.

    Workers already run in parallel; more threads per worker would only oversubscribe the cores.
    """
    try:
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            return 1
    except Exception:  # pragma: no cover - torch without data utils
        pass
    return max(1, min(4, os.cpu_count() or 1))


def resolve_threads(threads: int | str | None) -> int:
    if threads in (None, "auto", 0):
        return default_decode_threads()
    if isinstance(threads, str) or int(threads) < 1:
        raise ConfigError(f"decode threads must be a positive integer or 'auto', got {threads!r}")
    return int(threads)
