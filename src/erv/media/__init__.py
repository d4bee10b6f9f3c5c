"""Video frames and audio for HumanOmni: sampling, decoding, SigLIP and Whisper preprocessing.

Why this package exists: the reference pipeline (ERV / R1-Omni `humanomni/mm_utils.py`) reads
frames with decord one sample at a time and audio with decord's AudioReader, which corrupts
stereo or non-16 kHz tracks and silently replaces unreadable audio with 10 s of zeros. Here:

* frame indices are the reference's (`sampling`: `uniform_frame_indices`, `crop_frame_range`);
* frames decode with PyAV by default, bit-identical to decord's `VideoReader(num_threads=1)`
  RGB output but faster (`container.MediaFile`: one pass over the file for frames and audio,
  a stream probe that decodes nothing, unneeded non-reference frames not decoded at all, only
  the needed frames converted, optional decoder and helper threads); `video_backend="decord"`
  uses decord itself (`video`);
* SigLIP preprocessing (`features.FrameProcessor`) equals transformers' PIL
  `SiglipImageProcessor` bit for bit, with the training-time square padding
  (`aspect_ratio="pad"`) or none (inference);
* audio decodes in-process to 16 kHz mono exactly as `ffmpeg -i clip -ac 1 -ar 16000` does
  (`audio_mode="ffmpeg"`, the default) or exactly as the reference's decord reader does
  (`audio_mode="reference"`, with its bugs, for evaluations that must match the released
  checkpoints' training input) (`audio`);
* a clip without an audio track is flagged (`MediaSample.audio_missing`) and handled by an
  explicit policy (`on_missing_audio`), never silently (`processor.MediaProcessor`);
* every unreadable input raises :class:`erv.errors.MediaError` naming the file.

User documentation: docs/media.md.
"""

from erv.media.audio import crop_waveform, read_audio
from erv.media.common import (
    ASPECT_RATIOS,
    AUDIO_MODES,
    DUMMY_VIDEO_FRAMES,
    FRAME_FOLDER_FPS,
    GIF_FPS,
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
    default_decode_threads,
)
from erv.media.container import DecodedFrames, MediaFile
from erv.media.features import AudioFeatureExtractor, FrameProcessor, expand_to_square
from erv.media.processor import AudioInput, MediaProcessor, MediaSample
from erv.media.sampling import crop_frame_range, fps_frame_indices, select_frame_indices, uniform_frame_indices
from erv.media.video import read_video_frames

__all__ = [
    "ASPECT_RATIOS",
    "AUDIO_MODES",
    "DUMMY_VIDEO_FRAMES",
    "FRAME_FOLDER_FPS",
    "GIF_FPS",
    "MISSING_AUDIO_POLICIES",
    "MISSING_AUDIO_SECONDS",
    "NUM_FRAMES",
    "SAMPLE_RATE",
    "VIDEO_BACKENDS",
    "AspectRatio",
    "AudioFeatureExtractor",
    "AudioInput",
    "AudioMissingError",
    "AudioMode",
    "DecodedFrames",
    "FrameProcessor",
    "MediaFile",
    "MediaProcessor",
    "MediaSample",
    "MissingAudioPolicy",
    "VideoBackend",
    "VideoInput",
    "crop_frame_range",
    "crop_waveform",
    "default_decode_threads",
    "expand_to_square",
    "fps_frame_indices",
    "read_audio",
    "read_video_frames",
    "select_frame_indices",
    "uniform_frame_indices",
]
