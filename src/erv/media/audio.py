"""16 kHz mono waveforms of a media file: ffmpeg-equal decoding by default, or the reference's
decord reader (with its bugs) on request."""

from __future__ import annotations

import os

import numpy as np
import torch

from erv.errors import ConfigError, MediaError
from erv.media.common import AUDIO_MODES, SAMPLE_RATE, AudioMissingError, AudioMode, check_file
from erv.media.container import MediaFile, open_container


def crop_waveform(wave: np.ndarray, start: float | None, end: float | None, source: str = "audio") -> np.ndarray:
    """Reference semantics (process_audio): crop only when both bounds are given.

    A window that holds no sample is missing audio (the reference would silently feed
    silence), so it raises :class:`AudioMissingError` and the missing-audio policy applies.
    """
    if start is None or end is None:
        return wave
    start, end = max(start, 0.0), max(end, 0.0)
    if start > end:
        start, end = end, start
    elif start == end:
        end = start + 1
    lo = max(0, int(start * SAMPLE_RATE))
    hi = min(len(wave), int(end * SAMPLE_RATE))
    if hi <= lo:
        raise AudioMissingError(
            f"{source}: no audio in the window start={start}, end={end} s "
            f"(the track lasts {len(wave) / SAMPLE_RATE:.2f} s)"
        )
    return wave[lo:hi]


def _has_audio_track(path: str) -> bool:
    container = open_container(path)
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


def _decode_audio_reference(path: str) -> np.ndarray:
    """decord `AudioReader(path, sample_rate=16000)`, channel mean, NaN -> -1.5 (the reference).

    WARNING: decord 0.6 (bundled FFmpeg 4.1) returns corrupted audio for stereo or non-16 kHz
    tracks: correct for about the first 0.9 s, then garbage (see docs/media.md). Use only to
    reproduce the released checkpoints' training/evaluation input.
    """
    if not _has_audio_track(path):
        raise AudioMissingError(f"{path}: no audio track")
    try:
        import decord
    except ImportError as exc:  # pragma: no cover - decord is a pinned dependency
        raise ConfigError("audio_mode='reference' needs the decord package") from exc
    try:
        reader = decord.AudioReader(path, ctx=decord.cpu(0), sample_rate=SAMPLE_RATE)
        data = torch.from_numpy(np.array(reader._array))
    except Exception as exc:
        raise MediaError(f"decord cannot read the audio of {path}: {exc}") from exc
    if torch.isnan(data).any():
        data = torch.nan_to_num(data, nan=-1.5)
    if data.dim() > 1:
        data = data.mean(dim=0)
    return data.numpy().astype(np.float32, copy=False)


def read_audio(
    source: str | os.PathLike[str], *, mode: AudioMode = "ffmpeg", start: float | None = None, end: float | None = None
) -> np.ndarray:
    """16 kHz mono float32 waveform of a video or audio file.

    Raises :class:`AudioMissingError` when the file has no audio track (or an empty one) and
    :class:`MediaError` when it cannot be read at all.
    """
    if mode not in AUDIO_MODES:
        raise ConfigError(f"unknown audio mode {mode!r}; choose one of {AUDIO_MODES}")
    path = check_file(source, "media file")
    if mode == "reference":
        wave = _decode_audio_reference(path)
    else:
        with MediaFile(path, video=False, audio=True) as mf:
            wave = mf.audio()
    return crop_waveform(wave, start, end, path)
