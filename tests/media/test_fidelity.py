"""Fidelity of erv.media against the reference path (decord + SigLIP processor) and ffmpeg."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from erv import media
from tests.helpers.media import clip_path, ffmpeg_decode_audio, ffmpeg_exe, get_clip

decord = pytest.importorskip("decord")


@pytest.fixture(scope="module")
def siglip_reference():
    """The reference's image processor: transformers' PIL SigLIP processor (4.49's default)."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil(
        size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3, rescale_factor=1 / 255
    )


@pytest.fixture(scope="module")
def whisper():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400)


def reference_pixels(path, processor, aspect_ratio=None, num_frames=8):
    """The reference process_video path for a file: decord num_threads=1, PIL, SigLIP processor."""
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    idx = media.uniform_frame_indices(len(reader), num_frames)
    images = [Image.fromarray(f) for f in reader.get_batch(idx).asnumpy()]
    if aspect_ratio == "pad":
        fill = tuple(int(x * 255) for x in processor.image_mean)
        images = [_expand2square_pil(im, fill) for im in images]
    return idx, processor.preprocess(images, return_tensors="pt")["pixel_values"]


def _expand2square_pil(img: Image.Image, fill) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new(img.mode, (side, side), fill)
    canvas.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return canvas


@pytest.mark.parametrize("name", ["stereo48k", "stereo44k", "gop", "odd", "mono16k"])
@pytest.mark.parametrize("aspect_ratio", [None, "pad"])
def test_frames_bit_identical_to_decord_plus_siglip(tmp_path_factory, siglip_reference, name, aspect_ratio):
    path = get_clip(tmp_path_factory, name)
    idx, expected = reference_pixels(path, siglip_reference, aspect_ratio)
    fp = media.FrameProcessor(64)
    for threads in (1, 2):
        decoded = media.read_video_frames(path, threads=threads)
        assert decoded.indices == idx
        assert torch.equal(fp(decoded.frames, aspect_ratio=aspect_ratio), expected)


@pytest.mark.parametrize(
    "params",
    [
        dict(pix_fmt="yuv444p"),
        dict(pix_fmt="yuv422p"),
        dict(video_codec="mpeg4"),
        dict(colorspace=1),
        dict(color_range=2),
        dict(size=(202, 114)),
    ],
    ids=["yuv444p", "yuv422p", "mpeg4", "bt709", "full-range", "odd-size"],
)
def test_rgb_frames_equal_decord_across_formats(tmp_path_factory, params):
    settings = dict(seconds=0.6, fps=25, size=(96, 64), audio_rate=None, seed=8)
    settings.update(params)
    name = "fmt-" + "-".join(f"{k}{v}" for k, v in sorted(params.items())).replace(" ", "").replace(",", "x")
    path = clip_path(tmp_path_factory, name, **settings)
    reader = decord.VideoReader(str(path), num_threads=1)
    idx = media.uniform_frame_indices(len(reader), 8)
    assert np.array_equal(np.stack(media.read_video_frames(path).frames), reader.get_batch(idx).asnumpy())


def test_decord_backend_and_rotation_match(tmp_path_factory, tmp_path):
    src = get_clip(tmp_path_factory, "gop")
    rotated = tmp_path / "rot90.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-display_rotation:v:0", "90", "-i", str(src), "-c", "copy", str(rotated)],
        check=True,
    )
    for path in (src, rotated):
        reader = decord.VideoReader(str(path), num_threads=1)
        idx = media.uniform_frame_indices(len(reader), 8)
        expected = reader.get_batch(idx).asnumpy()
        ours = media.read_video_frames(path)
        via_decord = media.read_video_frames(path, backend="decord", threads=1)
        assert np.array_equal(np.stack(ours.frames), expected)
        assert np.array_equal(np.stack(via_decord.frames), expected)
    assert expected.shape[1:3] == (128, 80)  # rotated clip is portrait, as decord returns it


def test_frame_processor_equals_siglip_on_random_images(siglip_reference):
    rng = np.random.default_rng(0)
    fp = media.FrameProcessor(64)
    for shape in [(37, 91, 3), (120, 64, 3), (64, 64, 3), (5, 300, 3)]:
        frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(3)]
        for ratio in (None, "pad"):
            images = [Image.fromarray(f) for f in frames]
            if ratio == "pad":
                images = [_expand2square_pil(im, (127, 127, 127)) for im in images]
            expected = siglip_reference.preprocess(images, return_tensors="pt")["pixel_values"]
            assert torch.equal(fp(frames, aspect_ratio=ratio), expected)


