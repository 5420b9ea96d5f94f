"""Video frames at chosen times, media durations, and FLAC bytes, with PyAV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import DataError

SKIP_MARGIN = 0.25  # s: read_frames decodes every frame from this long before a wanted time (B-frame reordering)


def media_duration(path: str | Path) -> float:
    """Seconds, from the container (or its longest stream); DataError if unreadable."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
            if spans:
                return max(spans)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable video ({error})") from error
    raise DataError(f"{path}: the container states no duration")


def read_frames(path: str | Path, times: list[float]) -> list[tuple[float, np.ndarray]]:
    """The decoded frame shown at each time (seconds, ascending), as (frame time, RGB uint8).
    One seek to the first time, then sequential decoding in which frames that no other frame refers to
    (B-frames, mostly) are skipped unless they are near a wanted time: the same frames at half the cost
    (measured on 720p H.264: benchmarks/prepare.py). Times past the last frame are dropped. DataError on a
    damaged or frameless video."""
    import av

    if not times:
        return []
    out: list[tuple[float, np.ndarray]] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            # no frame threads: they cost more CPU per frame, and prepare already keeps every core busy
            rate = stream.average_rate or stream.guessed_rate
            near = max(SKIP_MARGIN, 3 / float(rate)) if rate else None  # decode everything this close to a time
            if times[0] > 1.0 and stream.time_base is not None:
                container.seek(int((times[0] - 0.5) / stream.time_base), stream=stream, backward=True)
            pending = list(times)
            previous: tuple[float, av.VideoFrame] | None = None
            for packet in container.demux(stream):
                if near is not None and packet.pts is not None and packet.time_base is not None:
                    far = float(packet.pts * packet.time_base) < pending[0] - near
                    stream.codec_context.skip_frame = "NONREF" if far else "DEFAULT"
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    while pending and frame.time > pending[0] + 1e-6:
                        # the frame on screen at pending[0] is the previous one (or this, if none came before)
                        chosen = previous if previous is not None else (frame.time, frame)
                        out.append((chosen[0], chosen[1].to_ndarray(format="rgb24")))
                        pending.pop(0)
                    if not pending:
                        break
                    previous = (frame.time, frame)
                if not pending:
                    break
            if pending and previous is not None and pending[0] - previous[0] < 0.5:
                out.append((previous[0], previous[1].to_ndarray(format="rgb24")))  # the last frame
    except av.FFmpegError as error:
        raise DataError(f"{path}: damaged video ({error})") from error
    return out


def encode_flac(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float32 in [-1, 1] -> 16-bit FLAC bytes."""
    import av

    samples = (np.clip(wave, -1, 1) * 32767).round().astype(np.int16)[None]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=sample_rate)
        stream.layout = "mono"
        stream.format = "s16"
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()
