"""Which frames of a video are read: the reference's uniform sampling and crop window
(reference: `humanomni/mm_utils.py` `frame_sample` / `process_video`)."""

from __future__ import annotations

import numpy as np

from erv.errors import ConfigError, MediaError


def uniform_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """Middle of each of `num_frames` equal segments of `num_available - 1`, as the reference.

    The reference computes `round((seg*i + seg*(i+1)) / 2 + 1e-6)` with seg = (d-1)/n in float64
    and numpy's round-half-to-even; the 1e-6 makes exact halves round up. Short videos repeat
    indices instead of padding.
    """
    if num_available < 1:
        raise ValueError(f"cannot sample from {num_available} frames")
    if num_frames < 1:
        raise ConfigError(f"num_frames must be positive, got {num_frames}")
    seg = float(num_available - 1) / num_frames
    mids = np.array([(seg * i + seg * (i + 1)) / 2 for i in range(num_frames)])
    return [int(i) for i in np.round(mids + 1e-6).astype(int)]


def fps_frame_indices(num_available: int, fps: float, frames_per_second: int = 1) -> list[int]:
    """The reference's `fps` sampling (used when `num_frames` is None): one frame per second."""
    if num_available < 1:
        raise ValueError(f"cannot sample from {num_available} frames")
    segment = int(min(fps // frames_per_second, num_available))
    if segment < 1:
        raise ValueError(f"cannot sample by fps with fps={fps}")
    return list(range(segment // 2, num_available, segment))


def crop_frame_range(
    num_frames_of_video: int, fps: float, start: float | None = None, end: float | None = None
) -> tuple[int, int]:
    """First and last frame index (inclusive) of the [start, end] seconds window, as the reference.

    Semantics kept from `process_video`: when both bounds are given they are clamped at 0,
    swapped if reversed, and `end = start + 1` if equal; then first = max(int(start*fps)-1, 0)
    and last = min(int(end*fps)-1, n-1).
    """
    if start is not None and end is not None:
        start, end = max(start, 0.0), max(end, 0.0)
        if start > end:
            start, end = end, start
        elif start == end:
            end = start + 1
    first = 0 if start is None else max(int(start * fps) - 1, 0)
    last = num_frames_of_video - 1 if end is None else min(int(end * fps) - 1, num_frames_of_video - 1)
    return first, last


def select_frame_indices(
    num_frames_of_video: int,
    fps: float,
    num_frames: int | None,
    start: float | None = None,
    end: float | None = None,
    *,
    source: str = "video",
) -> list[int]:
    """Indices of the frames the reference would read (crop window, then sampling)."""
    if num_frames_of_video < 1:
        raise MediaError(f"{source}: no frames to read")
    first, last = crop_frame_range(num_frames_of_video, fps, start, end)
    if last < first:
        raise MediaError(
            f"{source}: the window start={start}, end={end} s contains no frame "
            f"({num_frames_of_video} frames at {fps:g} fps)"
        )
    span = last - first + 1
    if num_frames is None:
        picked = fps_frame_indices(span, fps)
    else:
        picked = uniform_frame_indices(span, num_frames)
    return [first + i for i in picked]
