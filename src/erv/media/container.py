"""PyAV access to one media file: a stream probe that decodes nothing, and one pass that reads
the frames the sampler wants (decord's numbering) and the audio track as ffmpeg decodes it."""

from __future__ import annotations

import bisect
import fractions
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from erv.errors import MediaError
from erv.media.common import GIF_FPS, NUM_FRAMES, SAMPLE_RATE, AudioMissingError, check_file
from erv.media.sampling import select_frame_indices


def open_container(path: str, *, fast_probe: bool = True):
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
        for st in container.streams
        if st.type in ("video", "audio") and st.codec_context is not None
    )
    if incomplete:
        container.close()
        return attempt(None)
    return container


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

    frames: list[np.ndarray]  # each (H, W, 3) uint8
    indices: list[int] | None  # frame indices read from the file/folder; None for arrays
    num_available: int | None  # frames in the source
    fps: float | None
    source: str


class MediaFile:
    """One pass over a media file: the packets of its video and audio streams, kept in memory.

    Reading both tracks from one open container halves the opening cost when a sample needs
    frames and audio from the same file (the usual case). Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], *, video: bool = True, audio: bool = True) -> None:
        import av

        self.path = check_file(path, "media file")
        self._container = open_container(self.path)
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
                        (self.video_packets if packet.stream.index == video_index else self.audio_packets).append(
                            packet
                        )
                except av.FFmpegError as exc:
                    raise MediaError(f"cannot read {self.path}: corrupt media ({exc})") from exc
        except BaseException:
            self._container.close()
            raise

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frames
    def frames(
        self,
        num_frames: int | None = NUM_FRAMES,
        start: float | None = None,
        end: float | None = None,
        threads: int = 1,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
    ) -> DecodedFrames:
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
        state = {"turns": None, "out": 0, "position": 0}  # position = decord's curr_frame_
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
            raise MediaError(
                f"{path}: could not decode frame(s) {missing} of {len(packets)} (truncated or corrupt video)"
            )
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
