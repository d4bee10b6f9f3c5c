"""Video frames and audio for HumanOmni: sampling, decoding, SigLIP and Whisper preprocessing.

Why this module exists: the reference pipeline (ERV / R1-Omni `humanomni/mm_utils.py`) reads
frames with decord one sample at a time and audio with decord's AudioReader, which corrupts
stereo or non-16 kHz tracks and silently replaces unreadable audio with 10 s of zeros. Here:

* frame indices are the reference's (`uniform_frame_indices`, `crop_frame_range`);
* frames decode with PyAV by default, bit-identical to decord's `VideoReader(num_threads=1)`
  RGB output but faster (`MediaFile`: one pass over the file for frames and audio, a stream
  probe that decodes nothing, unneeded non-reference frames not decoded at all, only the
  needed frames converted, optional decoder and helper threads); `video_backend="decord"`
  uses decord itself;
* SigLIP preprocessing (`FrameProcessor`) equals transformers' PIL `SiglipImageProcessor` bit
  for bit, with the training-time square padding (`aspect_ratio="pad"`) or none (inference);
* audio decodes in-process to 16 kHz mono exactly as `ffmpeg -i clip -ac 1 -ar 16000` does
  (`audio_mode="ffmpeg"`, the default) or exactly as the reference's decord reader does
  (`audio_mode="reference"`, with its bugs, for evaluations that must match the released
  checkpoints' training input);
* a clip without an audio track is flagged (`MediaSample.audio_missing`) and handled by an
  explicit policy (`on_missing_audio`), never silently;
* every unreadable input raises :class:`erv.errors.MediaError` naming the file.

User documentation: docs/media.md.
"""

from __future__ import annotations

import bisect
import fractions
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, Union

import numpy as np
import torch
from PIL import Image

from erv.config_files import read_json_config
from erv.errors import ConfigError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import WhisperFeatureExtractor

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
FrameLike = Union[np.ndarray, Image.Image, str, os.PathLike]
VideoInput = Union[str, os.PathLike, np.ndarray, Sequence[FrameLike]]

AUDIO_MODES = ("ffmpeg", "reference")
MISSING_AUDIO_POLICIES = ("zeros", "skip", "error")
VIDEO_BACKENDS = ("pyav", "decord")
ASPECT_RATIOS = ("pad", None)


class AudioMissingError(MediaError):
    """The media file has no (decodable) audio track; callers apply an `on_missing_audio` policy."""


# --------------------------------------------------------------------------------------------
# Frame index selection (reference: mm_utils.frame_sample / process_video)
# --------------------------------------------------------------------------------------------

