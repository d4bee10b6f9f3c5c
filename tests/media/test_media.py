"""erv.media on synthetic H.264 + AAC clips: sampling, ranges, lengths, bad files, policies."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from erv import media
from erv.errors import ConfigError, MediaError
from erv.testing.synthetic_media import write_frame_folder
from tests.helpers.media import get_clip


@pytest.fixture(scope="module")
def frame_processor() -> media.FrameProcessor:
    return media.FrameProcessor(48)


@pytest.fixture(scope="module")
def features():
    from transformers import WhisperFeatureExtractor

    # whisper-large-v3 settings (128 mel bins, 30 s chunk), built from parameters: no hub
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400)
    return media.AudioFeatureExtractor(fe)


# ------------------------------------------------------------------ index selection


def test_uniform_indices_match_reference_examples():
    assert media.uniform_frame_indices(20, 8) == [1, 4, 6, 8, 11, 13, 15, 18]
    assert media.uniform_frame_indices(50, 8) == [3, 9, 15, 21, 28, 34, 40, 46]
    # short videos repeat indices instead of padding
    assert media.uniform_frame_indices(3, 8) == [0, 0, 1, 1, 1, 1, 2, 2]
    assert media.uniform_frame_indices(1, 8) == [0] * 8


def test_uniform_indices_round_half_up_via_epsilon():
    # d = 17: seg = 2, middles are 1, 3, ..., 15 -> exact; d = 9: seg = 1, middles 0.5, 1.5, ...
    # numpy alone would round 0.5 -> 0 and 2.5 -> 2 (half to even); the 1e-6 makes them 1 and 3
    assert media.uniform_frame_indices(9, 8) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert media.uniform_frame_indices(17, 8) == [1, 3, 5, 7, 9, 11, 13, 15]


def test_crop_window_semantics():
    # both bounds: clamp, swap, widen equal bounds; index = int(t * fps) - 1
    assert media.crop_frame_range(100, 25.0, 1.0, 2.0) == (24, 49)
    assert media.crop_frame_range(100, 25.0, 2.0, 1.0) == (24, 49)
    assert media.crop_frame_range(100, 25.0, 1.0, 1.0) == (24, 49)
    assert media.crop_frame_range(100, 25.0, -3.0, 1.0) == (0, 24)
    assert media.crop_frame_range(100, 25.0, None, None) == (0, 99)
    assert media.crop_frame_range(100, 25.0, 3.0, 99.0) == (74, 99)
    idx = media.select_frame_indices(100, 25.0, 8, 1.0, 2.0)
    assert idx == [24 + i for i in media.uniform_frame_indices(26, 8)]
    with pytest.raises(MediaError, match="contains no frame"):
        media.select_frame_indices(10, 25.0, 8, 5.0, 6.0)


def test_fps_sampling_mode():
    assert media.fps_frame_indices(100, 25.0) == [12, 37, 62, 87]
    assert media.select_frame_indices(20, 3.0, None) == [1, 4, 7, 10, 13, 16, 19]


# ------------------------------------------------------------------ video files


def test_video_file_frames_indices_and_ranges(tmp_path_factory, frame_processor):
    path = get_clip(tmp_path_factory, "stereo48k")  # 2 s at 25 fps = 50 frames
    decoded = media.read_video_frames(path)
    assert decoded.num_available == 50
    assert decoded.fps == pytest.approx(25.0)
    assert decoded.indices == [3, 9, 15, 21, 28, 34, 40, 46]
    assert len(decoded.frames) == 8
    assert all(f.shape == (96, 160, 3) and f.dtype == np.uint8 for f in decoded.frames)
    assert len({f.tobytes() for f in decoded.frames}) == 8  # distinct frames, moving content
    pixels = frame_processor(decoded.frames)
    assert pixels.shape == (8, 3, 48, 48) and pixels.dtype == torch.float32
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
    assert float(pixels.std()) > 0.05


def test_start_end_window_on_file(tmp_path_factory):
    path = get_clip(tmp_path_factory, "stereo48k")
    decoded = media.read_video_frames(path, start=0.4, end=1.2)  # frames 9 .. 29
    assert decoded.indices == [9 + i for i in media.uniform_frame_indices(21, 8)]


def test_decode_threads_do_not_change_frames(tmp_path_factory):
    path = get_clip(tmp_path_factory, "gop")
    one = media.read_video_frames(path, threads=1)
    two = media.read_video_frames(path, threads=2)
    assert one.indices == two.indices
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, two.frames, strict=True))


def test_frame_folder_and_arrays(tmp_path, frame_processor):
    folder = write_frame_folder(tmp_path / "frames", 20, size=(56, 40))
    decoded = media.read_video_frames(folder)
    assert decoded.indices == [1, 4, 6, 8, 11, 13, 15, 18]
    assert decoded.fps == media.FRAME_FOLDER_FPS
    raw = np.stack([np.asarray(Image.open(folder / f"frame_{i:03d}.png")) for i in range(20)])
    assert all(np.array_equal(f, raw[i]) for f, i in zip(decoded.frames, decoded.indices, strict=True))
    # arrays are used as given (not sampled) ...
    given = media.read_video_frames(raw[:10])
    assert given.indices is None and len(given.frames) == 10
    # ... and padded with black frames whose width/height are swapped, as the reference does
    few = media.read_video_frames(list(raw[:3]))
    assert len(few.frames) == 8
    assert few.frames[3].shape == (56, 40, 3) and not few.frames[3].any()
    pil = media.read_video_frames([Image.fromarray(f) for f in raw[:8]])
    assert all(np.array_equal(a, b) for a, b in zip(pil.frames, raw[:8], strict=True))


def test_folder_with_foreign_file_is_an_error(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 4, size=(16, 16))
    (folder / "notes.txt").write_text("x")
    with pytest.raises(MediaError, match="non-image"):
        media.read_video_frames(folder)


# ------------------------------------------------------------------ audio


@pytest.mark.parametrize("name, seconds", [("stereo48k", 2.0), ("stereo44k", 2.3), ("mono16k", 2.048), ("odd", 0.6)])
def test_audio_is_16k_mono_of_clip_length(tmp_path_factory, name, seconds):
    wave = media.read_audio(get_clip(tmp_path_factory, name))
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == round(seconds * media.SAMPLE_RATE)
    assert 0.05 < float(np.abs(wave).max()) < 1.0


def test_audio_crop_and_features_shape(tmp_path_factory, features, frame_processor):
    path = get_clip(tmp_path_factory, "stereo48k")
    assert len(media.read_audio(path, start=0.5, end=1.5)) == 16000
    # a window past the end of the track is missing audio, not silent audio
    with pytest.raises(media.AudioMissingError, match="no audio in the window"):
        media.read_audio(path, start=5.0, end=6.0)
    feats = features(media.read_audio(path))
    assert feats.shape == (128, 3000) and feats.dtype == torch.float32
    assert float(feats.max()) <= 2.5 and float(feats.min()) >= float(feats.max()) - 2.0 - 1e-6


def test_missing_audio_policies(tmp_path_factory, frame_processor, features):
    path = get_clip(tmp_path_factory, "silent")
    with pytest.raises(media.AudioMissingError, match="no audio track"):
        media.read_audio(path)
    zeros = media.MediaProcessor(frame_processor, features, on_missing_audio="zeros").load(path)
    assert zeros.audio_missing is True and "no audio track" in zeros.audio_missing_reason
    assert torch.all(zeros.audio_features == -1.5)  # what 10 s of zeros become, as the reference
    assert zeros.pixel_values.shape == (8, 3, 48, 48)
    assert media.MediaProcessor(frame_processor, features, on_missing_audio="skip").load(path) is None
    with pytest.raises(media.AudioMissingError):
        media.MediaProcessor(frame_processor, features, on_missing_audio="error").load(path)
    ok = media.MediaProcessor(frame_processor, features).load(get_clip(tmp_path_factory, "stereo48k"))
    assert ok.audio_missing is False and ok.audio_missing_reason is None
    assert ok.frame_indices == [3, 9, 15, 21, 28, 34, 40, 46]
    late = media.MediaProcessor(frame_processor, features).load(
        get_clip(tmp_path_factory, "stereo48k"), start=1.9, end=1.9
    )  # window 1.9-2.9 s
    assert late.audio_missing is False  # 0.1 s of audio is still audio
    gone = media.MediaProcessor(frame_processor, features, decode_threads=1)
    with pytest.raises(MediaError, match="contains no frame"):
        gone.load(get_clip(tmp_path_factory, "stereo48k"), start=3.0, end=4.0)


def test_separate_audio_file_and_waveform(tmp_path_factory, frame_processor, features):
    path = get_clip(tmp_path_factory, "silent")
    other = get_clip(tmp_path_factory, "mono16k")
    proc = media.MediaProcessor(frame_processor, features, on_missing_audio="error")
    from_file = proc.load(path, other)
    assert from_file.audio_missing is False
    wave = media.read_audio(other)
    from_array = proc.load(path, wave)
    assert torch.equal(from_file.audio_features, from_array.audio_features)
    with pytest.raises(MediaError, match="1-D"):
        proc.load(path, np.zeros((2, 100), np.float32))


# ------------------------------------------------------------------ bad files


@pytest.fixture
def bad_files(tmp_path, tmp_path_factory):
    good = get_clip(tmp_path_factory, "stereo48k")
    data = good.read_bytes()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n")
    return {
        "missing": tmp_path / "nope.mp4",
        "empty": empty,
        "garbage": garbage,
        "truncated": truncated,
        "text": text,
        "folder": tmp_path,
    }


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "not found"),
        ("empty", "empty"),
        ("garbage", "corrupt"),
        ("text", "corrupt"),
    ],
)
def test_bad_video_files_raise_media_error_naming_the_file(bad_files, kind, message):
    path = bad_files[kind]
    with pytest.raises(MediaError, match=message) as info:
        media.read_video_frames(path)
    assert str(path) in str(info.value)
    with pytest.raises(MediaError) as info:
        media.read_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_truncated_video_is_an_error_not_a_silent_result(bad_files, backend):
    with pytest.raises(MediaError) as info:
        media.read_video_frames(bad_files["truncated"], backend=backend)
    assert "truncated.mp4" in str(info.value)


def test_a_folder_is_not_an_audio_file(bad_files):
    with pytest.raises(MediaError, match="folder"):
        media.read_audio(bad_files["folder"])


def test_unreadable_file(tmp_path_factory, tmp_path, monkeypatch):
    import os

    path = tmp_path / "locked.mp4"
    shutil.copy(get_clip(tmp_path_factory, "stereo48k"), path)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: simulate the permission check failing
        real_access = os.access
        monkeypatch.setattr(
            media.common.os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode)
        )
    with pytest.raises(MediaError, match="permission denied") as info:
        media.read_video_frames(path)
    assert str(path) in str(info.value)


def test_invalid_options_are_config_errors(frame_processor, features):
    with pytest.raises(ConfigError):
        media.MediaProcessor(frame_processor, features, audio_mode="decord")
    with pytest.raises(ConfigError):
        media.MediaProcessor(frame_processor, features, on_missing_audio="neutral")
    with pytest.raises(ConfigError):
        media.MediaProcessor(frame_processor, features, aspect_ratio="square")
    with pytest.raises(ConfigError):
        media.read_video_frames("x.mp4", backend="opencv")


def test_sequential_and_threaded_sample_loading_agree(tmp_path_factory, frame_processor, features):
    path = get_clip(tmp_path_factory, "gop")
    one = media.MediaProcessor(frame_processor, features, decode_threads=1).load(path)
    two = media.MediaProcessor(frame_processor, features, decode_threads=2).load(path)
    assert one.frame_indices == two.frame_indices
    assert torch.equal(one.pixel_values, two.pixel_values)
    assert torch.equal(one.audio_features, two.audio_features)
    # and both equal reading the two tracks separately
    separate = frame_processor(media.read_video_frames(path, threads=1).frames)
    assert torch.equal(one.pixel_values, separate)
    assert torch.equal(one.audio_features, features(media.read_audio(path)))
