"""One segment of a talking-face video -> its samples: the segment cut into 6 s windows, per window the
best frontal face of a few sampled frames (aligned, landmarks, face feature) and the window's audio; a
window without a usable face is recorded as a failure, a segment with none raises SegmentFailure. A whole
file (hours, perhaps) is read as a stream and its windows made a group at a time, so that its memory does not
grow with its length."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import AudioError, DataError
from ..voice.activity import Activity, SpeechDetector
from ..voice.audio import SAMPLE_RATE, load_audio
from ..voice.stream import Blocks, Collect, Cutter, Recording, Span, read
from .choose import FrameFace, frame_face
from .manifests import Segment
from .media import encode_flac, media_duration, read_frames
from .shards import Sample, jpeg_bytes

WINDOW_SECONDS = 6.0
MIN_LAST_WINDOW = 3.0  # a remainder shorter than this is dropped
MIN_SECONDS = 1.0  # shorter segments are failures
MIN_WINDOW_SPEECH = 0.5  # seconds of speech a window needs (the voice detector's regions)
MAX_PAUSE = 1.0  # seconds: speech regions of a whole file closer than this are one stretch
END_TOLERANCE = 0.5  # a segment may end this far past the file's end (rounding in manifests) and is trimmed
# windows whose frames are read, faces found and samples made at a time: an hour-long file's frames and audio are
# never all in memory
WINDOWS_PER_GROUP = 32
Window = tuple[str, float, float]  # (sample key, start, end in seconds of the file)


class FaceSampling(Protocol):
    """The settings a segment needs (`prepare.PrepareSettings` has them)."""

    frames: int  # sampled per window
    detector: str
    jpeg_quality: int


class SegmentFailure(Exception):
    """A segment (or one of its windows) that cannot become a sample: `reason` is a short tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def windows(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end) cut into WINDOW_SECONDS pieces; a short remainder is dropped unless it is all there is."""
    pieces = []
    t = start
    while end - t > 1e-6:
        piece_end = min(t + WINDOW_SECONDS, end)
        if pieces and piece_end - t < MIN_LAST_WINDOW:
            break
        pieces.append((t, piece_end))
        t = piece_end
    return pieces


def _audio(segment: Segment, end: float) -> np.ndarray:
    with _as_segment_failure():
        wave = load_audio(segment.source, offset=segment.start, duration=end - segment.start)
    _check_length(segment, end, len(wave))
    return wave


def _check_length(segment: Segment, end: float, samples: int) -> None:
    if samples < (end - segment.start - 0.1) * SAMPLE_RATE:
        raise SegmentFailure("truncated", f"{samples / SAMPLE_RATE:.2f} s of audio where "
                                          f"{end - segment.start:.2f} s were expected")


def _frame_times(start: float, end: float, count: int) -> list[float]:
    return [start + (i + 0.5) * (end - start) / count for i in range(count)]


def _window_faces(segment: Segment, pieces: list[tuple[float, float]], settings: FaceSampling,
                  ) -> list[list[FrameFace] | str]:
    """Per window, its good frame faces, or the reason it has none."""
    near = (segment.x, segment.y) if segment.x is not None and segment.y is not None else None
    if segment.image is not None:  # pairs: one photo serves every window
        from PIL import Image, UnidentifiedImageError

        try:
            photo = np.asarray(Image.open(segment.image).convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise SegmentFailure("bad-image", f"{segment.image}: {error}") from error
        face = frame_face(photo, 0.0, None, settings.detector)
        return [[face] if isinstance(face, FrameFace) else face for _ in pieces]
    times = [t for a, b in pieces for t in _frame_times(a, b, settings.frames)]
    try:
        frames = read_frames(segment.source, times)
    except DataError as error:
        raise SegmentFailure("bad-video", str(error)) from error
    results: list[list[FrameFace] | str] = []
    hint = None  # the face of the previous good frame: where to look first
    for a, b in pieces:
        found: list[FrameFace | str] = []
        for t, image in frames:
            if a - 0.05 <= t < b:
                found.append(frame_face(image, t, near, settings.detector, hint))
                hint = found[-1].box if isinstance(found[-1], FrameFace) else hint
        good = [f for f in found if isinstance(f, FrameFace)]
        reasons = Counter(f for f in found if isinstance(f, str))
        results.append(good or (reasons.most_common(1)[0][0] if reasons else "no-frames"))
    return results


def speech_pieces(segment: Segment, activity: Activity, end: float) -> tuple[list[Window], list[dict]]:
    """The windows of a segment that hold speech as (sample key, start, end), and a failure record for each
    window that does not, by the detector's `activity` over the segment. A segment
    from a manifest (start and end given: AVSpeech, pairs) is cut into fixed windows; a whole file (a
    --folder video, a VoxCeleb2 clip) is cut at the detector's speech boundaries, its speech regions joined
    across pauses shorter than MAX_PAUSE and then cut into windows."""
    if not activity.has_speech:
        raise SegmentFailure("no-speech", activity.describe())
    if segment.end is None:
        joined: list[list[float]] = []
        for a, b in activity.regions:
            if joined and a - joined[-1][1] < MAX_PAUSE:
                joined[-1][1] = b
            else:
                joined.append([a, b])
        spans = [piece for a, b in joined for piece in windows(segment.start + a, segment.start + b)
                 if piece[1] - piece[0] >= MIN_SECONDS]
        if not spans:
            raise SegmentFailure("no-speech", f"no stretch of speech of {MIN_SECONDS:g} s or more")
        return [(_window_key(segment, i, len(spans)), a, b) for i, (a, b) in enumerate(spans)], []
    spans = windows(segment.start, end)
    pieces, failures = [], []
    for index, (a, b) in enumerate(spans):
        key = _window_key(segment, index, len(spans))
        if activity.speech_in(a - segment.start, b - segment.start) >= MIN_WINDOW_SPEECH:
            pieces.append((key, a, b))
        else:
            failures.append(failure_record(segment, "no-speech", "window without speech", key, a, b))
    if not pieces:
        raise SegmentFailure("no-speech", f"no window with {MIN_WINDOW_SPEECH:g} s of speech")
    return pieces, failures


def _window_key(segment: Segment, index: int, count: int) -> str:
    return segment.key if count == 1 else f"{segment.key}-w{index}"


def _window_range(segment: Segment, start: float, end: float) -> tuple[int, int]:
    """A window's samples counted from the segment's start."""
    first = round((start - segment.start) * SAMPLE_RATE)
    return first, first + round((end - start) * SAMPLE_RATE)


def _cut_windows(segment: Segment, end: float, detector: SpeechDetector,
                 ) -> tuple[list[Window], list[dict], Iterator[np.ndarray]]:
    """A manifest segment (seconds long), decoded at once: its windows, their failures, and their audio."""
    wave = _audio(segment, end)
    pieces, failures = speech_pieces(segment, detector(wave), end)
    audio = (wave[slice(*_window_range(segment, a, b))] for _, a, b in pieces)
    return pieces, failures, audio


def _streamed_windows(segment: Segment, end: float, detector: SpeechDetector,
                      ) -> tuple[list[Window], list[dict], Iterator[np.ndarray]]:
    """A whole file (minutes or hours), read as a stream, never whole: once for its speech, then once more for
    its windows' audio, handed on as the stream passes them."""
    recording = Recording(segment.source)
    stop = round((end - segment.start) * SAMPLE_RATE)
    listening = detector.stream()
    with _as_segment_failure():
        read(recording, Span([(round(segment.start * SAMPLE_RATE), stop)], Blocks(listening)))
    assert listening.activity is not None
    _check_length(segment, end, round(listening.activity.seconds * SAMPLE_RATE))
    pieces, failures = speech_pieces(segment, listening.activity, end)
    return pieces, failures, _stream_cuts(segment, recording, stop, [_window_range(segment, a, b)
                                                                     for _, a, b in pieces])