def uniform_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """Middle of each of `num_frames` equal segments of `num_available - 1`, as the reference.

    The reference computes `round((seg*i + seg*(i+1)) / 2 + 1e-6)` with seg = (d-1)/n in float64
    and numpy's round-half-to-even; the 1e-6 makes exact halves round up. Short videos repeat
    indices instead of padding.
    """
    if num_available < 1:
        raise ValueError(f"cannot sample from {num_available} frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
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


def crop_frame_range(num_frames_of_video: int, fps: float, start: float | None = None,
                     end: float | None = None) -> tuple[int, int]:
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


def select_frame_indices(num_frames_of_video: int, fps: float, num_frames: int | None,
                         start: float | None = None, end: float | None = None,
                         *, source: str = "video") -> list[int]:
    """Indices of the frames the reference would read (crop window, then sampling)."""
    if num_frames_of_video < 1:
        raise MediaError(f"{source}: no frames to read")
    first, last = crop_frame_range(num_frames_of_video, fps, start, end)
    if last < first:
        raise MediaError(f"{source}: the window start={start}, end={end} s contains no frame "
                         f"({num_frames_of_video} frames at {fps:g} fps)")
    span = last - first + 1
    if num_frames is None:
        picked = fps_frame_indices(span, fps)
    else:
        picked = uniform_frame_indices(span, num_frames)
    return [first + i for i in picked]


# --------------------------------------------------------------------------------------------
# File checks and PyAV helpers
# --------------------------------------------------------------------------------------------

def _check_file(path: str | os.PathLike[str], what: str = "media file") -> str:
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


def _open_container(path: str, *, fast_probe: bool = True):
    """Open with PyAV; by default the stream probe does not decode any frame.

    `avformat_find_stream_info` normally decodes several frames of every stream (for H.264
    enough to guess the reorder delay), which costs as much as decoding a tenth of a short
    clip, twice when video and audio are read separately. With `skip_frame=all` for the probe
    decoders the parameters come from the container headers; decoding itself uses fresh
    codec contexts and is unaffected (tests compare against decord and ffmpeg; the pixel format,
    unknown until the first frame, is not needed to decode). When a stream's dimensions or
    sample rate stay unknown, the file is reopened with the normal probe.
    """
    import av

    def attempt(options: dict[str, str] | None):
        try:
            return av.open(path, metadata_errors="ignore", options=options)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot open {path}: corrupt or unsupported media ({exc})") from exc
        except OSError as exc:
            raise MediaError(f"cannot open {path}: {exc}") from exc

    if not fast_probe:
        return attempt(None)
    container = attempt({"skip_frame": "all"})
    incomplete = any(
        (st.type == "video" and not st.codec_context.width)
        or (st.type == "audio" and (not st.codec_context.sample_rate or not st.codec_context.channels))
        for st in container.streams if st.type in ("video", "audio") and st.codec_context is not None)
    if incomplete:
        container.close()
        return attempt(None)
    return container


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


def _resolve_threads(threads: int | str | None) -> int:
    if threads in (None, "auto", 0):
        return default_decode_threads()
    if isinstance(threads, str) or int(threads) < 1:
        raise ConfigError(f"decode threads must be a positive integer or 'auto', got {threads!r}")
    return int(threads)


def _rotation_turns(frame: Any) -> int:
    """Quarter turns (numpy rot90 sense) that decord applies for the display-matrix rotation.

    decord only honours multiples of 90 degrees and ignores other angles; so do we.
    """
    angle = getattr(frame, "rotation", 0) or 0
    if angle % 90:
        return 0
    return int(round(angle / 90)) % 4


# --------------------------------------------------------------------------------------------
# Video decoding
# --------------------------------------------------------------------------------------------

@dataclass
class DecodedFrames:
    """Raw RGB frames of one video and where they came from."""

    frames: list[np.ndarray]            # each (H, W, 3) uint8
    indices: list[int] | None           # frame indices read from the file/folder; None for arrays
    num_available: int | None           # frames in the source
    fps: float | None
    source: str


class MediaFile:
    """One pass over a media file: the packets of its video and audio streams, kept in memory.

    Reading both tracks from one open container halves the opening cost when a sample needs
    frames and audio from the same file (the usual case). Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], *, video: bool = True, audio: bool = True) -> None:
        import av

        self.path = _check_file(path, "media file")
        self._container = _open_container(self.path)
        try:
            streams = self._container.streams
            self.video_stream = streams.best("video") if video and streams.video else None
            self.audio_stream = streams.best("audio") if audio and streams.audio else None
            wanted = [st for st in (self.video_stream, self.audio_stream) if st is not None]
            self.video_packets: list[Any] = []
            self.audio_packets: list[Any] = []
            if wanted:
                video_index = self.video_stream.index if self.video_stream is not None else -1
                try:
                    for packet in self._container.demux(wanted):
                        if packet.size == 0:
                            continue
                        (self.video_packets if packet.stream.index == video_index else self.audio_packets).append(packet)
                except av.FFmpegError as exc:
                    raise MediaError(f"cannot read {self.path}: corrupt media ({exc})") from exc
        except BaseException:
            self._container.close()
            raise

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "MediaFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frames
    def frames(self, num_frames: int | None = NUM_FRAMES, start: float | None = None,
               end: float | None = None, threads: int = 1,
               on_frame: Callable[[int, np.ndarray], None] | None = None) -> DecodedFrames:
        """Decode only what the sampled frames need, replicating decord's frame numbering.

        decord numbers frames by sorting the stream's packets by pts, and reaches a frame by
        decoding forward from the current position, or from the frame's keyframe when that
        differs from the current one. We feed the decoder from the packets in memory with the
        same plan; packets of frames nobody needs are decoded with `skip_frame=NONREF`, so
        non-reference frames (most B-frames) are dropped before decoding, which cannot change
        any other frame. Only the needed frames are converted to RGB (decord's conversion).
        `threads` > 1 uses FFmpeg frame threads; `on_frame(index, rgb)` is called as soon as
        each needed frame is available (to overlap its preprocessing with the decoding).
        """
        import av

        path, stream, packets = self.path, self.video_stream, self.video_packets
        if stream is None:
            raise MediaError(f"{path}: no video stream")
        if not packets:
            raise MediaError(f"{path}: the video stream has no frames")
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        if Path(path).suffix.lower() == ".gif":
            fps = GIF_FPS
        wanted = select_frame_indices(len(packets), fps, num_frames, start, end, source=path)
        targets = sorted(set(wanted))
        target_set = set(targets)

        pts = [p.pts for p in packets]
        by_pts = all(t is not None for t in pts) and len(set(pts)) == len(pts)
        if by_pts:
            order = sorted(range(len(pts)), key=lambda k: pts[k])
            display_of_pts = {pts[k]: d for d, k in enumerate(order)}
            packet_display = [display_of_pts[t] for t in pts]
            keys = [k for k, p in enumerate(packets) if p.is_keyframe]
        else:  # no usable timestamps: count frames in output order, no skipping or seeking
            display_of_pts, packet_display, keys = {}, list(range(len(packets))), []

        def keyframe_of(pos: int) -> int:
            # decord's LocateKeyframe: the last key packet count <= pos (0 before the first).
            i = bisect.bisect_right(keys, pos) - 1
            return keys[i] if i >= 0 else 0

        ctx = stream.codec_context
        if threads > 1:
            ctx.thread_type = "FRAME"
        ctx.thread_count = threads
        got: dict[int, np.ndarray] = {}
        state = {"turns": None, "out": 0, "position": 0}   # position = decord's curr_frame_
        # One converter for all frames: `frame.to_ndarray` would build a new swscale context
        # per frame, each starting (and joining) one slice thread per CPU.
        reformatter = av.video.reformatter.VideoReformatter()

        def take(frame: Any) -> None:
            d = display_of_pts.get(frame.pts) if by_pts else state["out"]
            state["out"] += 1
            if d is None:
                return
            state["position"] = d + 1
            if d in target_set and d not in got:
                if state["turns"] is None:
                    state["turns"] = _rotation_turns(frame)
                rgb = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
                if state["turns"]:
                    rgb = np.ascontiguousarray(np.rot90(rgb, state["turns"]))
                got[d] = rgb
                if on_frame is not None:
                    on_frame(d, rgb)

        next_packet = 0
        try:
            for target in targets:
                if target in got:
                    continue
                position = state["position"]
                if by_pts and (keyframe_of(target) != keyframe_of(position) or target < position):
                    ctx.flush_buffers()
                    next_packet = state["position"] = keyframe_of(target)
                while target not in got and next_packet < len(packets):
                    if by_pts:
                        ctx.skip_frame = "DEFAULT" if packet_display[next_packet] in target_set else "NONREF"
                    for frame in ctx.decode(packets[next_packet]):
                        take(frame)
                    next_packet += 1
                if target not in got:
                    ctx.skip_frame = "DEFAULT"
                    for frame in ctx.decode(None):
                        take(frame)
                    break
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode {path}: corrupt video data ({exc})") from exc
        missing = [t for t in targets if t not in got]
        if missing:
            raise MediaError(f"{path}: could not decode frame(s) {missing} of {len(packets)} "
                             f"(truncated or corrupt video)")
        return DecodedFrames([got[i] for i in wanted], wanted, len(packets), fps, path)

    # ------------------------------------------------------------------ audio
    def audio(self) -> np.ndarray:
        """16 kHz mono float32 equal to `ffmpeg -i path -ac 1 -ar 16000 -f f32le -`.

        Decoded samples past the stream's end (start time + duration, i.e. the encoder's end
        padding that the container's edit list excludes) are dropped, or past each packet's
        duration when the stream has none; the rest is concatenated and converted in a single
        libswresample pass (down-mix with FFmpeg's default matrix, e.g. (L + R) / sqrt(2) for
        stereo, then resampling) followed by a flush: what the ffmpeg command line does.
        """
        import av

        path, stream = self.path, self.audio_stream
        if stream is None:
            raise AudioMissingError(f"{path}: no audio track")
        tb = stream.time_base
        end_ts = None
        if stream.duration is not None and tb is not None:
            end_ts = (stream.start_time or 0) + stream.duration
            tb_num, tb_den = tb.numerator, tb.denominator
        ctx = stream.codec_context
        chunks: list[np.ndarray] = []
        fmt = layout = None
        rate = 0

        def take(frame: Any) -> None:
            nonlocal fmt, layout, rate
            data = frame.to_ndarray()
            if not frame.format.is_planar:
                data = data.reshape(-1, len(frame.layout.channels)).T
            keep = data.shape[1]
            if end_ts is not None and frame.pts is not None:
                # samples before the stream end, rounded to nearest, in integer arithmetic
                left = (end_ts - frame.pts) * tb_num * frame.sample_rate
                keep = min(keep, (2 * left + tb_den) // (2 * tb_den))
            elif getattr(frame, "duration", None) and frame.time_base:
                keep = min(keep, int(round(float(frame.duration * frame.time_base) * frame.sample_rate)))
            if keep <= 0:
                return
            chunks.append(data[:, :keep])
            if fmt is None:
                fmt, layout, rate = frame.format.name, frame.layout.name, frame.sample_rate

        try:
            for packet in self.audio_packets:
                for frame in ctx.decode(packet):
                    take(frame)
            for frame in ctx.decode(None):
                take(frame)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode the audio of {path}: corrupt audio data ({exc})") from exc
        if not chunks:
            raise AudioMissingError(f"{path}: the audio track is empty")

        data = np.ascontiguousarray(np.concatenate(chunks, axis=1))
        planar = fmt if fmt.endswith("p") else fmt + "p"
        if data.shape[0] == 1:
            layout = "mono"
        frame = av.AudioFrame.from_ndarray(data, format=planar, layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = fractions.Fraction(1, rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        wave = np.concatenate(out) if out else np.zeros(0, np.float32)
        if not np.isfinite(wave).all():
            raise MediaError(f"{path}: the decoded audio contains NaN or infinite samples (corrupt track)")
        return wave.astype(np.float32, copy=False)


def _decode_decord(path: str, num_frames: int | None, start: float | None, end: float | None,
                   threads: int) -> DecodedFrames:
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


def _frame_folder_files(folder: Path) -> list[Path]:
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    bad = [n for n in names if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise MediaError(f"frame folder {folder} contains non-image entries {bad[:5]}: frame "
                         f"numbering would differ from the folder's frames")
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


def read_video_frames(video: VideoInput, *, num_frames: int | None = NUM_FRAMES,
                      start: float | None = None, end: float | None = None,
                      backend: VideoBackend = "pyav", threads: int | str | None = "auto") -> DecodedFrames:
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
            files = _frame_folder_files(path)
            wanted = select_frame_indices(len(files), FRAME_FOLDER_FPS, num_frames, start, end,
                                          source=str(path))
            cache: dict[int, np.ndarray] = {}
            frames = []
            for i in wanted:
                if i not in cache:
                    cache[i] = _read_image(files[i])
                frames.append(cache[i])
            return DecodedFrames(frames, wanted, len(files), FRAME_FOLDER_FPS, str(path))
        name = _check_file(path, "video file")
        n_threads = _resolve_threads(threads)
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


# --------------------------------------------------------------------------------------------
# SigLIP preprocessing
# --------------------------------------------------------------------------------------------

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
        canvas[top:top + h] = frame
    else:
        left = (h - w) // 2
        canvas[:, left:left + w] = frame
    return canvas


class FrameProcessor:
    """SigLIP image preprocessing, bit-identical to transformers' PIL `SiglipImageProcessor`.

    That processor resizes uint8 RGB with PIL bicubic to S x S, rescales in float64 by 1/255,
    casts to float32 and normalises with float32 mean/std. Resizing stays PIL (the only way to
    be bit-exact); the elementwise part is a 256-entry lookup table per channel computed with
    the very same operations, which makes it exact and about ten times faster.
    """

    def __init__(self, size: int | tuple[int, int] = 224, *, image_mean: Sequence[float] = (0.5, 0.5, 0.5),
                 image_std: Sequence[float] = (0.5, 0.5, 0.5), rescale_factor: float = 1 / 255,
                 resample: int = Image.Resampling.BICUBIC, do_resize: bool = True,
                 do_rescale: bool = True, do_normalize: bool = True) -> None:
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
    def from_pretrained(cls, vision_tower: str | os.PathLike[str]) -> "FrameProcessor":
        """Read `preprocessor_config.json` of a SigLIP folder or hub id (cached, never downloaded here)."""
        cfg = _load_preprocessor_config(vision_tower, "vision tower (SigLIP)")
        size = cfg.get("size") or {}
        if isinstance(size, dict) and "height" in size and "width" in size:
            hw: int | tuple[int, int] = (int(size["height"]), int(size["width"]))
        elif isinstance(size, int):
            hw = size
        else:
            raise ConfigError(f"{vision_tower}: preprocessor size {size!r} is not a fixed height x width; "
                              f"only SigLIP-style square resizing is supported")
        if cfg.get("do_center_crop"):
            raise ConfigError(f"{vision_tower}: center-cropping image processors are not supported")
        return cls(hw, image_mean=cfg.get("image_mean", (0.5, 0.5, 0.5)),
                   image_std=cfg.get("image_std", (0.5, 0.5, 0.5)),
                   rescale_factor=cfg.get("rescale_factor", 1 / 255),
                   resample=cfg.get("resample", Image.Resampling.BICUBIC),
                   do_resize=cfg.get("do_resize", True), do_rescale=cfg.get("do_rescale", True),
                   do_normalize=cfg.get("do_normalize", True))

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
        batch = np.stack(resized)                         # (T, H, W, 3) uint8
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


# --------------------------------------------------------------------------------------------
# Audio decoding
# --------------------------------------------------------------------------------------------

def _crop_waveform(wave: np.ndarray, start: float | None, end: float | None,
                   source: str = "audio") -> np.ndarray:
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
        raise AudioMissingError(f"{source}: no audio in the window start={start}, end={end} s "
                                f"(the track lasts {len(wave) / SAMPLE_RATE:.2f} s)")
    return wave[lo:hi]


def _has_audio_track(path: str) -> bool:
    container = _open_container(path)
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


def read_audio(source: str | os.PathLike[str], *, mode: AudioMode = "ffmpeg",
               start: float | None = None, end: float | None = None) -> np.ndarray:
    """16 kHz mono float32 waveform of a video or audio file.

    Raises :class:`AudioMissingError` when the file has no audio track (or an empty one) and
    :class:`MediaError` when it cannot be read at all.
    """
    if mode not in AUDIO_MODES:
        raise ConfigError(f"unknown audio mode {mode!r}; choose one of {AUDIO_MODES}")
    path = _check_file(source, "media file")
    if mode == "reference":
        wave = _decode_audio_reference(path)
    else:
        with MediaFile(path, video=False, audio=True) as mf:
            wave = mf.audio()
    return _crop_waveform(wave, start, end, path)


# --------------------------------------------------------------------------------------------
# Whisper features
# --------------------------------------------------------------------------------------------

class AudioFeatureExtractor:
    """Whisper log-mel features with the tower's `WhisperFeatureExtractor` settings.

    `exact=True` calls the extractor itself (torch STFT path, as the reference). The default
    computes the same thing over the clip's own length instead of the zero-padded 30 s window:
    frames that only see padding are exactly log10(1e-10) = -10 before normalisation, so they
    are filled in, and the global max (hence the clipping) is unchanged. Tests check it against
    the extractor (max difference ~6e-8); it is 3x faster for short clips.
    """

    def __init__(self, extractor: "WhisperFeatureExtractor", *, exact: bool = False) -> None:
        if int(extractor.sampling_rate) != SAMPLE_RATE:
            raise ConfigError(f"the Whisper feature extractor expects {extractor.sampling_rate} Hz; "
                              f"this pipeline produces {SAMPLE_RATE} Hz audio")
        self.extractor = extractor
        self.exact = exact or float(getattr(extractor, "dither", 0.0) or 0.0) != 0.0
        self._mel = torch.from_numpy(np.asarray(extractor.mel_filters)).to(torch.float32).T.contiguous()
        self._window = torch.hann_window(extractor.n_fft)

    @classmethod
    def from_pretrained(cls, audio_tower: str | os.PathLike[str], *, exact: bool = False) -> "AudioFeatureExtractor":
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
        wave = np.asarray(waveform.detach().cpu() if isinstance(waveform, torch.Tensor) else waveform,
                          dtype=np.float32).reshape(-1)
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
        buf[:len(wave)] = wave
        stft = torch.stft(torch.from_numpy(buf), n_fft, hop, window=self._window, return_complex=True)
        computed = min(length // hop, total_frames)
        power = (stft[..., :computed].abs() ** 2).contiguous()
        mel = self._mel @ power
        full = torch.full((mel.shape[0], total_frames), 1e-10, dtype=torch.float32)
        full[:, :computed] = mel
        log_spec = torch.clamp(full, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


# --------------------------------------------------------------------------------------------
# One sample: frames + audio features + flags
# --------------------------------------------------------------------------------------------

@dataclass
class MediaSample:
    """Model-ready media of one sample."""

    pixel_values: torch.Tensor                    # (T, 3, H, W) float32
    audio_features: torch.Tensor | None           # (mel bins, frames) float32; None if not requested
    audio_missing: bool = False                   # no audio: features are the zeros substitute
    frame_indices: list[int] | None = None        # indices read from the source (None for arrays)
    source: str | None = None
    audio_missing_reason: str | None = None       # why, when audio_missing


AudioInput = Union[None, str, os.PathLike, np.ndarray, torch.Tensor]


class MediaProcessor:
    """Turns a video (and optionally separate audio) into a :class:`MediaSample`.

    `on_missing_audio` decides what happens when the file has no audio track (the reference
    silently uses 10 s of zeros): "zeros" does the same but sets `audio_missing=True`, "skip"
    makes :meth:`load` return None, "error" raises :class:`AudioMissingError`.
    """

    def __init__(self, frame_processor: FrameProcessor, feature_extractor: AudioFeatureExtractor | None, *,
                 num_frames: int | None = NUM_FRAMES, aspect_ratio: AspectRatio = None,
                 audio_mode: AudioMode = "ffmpeg", on_missing_audio: MissingAudioPolicy = "zeros",
                 video_backend: VideoBackend = "pyav", decode_threads: int | str | None = "auto") -> None:
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

    def frames(self, video: VideoInput, *, start: float | None = None, end: float | None = None,
               aspect_ratio: AspectRatio | str = "default") -> tuple[torch.Tensor, DecodedFrames]:
        decoded = read_video_frames(video, num_frames=self.num_frames, start=start, end=end,
                                    backend=self.video_backend, threads=self.decode_threads)
        ratio = self.aspect_ratio if aspect_ratio == "default" else aspect_ratio
        return self.frame_processor(decoded.frames, aspect_ratio=ratio), decoded  # type: ignore[arg-type]

    def dummy_frames(self) -> torch.Tensor:
        """The all-zero video the reference uses for audio-only and text-only requests."""
        fp = self.frame_processor
        return torch.zeros(DUMMY_VIDEO_FRAMES, 3, fp.height, fp.width)

    def waveform(self, audio: AudioInput, *, start: float | None = None,
                 end: float | None = None) -> np.ndarray:
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
        return _crop_waveform(wave, start, end)

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

    def audio(self, audio: AudioInput, *, start: float | None = None,
              end: float | None = None) -> tuple[torch.Tensor | None, str | None]:
        """(features, why the audio is missing or None) under the missing-audio policy.

        Features None means the sample is skipped (policy "skip").
        """
        try:
            wave, missing = self.waveform(audio, start=start, end=end), None
        except AudioMissingError as exc:
            wave, missing = self._missing(exc), str(exc)
            if wave is None:
                return None, missing
        return self._features(wave), missing

    def load(self, video: VideoInput | None, audio: AudioInput = None, *, start: float | None = None,
             end: float | None = None, with_audio: bool = True, with_video: bool = True,
             aspect_ratio: AspectRatio | str = "default") -> MediaSample | None:
        """Frames and Whisper features of one sample; None when skipped by the missing-audio policy.

        `audio=None` reads the audio track of the video file itself (the reference's behaviour);
        then both tracks come from one pass over the file.
        """
        ratio = self.aspect_ratio if aspect_ratio == "default" else aspect_ratio
        is_file = isinstance(video, (str, os.PathLike)) and not Path(video).is_dir()
        if (with_video and with_audio and audio is None and is_file
                and self.video_backend == "pyav" and self.audio_mode == "ffmpeg"):
            threads = _resolve_threads(self.decode_threads)
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

    def _load_overlapped(self, mf: "MediaFile", start: float | None, end: float | None,
                         ratio: AspectRatio, threads: int):
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

    def _file_audio(self, mf: "MediaFile", start: float | None,
                    end: float | None) -> tuple[torch.Tensor | None, str | None]:
        try:
            wave, missing = _crop_waveform(mf.audio(), start, end, mf.path), None
        except AudioMissingError as exc:
            wave, missing = self._missing(exc), str(exc)
            if wave is None:
                return None, missing
        return self._features(wave), missing

    def _sample(self, pixels: torch.Tensor, features: torch.Tensor | None, missing: str | None,
                indices: list[int] | None, source: str | None) -> MediaSample:
        return MediaSample(pixels, features, missing is not None, indices, source, missing)
