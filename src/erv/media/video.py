"""RGB frames of a video file, a folder of frames, or given arrays, by the reference's rules."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from erv.errors import ConfigError, MediaError
from erv.media.common import (
    FRAME_FOLDER_FPS,
    GIF_FPS,
    IMAGE_SUFFIXES,
    NUM_FRAMES,
    VIDEO_BACKENDS,
    FrameLike,
    VideoBackend,
    VideoInput,
    check_file,
    resolve_threads,
)
from erv.media.container import DecodedFrames, MediaFile
from erv.media.sampling import select_frame_indices


def _decode_decord(
    path: str, num_frames: int | None, start: float | None, end: float | None, threads: int
) -> DecodedFrames:
    """The reference reader itself (decord VideoReader + get_batch)."""
    try:
        import decord
    except ImportError as exc:  # pragma: no cover - decord is a pinned dependency
        raise ConfigError("video_backend='decord' needs the decord package") from exc
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
    except Exception as exc:
        raise MediaError(f"cannot open {path} with decord: corrupt or unsupported video ({exc})") from exc
    n = len(reader)
    fps = GIF_FPS if Path(path).suffix.lower() == ".gif" else float(reader.get_avg_fps())
    wanted = select_frame_indices(n, fps, num_frames, start, end, source=path)
    try:
        batch = reader.get_batch(wanted).asnumpy()
    except Exception as exc:
        raise MediaError(f"cannot decode {path} with decord: {exc}") from exc
    return DecodedFrames(list(batch), wanted, n, fps, path)


def _read_image(path: str | os.PathLike[str]) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as exc:
        raise MediaError(f"frame image not found: {path}") from exc
    except OSError as exc:
        raise MediaError(f"cannot read frame image {path}: {exc}") from exc


def frame_folder_files(folder: Path) -> list[Path]:
    """The frames of a frame folder, in order; a folder the decoder would refuse raises MediaError."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    bad = [n for n in names if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise MediaError(
            f"frame folder {folder} contains non-image entries {bad[:5]}: frame "
            f"numbering would differ from the folder's frames"
        )
    if not names:
        raise MediaError(f"frame folder {folder} contains no frames")
    return [folder / n for n in names]


def _to_rgb_array(frame: FrameLike, where: str) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, (str, os.PathLike)):
        return _read_image(frame)
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise MediaError(f"{where}: frames must be (H, W, 3) RGB arrays, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise MediaError(f"{where}: frames must be uint8 RGB, got {arr.dtype}")
    return arr[..., :3]


def read_video_frames(
    video: VideoInput,
    *,
    num_frames: int | None = NUM_FRAMES,
    start: float | None = None,
    end: float | None = None,
    backend: VideoBackend = "pyav",
    threads: int | str | None = "auto",
) -> DecodedFrames:
    """RGB uint8 frames of a video file, a folder of frames, or given frames (reference rules).

    * file: `num_frames` uniformly sampled frames (crop window first), decoded with `backend`;
    * folder: frames are the folder's image files in sorted name order (fps 3 for cropping);
    * array (T, H, W, 3) or list of arrays / PIL images / image paths: used as given, not
      sampled; if fewer than `num_frames`, black frames are appended. Like the reference, each
      black frame has the previous frame's width and height swapped (this matters only with
      `aspect_ratio="pad"`, where it changes the grey bars; kept for bit-exactness).
    """
    if backend not in VIDEO_BACKENDS:
        raise ConfigError(f"unknown video backend {backend!r}; choose one of {VIDEO_BACKENDS}")
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            files = frame_folder_files(path)
            wanted = select_frame_indices(len(files), FRAME_FOLDER_FPS, num_frames, start, end, source=str(path))
            cache: dict[int, np.ndarray] = {}
            frames = []
            for i in wanted:
                if i not in cache:
                    cache[i] = _read_image(files[i])
                frames.append(cache[i])
            return DecodedFrames(frames, wanted, len(files), FRAME_FOLDER_FPS, str(path))
        name = check_file(path, "video file")
        n_threads = resolve_threads(threads)
        if backend == "decord":
            return _decode_decord(name, num_frames, start, end, n_threads)
        with MediaFile(name, audio=False) as mf:
            return mf.frames(num_frames, start, end, n_threads)

    where = "video frames"
    if isinstance(video, np.ndarray):
        if video.ndim != 4:
            raise MediaError(f"{where}: expected a (T, H, W, 3) array, got shape {video.shape}")
        frames = [_to_rgb_array(f, where) for f in video]
    elif isinstance(video, Sequence) and not isinstance(video, (str, bytes)):
        frames = [_to_rgb_array(f, where) for f in video]
    else:
        raise MediaError(f"unsupported video input of type {type(video).__name__}")
    if not frames:
        raise MediaError(f"{where}: no frames given")
    while num_frames is not None and len(frames) < num_frames:
        h, w = frames[-1].shape[:2]
        frames.append(np.zeros((w, h, 3), dtype=np.uint8))
    return DecodedFrames(frames, None, None, None, where)