def _stream_cuts(segment: Segment, recording: Recording, stop: int,
                 ranges: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """The audio of each window (`ranges`, from the segment's start), in order, cut as the file streams past."""
    ready = Collect()
    reader = Span([(round(segment.start * SAMPLE_RATE), stop)], Cutter(ranges, ready))
    with _as_segment_failure():
        for block in recording.blocks():
            reader.add(block)
            yield from ready.pieces
            ready.pieces.clear()
    reader.finish()
    yield from ready.pieces


@contextmanager
def _as_segment_failure() -> Iterator[None]:
    """An AudioError while reading a file is the segment's failure: no audio stream, or bad audio."""
    try:
        yield
    except AudioError as error:
        reason = "no-audio" if "no audio stream" in str(error) else "bad-audio"
        raise SegmentFailure(reason, str(error)) from error


def process_segment(segment: Segment, settings: FaceSampling, encoder: Any, detector: SpeechDetector,
                    failures: list[dict]) -> Iterator[Sample]:
    """The samples of one segment (one per usable window), made WINDOWS_PER_GROUP windows at a time as the
    segment's audio passes (a whole file is never held whole, nor all its frames); the failure records of its
    other windows are appended to `failures` after its last sample. Raises SegmentFailure when nothing of the
    segment is usable (before any sample), or when its video or audio turns out damaged midway (after the
    samples of the windows before)."""
    end = _checked_end(segment)
    pieces, lost, audio = (_streamed_windows if segment.end is None else _cut_windows)(segment, end, detector)
    made, missed = 0, []
    for first in range(0, len(pieces), WINDOWS_PER_GROUP):
        group = pieces[first:first + WINDOWS_PER_GROUP]
        for item in _group_samples(segment, end, group, [next(audio) for _ in group], settings, encoder):
            if isinstance(item, Sample):
                made += 1
                yield item
            else:
                missed.append(item)
    if not made:
        reasons = Counter(record["reason"] for record in missed)
        if set(reasons) == {"no-frames"}:
            raise SegmentFailure("bad-video", "no frame could be decoded in the segment")
        raise SegmentFailure(reasons.most_common(1)[0][0], f"no usable face in {len(pieces)} window(s)")
    failures += lost + missed


def _checked_end(segment: Segment) -> float:
    """Where the segment ends (the file's end when it names none); SegmentFailure for what cannot be read."""
    if segment.error is not None:
        reason, _, detail = segment.error.partition(": ")
        raise SegmentFailure(reason, detail)
    if not Path(segment.source).is_file():
        raise SegmentFailure("missing-file", segment.source)
    if segment.image is not None and not Path(segment.image).is_file():
        raise SegmentFailure("missing-file", segment.image)
    try:
        duration = media_duration(segment.source)
    except DataError as error:
        raise SegmentFailure("bad-video", str(error)) from error
    end = duration if segment.end is None else segment.end
    if segment.start >= duration - MIN_SECONDS / 2 or end > duration + END_TOLERANCE:
        raise SegmentFailure("past-end", f"segment {segment.start:.2f}-{end:.2f} s, file {duration:.2f} s")
    end = min(end, duration)
    if end - segment.start < MIN_SECONDS:
        raise SegmentFailure("too-short", f"{end - segment.start:.2f} s")
    return end


def _group_samples(segment: Segment, end: float, group: list[Window], audio: list[np.ndarray],
                   settings: FaceSampling, encoder: Any) -> list[Sample | dict]:
    """A group of windows -> a sample for each window with a usable face, a failure record for the others."""
    per_window = _window_faces(segment, [(a, b) for _, a, b in group], settings)
    good = [found for found in per_window if not isinstance(found, str)]
    features = encoder.embed(np.stack([face.crop.image for found in good for face in found])) if good else None
    out: list[Sample | dict] = []
    row = 0
    for (key, a, b), found, sound in zip(group, per_window, audio, strict=True):
        if isinstance(found, str):
            out.append(failure_record(segment, found, "window without a usable face", key, a, b))
            continue
        feature = features[row:row + len(found)].mean(axis=0)
        row += len(found)
        best = min(found, key=lambda face: abs(face.yaw))
        meta = {"key": key, "speaker": segment.speaker, "source": Path(segment.source).name,
                "start": round(a, 4), "end": round(b, 4), "segment_start": segment.start,
                "segment_end": round(end, 4), "point": None if segment.x is None else [segment.x, segment.y],
                "face_box": [round(v, 1) for v in (best.box.x0, best.box.y0, best.box.x1, best.box.y1)],
                "frame_time": round(best.time, 4), "frames_used": [round(f.time, 4) for f in found],
                "encoder": encoder.name, "image": segment.image and Path(segment.image).name}
        out.append(Sample(key, encode_flac(sound), jpeg_bytes(best.crop.image, settings.jpeg_quality),
                          best.crop.landmarks, feature.astype(np.float32), meta))
    return out


def failure_record(segment: Segment, reason: str, detail: str, key: str | None = None,
                   start: float | None = None, end: float | None = None) -> dict:
    return {"key": key or segment.key, "speaker": segment.speaker, "source": segment.source,
            "start": segment.start if start is None else round(start, 4),
            "end": segment.end if end is None else round(end, 4), "reason": reason, "detail": detail}
