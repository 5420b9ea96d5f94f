"""Video frames at chosen times, media durations, and FLAC bytes, with PyAV."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from ..errors import DataError
from ..voice.audio import SAMPLE_RATE

if TYPE_CHECKING:
    import av

SKIP_MARGIN = 0.25  # s: read_frames decodes every frame from this long before a wanted time
LAST_FRAME_SECONDS = 0.5  # the last frame counts as shown this long after it (later times are dropped)
REORDER_SECONDS = 1.0  # packets come in decoding order: a frame shows at most this long after its packet


def media_duration(path: str | Path) -> float:
    """Seconds, from the container (or its longest stream); DataError if unreadable."""
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
    """The decoded frame shown at each time (seconds, ascending), as (frame time, RGB uint8), decoding only
    what those frames need: the keyframes are found first (demuxed, not decoded), decoding starts at the
    keyframe before a time whenever one lies past the previous time (a seek instead of decoding the frames
    between), and frames that no other frame refers to (B-frames, mostly) are skipped unless they are
    near a wanted time. The same frames as decoding everything (tests/test_media.py), at a fraction of
    the cost (benchmarks/prepare.py). The last frame serves times up to LAST_FRAME_SECONDS after it; later
    times are dropped. DataError on a damaged or frameless video."""
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
            runs = _decoding_runs(times, _keyframes(container, stream, times[0], times[-1]))
            for start, targets in runs:
                if start is not None:
                    container.seek(start, stream=stream, backward=True)
                out += _decode_run(container, stream, targets, near, last_run=targets is runs[-1][1])
    except av.FFmpegError as error:
        raise DataError(f"{path}: damaged video ({error})") from error
    return out


def _keyframes(container: av.container.InputContainer, stream: av.VideoStream, first: float,
               last: float) -> list[tuple[float, int]]:
    """(time, pts) of the keyframes from about `first` to `last`: packets read, none decoded."""
    if stream.time_base is None:
        return []
    if first > 1.0:
        container.seek(int((first - 0.5) / stream.time_base), stream=stream, backward=True)
    found = []
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        time = float(packet.pts * stream.time_base)
        if packet.is_keyframe:
            found.append((time, packet.pts))
        if time > last + REORDER_SECONDS:
            break
    container.seek(0, stream=stream, backward=True)
    return found


def _decoding_runs(times: list[float], keyframes: list[tuple[float, int]]) -> list[tuple[int | None, list[float]]]:
    """The times grouped into runs of sequential decoding, each with the keyframe pts to seek to first
    (None: from the start of the file). A new run starts when a keyframe lies between two times."""
    runs: list[tuple[int | None, list[float]]] = []
    for index, time in enumerate(times):
        before = [(t, pts) for t, pts in keyframes if t <= time + 1e-6]
        key = before[-1] if before else None
        if runs and (key is None or key[0] <= times[index - 1] + 1e-6):
            runs[-1][1].append(time)  # no keyframe since the previous time: keep decoding
        else:
            runs.append((key[1] if key else None, [time]))
    return runs


def _decode_run(container: av.container.InputContainer, stream: av.VideoStream, times: list[float],
                near: float | None, last_run: bool) -> list[tuple[float, np.ndarray]]:
    """Decode from where the container stands to the frames shown at `times`."""
    out: list[tuple[float, np.ndarray]] = []
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
                return out
            previous = (frame.time, frame)
    while last_run and pending and previous is not None and pending[0] - previous[0] < LAST_FRAME_SECONDS:
        out.append((previous[0], previous[1].to_ndarray(format="rgb24")))  # the last frame stays on screen
        pending.pop(0)
    return out


def encode_flac(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float32 in [-1, 1] -> 16-bit FLAC bytes."""
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
