"""SigLIP frame preprocessing and Whisper log-mel features, equal to transformers' processors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from erv.errors import ConfigError, MediaError
from erv.io.component_config import read_json_config
from erv.media.common import ASPECT_RATIOS, SAMPLE_RATE, AspectRatio

if TYPE_CHECKING:  # pragma: no cover
    from transformers import WhisperFeatureExtractor


def expand_to_square(frame: np.ndarray, fill: Sequence[int]) -> np.ndarray:
    """Centre a frame on a square canvas of colour `fill` (the reference's `expand2square`)."""
    h, w = frame.shape[:2]
    if h == w:
        return frame
    side = max(h, w)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[...] = np.asarray(fill, dtype=np.uint8)
    if w > h:
        top = (w - h) // 2
        canvas[top : top + h] = frame
    else:
        left = (h - w) // 2
        canvas[:, left : left + w] = frame
    return canvas


class FrameProcessor:
    """SigLIP image preprocessing, bit-identical to transformers' PIL `SiglipImageProcessor`.

    That processor resizes uint8 RGB with PIL bicubic to S x S, rescales in float64 by 1/255,
    casts to float32 and normalises with float32 mean/std. Resizing stays PIL (the only way to
    be bit-exact); the elementwise part is a 256-entry lookup table per channel computed with
    the very same operations, which makes it exact and about ten times faster.
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 224,
        *,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        rescale_factor: float = 1 / 255,
        resample: int = Image.Resampling.BICUBIC,
        do_resize: bool = True,
        do_rescale: bool = True,
        do_normalize: bool = True,
    ) -> None:
        self.height, self.width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.image_mean = [float(m) for m in image_mean]
        self.image_std = [float(s) for s in image_std]
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ConfigError("image_mean and image_std need three values (RGB)")
        self.rescale_factor = float(rescale_factor)
        self.resample = int(resample)
        self.do_resize, self.do_rescale, self.do_normalize = do_resize, do_rescale, do_normalize
        self._lut = self._build_lut()

    @property
    def pad_fill(self) -> tuple[int, int, int]:
        """Canvas colour of the square padding: int(mean * 255) per channel, as the reference."""
        return tuple(int(m * 255) for m in self.image_mean)  # type: ignore[return-value]

    def _build_lut(self) -> np.ndarray:
        values = np.arange(256, dtype=np.uint8)
        out = np.empty((3, 256), dtype=np.float32)
        for c in range(3):
            x = values
            if self.do_rescale:
                x = (x.astype(np.float64) * self.rescale_factor).astype(np.float32)
            else:
                x = x.astype(np.float32)
            if self.do_normalize:
                mean = np.array([self.image_mean[c]], dtype=np.float32)
                std = np.array([self.image_std[c]], dtype=np.float32)
                x = (x - mean) / std
            out[c] = x
        return out

    @classmethod
    def from_pretrained(cls, vision_tower: str | os.PathLike[str]) -> FrameProcessor:
        """Read `preprocessor_config.json` of a SigLIP folder or hub id (cached, never downloaded here)."""
        cfg = _load_preprocessor_config(vision_tower, "vision tower (SigLIP)")
        size = cfg.get("size") or {}
        if isinstance(size, dict) and "height" in size and "width" in size:
            hw: int | tuple[int, int] = (int(size["height"]), int(size["width"]))
        elif isinstance(size, int):
            hw = size
        else:
            raise ConfigError(
                f"{vision_tower}: preprocessor size {size!r} is not a fixed height x width; "
                f"only SigLIP-style square resizing is supported"
            )
        if cfg.get("do_center_crop"):
            raise ConfigError(f"{vision_tower}: center-cropping image processors are not supported")
        return cls(
            hw,
            image_mean=cfg.get("image_mean", (0.5, 0.5, 0.5)),
            image_std=cfg.get("image_std", (0.5, 0.5, 0.5)),
            rescale_factor=cfg.get("rescale_factor", 1 / 255),
            resample=cfg.get("resample", Image.Resampling.BICUBIC),
            do_resize=cfg.get("do_resize", True),
            do_rescale=cfg.get("do_rescale", True),
            do_normalize=cfg.get("do_normalize", True),
        )

    def resize(self, frame: np.ndarray) -> np.ndarray:
        if not self.do_resize or frame.shape[:2] == (self.height, self.width):
            return np.asarray(frame)
        return np.asarray(Image.fromarray(frame).resize((self.width, self.height), resample=self.resample))

    def prepare(self, frame: np.ndarray, aspect_ratio: AspectRatio = None) -> np.ndarray:
        """Square padding (if asked) and resizing of one RGB uint8 frame; stays uint8."""
        if aspect_ratio not in ASPECT_RATIOS:
            raise ConfigError(f"aspect_ratio must be 'pad' or None, got {aspect_ratio!r}")
        frame = np.asarray(frame)
        if aspect_ratio == "pad":
            frame = expand_to_square(frame, self.pad_fill)
        return self.resize(frame)

    def to_tensor(self, resized: Sequence[np.ndarray]) -> torch.Tensor:
        """(T, 3, H, W) float32 from prepared uint8 frames (rescale + normalise via the table)."""
        sizes = {r.shape for r in resized}
        if len(sizes) != 1:
            raise MediaError(f"frames have different sizes after preprocessing: {sorted(sizes)}")
        batch = np.stack(resized)  # (T, H, W, 3) uint8
        out = np.empty((batch.shape[0], 3) + batch.shape[1:3], dtype=np.float32)
        for c in range(3):
            np.take(self._lut[c], batch[..., c], out=out[:, c])
        return torch.from_numpy(out)

    def __call__(self, frames: Sequence[np.ndarray], aspect_ratio: AspectRatio = None) -> torch.Tensor:
        """(T, 3, H, W) float32 pixel values for RGB uint8 frames."""
        return self.to_tensor([self.prepare(f, aspect_ratio) for f in frames])


def _load_preprocessor_config(location: str | os.PathLike[str], what: str) -> dict[str, Any]:
    def from_hub(hub_id: str) -> dict[str, Any]:
        from transformers.image_processing_base import ImageProcessingMixin

        return ImageProcessingMixin.get_image_processor_dict(hub_id)[0]

    return read_json_config(location, "preprocessor_config.json", what, from_hub)


class AudioFeatureExtractor:
    """Whisper log-mel features with the tower's `WhisperFeatureExtractor` settings.

    `exact=True` calls the extractor itself (torch STFT path, as the reference). The default
    computes the same thing over the clip's own length instead of the zero-padded 30 s window:
    frames that only see padding are exactly log10(1e-10) = -10 before normalisation, so they
    are filled in, and the global max (hence the clipping) is unchanged. Tests check it against
    the extractor (max difference ~6e-8); it is 3x faster for short clips.
    """

    def __init__(self, extractor: WhisperFeatureExtractor, *, exact: bool = False) -> None:
        if int(extractor.sampling_rate) != SAMPLE_RATE:
            raise ConfigError(
                f"the Whisper feature extractor expects {extractor.sampling_rate} Hz; "
                f"this pipeline produces {SAMPLE_RATE} Hz audio"
            )
        self.extractor = extractor
        self.exact = exact or float(getattr(extractor, "dither", 0.0) or 0.0) != 0.0
        self._mel = torch.from_numpy(np.asarray(extractor.mel_filters)).to(torch.float32).T.contiguous()
        self._window = torch.hann_window(extractor.n_fft)

    @classmethod
    def from_pretrained(cls, audio_tower: str | os.PathLike[str], *, exact: bool = False) -> AudioFeatureExtractor:
        from transformers import WhisperFeatureExtractor

        try:
            fe = WhisperFeatureExtractor.from_pretrained(str(audio_tower))
        except Exception as exc:
            raise ConfigError(f"cannot load the Whisper feature extractor from {audio_tower!r}: {exc}") from exc
        return cls(fe, exact=exact)

    @property
    def num_mel_bins(self) -> int:
        return int(self.extractor.feature_size)

    @property
    def num_frames(self) -> int:
        return int(self.extractor.nb_max_frames)

    def __call__(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(mel bins, frames) float32 features of a 16 kHz mono waveform; NaN -> -1.5 as the reference."""
        wave = np.asarray(
            waveform.detach().cpu() if isinstance(waveform, torch.Tensor) else waveform, dtype=np.float32
        ).reshape(-1)
        if self.exact:
            feats = self.extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"][0]
        else:
            feats = self._fast(wave)
        if torch.isnan(feats).any():
            feats = torch.nan_to_num(feats, nan=-1.5)
        return feats

    def _fast(self, wave: np.ndarray) -> torch.Tensor:
        fe = self.extractor
        hop, n_fft, n_samples = int(fe.hop_length), int(fe.n_fft), int(fe.n_samples)
        total_frames = n_samples // hop
        wave = wave[:n_samples]
        # Enough zeros after the signal that the reflect padding of the STFT mirrors zeros only.
        needed = ((len(wave) + n_fft // 2 + 1 + hop - 1) // hop + 1) * hop
        length = min(n_samples, needed)
        buf = np.zeros(length, dtype=np.float32)
        buf[: len(wave)] = wave
        stft = torch.stft(torch.from_numpy(buf), n_fft, hop, window=self._window, return_complex=True)
        computed = min(length // hop, total_frames)
        power = (stft[..., :computed].abs() ** 2).contiguous()
        mel = self._mel @ power
        full = torch.full((mel.shape[0], total_frames), 1e-10, dtype=torch.float32)
        full[:, :computed] = mel
        log_spec = torch.clamp(full, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0
