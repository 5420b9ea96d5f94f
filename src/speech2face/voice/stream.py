"""A recording read a block at a time, never whole: a podcast of hours costs what a minute of it costs.

    recording = Recording("talk.flac")                     # a path, a file's bytes, or a 16 kHz wave
    clips = Collect()
    read(recording, Cutter([(0, 96_000), (480_000, 576_000)], clips))   # one pass; clips.pieces: two 6 s cuts

`stream_audio` decodes a recording into blocks of BLOCK_SAMPLES (60 s at 16 kHz) with `load_audio`'s checks; every
pass over a `Recording` decodes it again (hundreds of times faster than real time). What reads the blocks is a
chain of readers, each with `add(samples)` and `finish()`: `Cutter` hands on given sample ranges one by one,
`Span` the samples inside given ranges as they pass, `Blocks` joins pieces back into blocks, `Tee` hands one
stream to several readers, `Collect` keeps what reaches it; the speech detector (`SpeechDetector.stream`) and the
speaker encoder (`speakers.WindowEmbedder`) are readers too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
from tqdm import tqdm

from ..errors import AudioError
from .audio import BLOCK_SAMPLES, SAMPLE_RATE, as_wave, decode_pieces, describe_source, open_input
from .containers import AudioSource, Decoded, audio_stream, check_decoded

PROGRESS_AFTER_SECONDS = 2.0  # a pass shows a progress bar once it has run this long: a short file never does


class Reader(Protocol):
    """Something a stream of samples is handed to, piece by piece, in order; `finish` after the last piece."""

    def add(self, samples: np.ndarray) -> None: ...

    def finish(self) -> None: ...


class Collect:
    """Keeps every piece handed to it, in order (`.pieces`)."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []

    def add(self, samples: np.ndarray) -> None:
        self.pieces.append(samples)

    def finish(self) -> None:
        pass


class Tee:
    """Hands every piece to each of its readers in turn."""

    def __init__(self, *readers: Reader) -> None:
        self.readers = readers

    def add(self, samples: np.ndarray) -> None:
        for reader in self.readers:
            reader.add(samples)

    def finish(self) -> None:
        for reader in self.readers:
            reader.finish()


class Blocks:
    """Pieces of any length joined and handed on as new arrays of BLOCK_SAMPLES (the last one, shorter, at
    `finish`)."""

    def __init__(self, then: Reader) -> None:
        self.then = then
        self.block, self.filled = np.empty(BLOCK_SAMPLES, np.float32), 0

    def add(self, samples: np.ndarray) -> None:
        while samples.size:
            taken = min(samples.size, BLOCK_SAMPLES - self.filled)
            self.block[self.filled:self.filled + taken] = samples[:taken]
            self.filled, samples = self.filled + taken, samples[taken:]
            if self.filled == BLOCK_SAMPLES:
                self.then.add(self.block)
                self.block, self.filled = np.empty(BLOCK_SAMPLES, np.float32), 0

    def finish(self) -> None:
        if self.filled:
            self.then.add(self.block[:self.filled])
        self.filled = 0
        self.then.finish()


class Cutter:
    """Sample ranges [start, stop) of a stream, each handed on (a copy) once the stream has passed its end, in
    the order given; the ranges must be sorted by start and may overlap. What the stream lacks is cut short, as
    slicing the whole would cut it. Only the blocks the next range still needs are held."""

    def __init__(self, ranges: Sequence[tuple[int, int]], then: Reader) -> None:
        starts = [start for start, _ in ranges]
        if starts != sorted(starts) or any(start < 0 for start in starts):
            raise ValueError("ranges must be sorted by their start, from 0")
        self.ranges, self.then = list(ranges), then
        self.next = 0
        self.held: list[tuple[int, np.ndarray]] = []  # (offset in the stream, samples)
        self.seen = 0

    def add(self, samples: np.ndarray) -> None:
        self.held.append((self.seen, samples))
        self.seen += samples.size
        while self.next < len(self.ranges) and self.ranges[self.next][1] <= self.seen:
            self._hand_on()
        keep_from = self.ranges[self.next][0] if self.next < len(self.ranges) else self.seen
        self.held = [(offset, part) for offset, part in self.held if offset + part.size > keep_from]

    def finish(self) -> None:
        while self.next < len(self.ranges):
            self._hand_on()
        self.held = []
        self.then.finish()

    def _hand_on(self) -> None:
        start, stop = self.ranges[self.next]
        self.next += 1
        parts = [part[max(0, start - offset):max(0, stop - offset)] for offset, part in self.held
                 if offset < stop and offset + part.size > start]
        self.then.add(np.concatenate(parts) if parts else np.zeros(0, np.float32))