@pytest.mark.parametrize("name", ["stereo48k", "stereo44k"])
def test_audio_equals_ffmpeg_decode_on_stereo_aac(tmp_path_factory, whisper, name):
    path = get_clip(tmp_path_factory, name)
    expected = ffmpeg_decode_audio(path)
    ours = media.read_audio(path)
    assert len(ours) == len(expected)
    assert np.abs(ours - expected).max() <= 1e-6
    fast = media.AudioFeatureExtractor(whisper)(ours)
    ref_feats = torch.from_numpy(whisper(expected, sampling_rate=16000, return_tensors="np")["input_features"][0])
    assert (fast - ref_feats).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["stereo48k", "stereo44k"])
def test_decord_audio_is_wrong_on_stereo_and_we_say_so(tmp_path_factory, whisper, name):
    """The evidence behind the default: decord's stereo/resampled audio is not the clip's audio."""
    path = get_clip(tmp_path_factory, name)
    truth = ffmpeg_decode_audio(path)
    ref = media.read_audio(path, mode="reference")
    n = min(len(truth), len(ref))
    assert np.corrcoef(truth[:n], ref[:n])[0, 1] < 0.9
    feats = media.AudioFeatureExtractor(whisper)
    assert (feats(truth) - feats(ref)).abs().max().item() > 0.1


def test_audio_equals_decord_on_mono_16k(tmp_path_factory, whisper):
    path = get_clip(tmp_path_factory, "mono16k")
    reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=16000)
    decord_wave = torch.from_numpy(np.array(reader._array)).mean(dim=0).numpy()
    ours = media.read_audio(path)
    assert len(ours) == len(decord_wave)
    assert np.abs(ours - decord_wave).max() < 1e-6
    ref_feats = torch.from_numpy(whisper(decord_wave, sampling_rate=16000, return_tensors="np")["input_features"][0])
    assert (media.AudioFeatureExtractor(whisper)(ours) - ref_feats).abs().max().item() <= 1e-4


def test_decord_keeps_aac_end_padding_on_partial_last_frame(tmp_path_factory):
    """Documented difference: decord does not trim the encoder's end padding; ffmpeg does."""
    path = get_clip(tmp_path_factory, "mono16k_partial")
    ours = media.read_audio(path)
    ref = media.read_audio(path, mode="reference")
    assert len(ours) == len(ffmpeg_decode_audio(path)) == round(1.7 * 16000)
    assert len(ref) > len(ours) and len(ref) % 1024 == 0
    assert np.abs(ours - ref[: len(ours)]).max() < 1e-6


@pytest.mark.parametrize("name", ["mono16k", "mono16k_partial"])
def test_reference_audio_mode_reads_exactly_as_decord(tmp_path_factory, whisper, name):
    path = get_clip(tmp_path_factory, name)
    reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=16000)
    expected = torch.nan_to_num(torch.from_numpy(np.array(reader._array)), nan=-1.5).mean(dim=0).numpy()
    ours = media.read_audio(path, mode="reference")
    assert np.array_equal(ours, expected)
    exact = media.AudioFeatureExtractor(whisper, exact=True)
    assert torch.equal(
        exact(ours),
        torch.from_numpy(
            whisper(torch.from_numpy(expected), sampling_rate=16000, return_tensors="np")["input_features"][0]
        ),
    )


@pytest.mark.parametrize("seconds", [0.01, 1.0, 2.7, 29.99, 30.0, 31.5])
def test_fast_whisper_features_equal_the_extractor(whisper, seconds):
    rng = np.random.default_rng(int(seconds * 100))
    n = int(seconds * 16000)
    wave = (0.3 * np.sin(np.arange(n) / 9.0) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    expected = torch.from_numpy(whisper(wave, sampling_rate=16000, return_tensors="np")["input_features"][0])
    fast = media.AudioFeatureExtractor(whisper)(wave)
    assert fast.shape == expected.shape == (128, 3000)
    assert (fast - expected).abs().max().item() <= 1e-6
