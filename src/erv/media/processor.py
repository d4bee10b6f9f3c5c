"""One sample's model-ready media (`MediaSample`) and the policy-driven loader (`MediaProcessor`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from erv.errors import ConfigError, MediaError
from erv.media.audio import crop_waveform, read_audio
from erv.media.common import (
    ASPECT_RATIOS,
    AUDIO_MODES,
    DUMMY_VIDEO_FRAMES,
    MISSING_AUDIO_POLICIES,
    MISSING_AUDIO_SECONDS,
    NUM_FRAMES,
    SAMPLE_RATE,
    VIDEO_BACKENDS,
    AspectRatio,
    AudioMissingError,
    AudioMode,
    MissingAudioPolicy,
    VideoBackend,
    VideoInput,
    resolve_threads,
)
from erv.media.container import DecodedFrames, MediaFile
from erv.media.features import AudioFeatureExtractor, FrameProcessor
from erv.media.video import read_video_frames


@dataclass
class MediaSample:
    """Model-ready media of one sample."""

    pixel_values: torch.Tensor  # (T, 3, H, W) float32
    audio_features: torch.Tensor | None  # (mel bins, frames) float32; None if not requested
    audio_missing: bool = False  # no audio: features are the zeros substitute
    frame_indices: list[int] | None = None  # indices read from the source (None for arrays)
    source: str | None = None
    audio_missing_reason: str | None = None  # why, when audio_missing


AudioInput = None | str | os.PathLike | np.ndarray | torch.Tensor


class MediaProcessor:
    """Turns a video (and optionally separate audio) into a :class:`MediaSample`.

    `on_missing_audio` decides what happens when the file has no audio track (the reference
    silently uses 10 s of zeros): "zeros" does the same but sets `audio_missing=True`, "skip"
    makes :meth:`load` return None, "error" raises :class:`AudioMissingError`.
    """

    def __init__(
        self,
        frame_processor: FrameProcessor,
        feature_extractor: AudioFeatureExtractor | None,
        *,
        num_frames: int | None = NUM_FRAMES,
        aspect_ratio: AspectRatio = None,
        audio_mode: AudioMode = "ffmpeg",
        on_missing_audio: MissingAudioPolicy = "zeros",
        video_backend: VideoBackend = "pyav",
        decode_threads: int | str | None = "auto",
    ) -> None:
        if aspect_ratio not in ASPECT_RATIOS:
            raise ConfigError(f"aspect_ratio must be 'pad' or None, got {aspect_ratio!r}")
        if audio_mode not in AUDIO_MODES:
            raise ConfigError(f"unknown audio mode {audio_mode!r}; choose one of {AUDIO_MODES}")
        if on_missing_audio not in MISSING_AUDIO_POLICIES:
            raise ConfigError(f"on_missing_audio must be one of {MISSING_AUDIO_POLICIES}, got {on_missing_audio!r}")
        if video_backend not in VIDEO_BACKENDS:
            raise ConfigError(f"unknown video backend {video_backend!r}; choose one of {VIDEO_BACKENDS}")
        self.frame_processor = frame_processor
        self.feature_extractor = feature_extractor
        self.num_frames = num_frames
        self.aspect_ratio = aspect_ratio
        self.audio_mode = audio_mode
        self.on_missing_audio = on_missing_audio
        self.video_backend = video_backend
        self.decode_threads = decode_threads

    def frames(
        self,
        video: VideoInput,
        *,
        start: float | None = None,
        end: float | None = None,
        aspect_ratio: AspectRatio | str = "default",
    ) -> tuple[torch.Tensor, DecodedFrames]:
        decoded = read_video_frames(
            video,
            num_frames=self.num_frames,
            start=start,
            end=end,
            backend=self.video_backend,
            threads=self.decode_threads,
        )
        ratio = self.aspect_ratio if aspect_ratio == "default" else aspect_ratio
        return self.frame_processor(decoded.frames, aspect_ratio=ratio), decoded  # type: ignore[arg-type]

    def dummy_frames(self) -> torch.Tensor:
        """The all-zero video the reference uses for audio-only and text-only requests."""
        fp = self.frame_processor
        return torch.zeros(DUMMY_VIDEO_FRAMES, 3, fp.height, fp.width)

    def waveform(self, audio: AudioInput, *, start: float | None = None, end: float | None = None) -> np.ndarray:
        """16 kHz mono waveform from a file or an array (arrays must already be 16 kHz mono)."""
        if isinstance(audio, (str, os.PathLike)):
            return read_audio(audio, mode=self.audio_mode, start=start, end=end)
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim == 2 and 1 in wave.shape:
            wave = wave.reshape(-1)
        if wave.ndim != 1:
            raise MediaError(f"audio arrays must be 1-D 16 kHz mono waveforms, got shape {wave.shape}")
        return crop_waveform(wave, start, end)

    def _missing(self, exc: AudioMissingError) -> np.ndarray | None:
        """Apply the missing-audio policy: the substitute waveform, None to skip, or raise."""
        if self.on_missing_audio == "error":
            raise exc
        if self.on_missing_audio == "skip":
            return None
        return np.zeros(int(MISSING_AUDIO_SECONDS * SAMPLE_RATE), dtype=np.float32)

    def _features(self, wave: np.ndarray) -> torch.Tensor:
        if self.feature_extractor is None:
            raise ConfigError("this MediaProcessor has no Whisper feature extractor")
        return self.feature_extractor(wave)

    def audio(
        self, audio: AudioInput, *, start: float | None = None, end: float | None = None
    ) -> tuple[torch.Tensor | None, str | None]:
        """(features, why the audio is missing or None) under the missing-audio policy.

        Features None means the sample is skipped (policy "skip").
        """
        return self._policy_features(lambda: self.waveform(audio, start=start, end=end))

    def _policy_features(self, read: Callable[[], np.ndarray]) -> tuple[torch.Tensor | None, str | None]:
        """Features of the waveform `read()` returns, or of what the missing-audio policy puts instead."""
        try:
            wave, missing = read(), None
        except AudioMissingError as exc:
            wave, missing = self._missing(exc), str(exc)
            if wave is None:
                return None, missing
        return self._features(wave), missing

    def load(
        self,
        video: VideoInput | None,
        audio: AudioInput = None,
        *,
        start: float | None = None,
        end: float | None = None,
        with_audio: bool = True,
        with_video: bool = True,
        aspect_ratio: AspectRatio | str = "default",
    ) -> MediaSample | None:
        """Frames and Whisper features of one sample; None when skipped by the missing-audio policy.

        `audio=None` reads the audio track of the video file itself (the reference's behaviour);
        then both tracks come from one pass over the file.
        """
        ratio = self.aspect_ratio if aspect_ratio == "default" else aspect_ratio
        is_file = isinstance(video, (str, os.PathLike)) and not Path(video).is_dir()
        if (
            with_video
            and with_audio
            and audio is None
            and is_file
            and self.video_backend == "pyav"
            and self.audio_mode == "ffmpeg"
        ):
            threads = resolve_threads(self.decode_threads)
            with MediaFile(video) as mf:  # type: ignore[arg-type]
                if mf.audio_stream is None and self.on_missing_audio != "zeros":
                    # decide before decoding any frame: raise, or skip the sample
                    if self._missing(AudioMissingError(f"{mf.path}: no audio track")) is None:
                        return None
                if threads > 1:
                    pixels, decoded, features, missing = self._load_overlapped(mf, start, end, ratio, threads)
                else:
                    decoded = mf.frames(self.num_frames, start, end, 1)
                    features, missing = self._file_audio(mf, start, end)
                    pixels = self.frame_processor(decoded.frames, aspect_ratio=ratio)  # type: ignore[arg-type]
            if features is None:
                return None
            return self._sample(pixels, features, missing, decoded.indices, decoded.source)

        if with_video:
            if video is None:
                raise MediaError("no video given")
            pixels, decoded = self.frames(video, start=start, end=end, aspect_ratio=ratio)
            indices, source = decoded.indices, decoded.source
        else:
            pixels, indices = self.dummy_frames(), None
            source = str(video) if isinstance(video, (str, os.PathLike)) else None
        features, missing = None, None
        if with_audio:
            audio_source = audio if audio is not None else video
            if audio_source is None or not isinstance(audio_source, (str, os.PathLike, np.ndarray, torch.Tensor)):
                raise MediaError("no audio given and the video is not a file to read audio from")
            if isinstance(audio_source, (str, os.PathLike)) and Path(audio_source).is_dir():
                raise MediaError(f"{audio_source}: a frame folder has no audio; pass audio= explicitly")
            features, missing = self.audio(audio_source, start=start, end=end)
            if features is None:
                return None
        return self._sample(pixels, features, missing, indices, source)

    def _load_overlapped(
        self, mf: MediaFile, start: float | None, end: float | None, ratio: AspectRatio, threads: int
    ):
        """Video decoding on this thread; audio and frame resizing on one helper thread.

        The video decoder is the critical path, so it keeps `threads - 1` FFmpeg frame threads
        (none with 2 threads: frame threading costs ~20% more CPU, which a second core spends
        better on the audio and the resizing, started as soon as each frame is decoded).
        """
        with ThreadPoolExecutor(max_workers=1) as helper:
            audio_job = helper.submit(self._file_audio, mf, start, end)
            prepared: dict[int, Any] = {}

            def on_frame(index: int, rgb: np.ndarray) -> None:
                prepared[index] = helper.submit(self.frame_processor.prepare, rgb, ratio)

            decoded = mf.frames(self.num_frames, start, end, max(1, threads - 1), on_frame=on_frame)
            resized = [prepared[i].result() for i in decoded.indices]  # type: ignore[union-attr]
            features, missing = audio_job.result()
        return self.frame_processor.to_tensor(resized), decoded, features, missing

    def _file_audio(
        self, mf: MediaFile, start: float | None, end: float | None
    ) -> tuple[torch.Tensor | None, str | None]:
        return self._policy_features(lambda: crop_waveform(mf.audio(), start, end, mf.path))

    def _sample(
        self,
        pixels: torch.Tensor,
        features: torch.Tensor | None,
        missing: str | None,
        indices: list[int] | None,
        source: str | None,
    ) -> MediaSample:
        return MediaSample(pixels, features, missing is not None, indices, source, missing)