class Span:
    """Hands on only the samples of a stream inside the given ranges [start, stop) (stop None: to its end), in
    order, as the stream passes them: the ranges joined, never held (a speaker's hour-long turn costs nothing).
    The ranges must be sorted and must not overlap."""

    def __init__(self, ranges: Sequence[tuple[int, int | None]], then: Reader) -> None:
        for index, (start, stop) in enumerate(ranges):
            after = ranges[index + 1][0] if index + 1 < len(ranges) else None
            if start < 0 or (stop is not None and stop < start) or (
                    after is not None and (stop is None or after < stop)):
                raise ValueError("ranges must be sorted, from 0, and must not overlap")
        self.ranges, self.then = list(ranges), then
        self.next = 0
        self.seen = 0

    def add(self, samples: np.ndarray) -> None:
        first, self.seen = self.seen, self.seen + samples.size
        while self.next < len(self.ranges):
            start, stop = self.ranges[self.next]
            if start >= self.seen:
                return
            inside = samples[max(0, start - first):None if stop is None else max(0, stop - first)]
            if inside.size:
                self.then.add(inside)
            if stop is None or stop > self.seen:
                return
            self.next += 1

    def finish(self) -> None:
        self.then.finish()


def sample_range(start: float, end: float) -> tuple[int, int]:
    """[start, end) in seconds as samples, rounded as the pipeline has always cut `wave[round(a sr):round(b sr)]`."""
    return round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)


def stream_audio(source: AudioSource | np.ndarray, limit_seconds: float | None = None) -> Iterator[np.ndarray]:
    """A whole recording as 16 kHz float32 blocks of BLOCK_SAMPLES (the last one shorter), decoded as they are
    read: `as_wave(source, limit_seconds)` cut into blocks, never held whole, with the same checks and errors
    (those that need the end of the file, as a truncated file's, after the last block). An array is sliced
    (views: read, never written); a file object is read whole first (it cannot be read twice)."""
    if isinstance(source, np.ndarray) or not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        wave = as_wave(source, limit_seconds)
        yield from (wave[first:first + BLOCK_SAMPLES] for first in range(0, wave.size, BLOCK_SAMPLES))
        return
    name = describe_source(source)
    with open_input(source, name) as container:
        stream, declared, tagged = audio_stream(container, name, limit_seconds)
        found = Decoded()
        ready = Collect()
        blocks = Blocks(ready)
        for piece in decode_pieces(container, stream, name, None, declared, found, SAMPLE_RATE, limit_seconds):
            blocks.add(piece)
            yield from _checked(ready, name)
        blocks.finish()
        yield from _checked(ready, name)
        check_decoded(source, name, container, stream, found, declared, tagged, whole=True)


def _checked(ready: Collect, name: str) -> Iterator[np.ndarray]:
    """The blocks waiting in `ready`, each refused if it holds NaN or infinity and clipped to [-1, 1]."""
    for block in ready.pieces:
        if not np.isfinite(block).all():
            raise AudioError(f"{name}: audio holds NaN or infinite samples")
        yield np.clip(block, -1.0, 1.0, out=block)
    ready.pieces.clear()


class Recording:
    """A recording read as many times as needed, a block at a time (`stream_audio`), never held whole: a path or
    a file's bytes is decoded again for every pass, unless it fits in one block (a minute), which the first whole
    pass keeps (a short file is decoded once); an array (or a file object, read once) is sliced. `blocks_read`: how
    many blocks the last whole pass gave (None before one)."""

    def __init__(self, source: AudioSource | np.ndarray, limit_seconds: float | None = None) -> None:
        self.name = describe_source(source)
        self.limit_seconds = limit_seconds
        rewindable = isinstance(source, (str, os.PathLike, bytes, bytearray))
        self.source = source if rewindable else as_wave(source, limit_seconds)
        self.blocks_read: int | None = None

    def blocks(self) -> Iterator[np.ndarray]:
        if isinstance(self.source, np.ndarray):
            yield from stream_audio(self.source, self.limit_seconds)
            return
        only: np.ndarray | None = None  # the first block, while it is the only one
        for count, block in enumerate(stream_audio(self.source, self.limit_seconds), start=1):
            only = block if count == 1 else None
            yield block
        if only is not None:  # the whole recording was one block: later passes slice it
            self.source = only


def read(recording: Recording, reader: Reader, progress: str | None = None) -> None:
    """One pass over a recording: every block handed to `reader` (a `Tee` for several), then `finish`.
    `progress`: what the pass does, shown with the minutes read once it has run PROGRESS_AFTER_SECONDS."""
    blocks: Iterator[np.ndarray] = recording.blocks()
    if progress is not None:
        blocks = tqdm(blocks, desc=f"{os.path.basename(recording.name)}: {progress}", unit="min",
                      total=recording.blocks_read, delay=PROGRESS_AFTER_SECONDS, leave=False)
    count = 0
    for block in blocks:
        reader.add(block)
        count += 1
    recording.blocks_read = count
    reader.finish()
