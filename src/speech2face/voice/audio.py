"""Audio front end: decode any audio or video file to 16 kHz mono, fit it to 6 s, and compute the
paper's compressed complex spectrogram.

The constants are named once here; everything else derives from them.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soxr
import torch

from ..errors import AudioError
from .containers import AudioSource, Decoded, audio_stream, check_decoded, packet_time

SAMPLE_RATE = 16_000  # Hz, the paper's rate
WIN_LENGTH = 400  # samples per frame: 25 ms
HOP_LENGTH = 160  # samples between frames: 10 ms
N_FFT = 512  # each frame is zero-padded at the end to this length
N_FREQ = N_FFT // 2 + 1  # 257 frequency bins
COMPRESSION_POWER = 0.3  # sgn(x) |x|^0.3 on real and imaginary parts separately
CLIP_SECONDS = 6.0  # the paper's input length
CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)  # 96,000
BLOCK_SECONDS = 60  # a long recording is read this much at a time (its memory stays flat)
BLOCK_SAMPLES = BLOCK_SECONDS * SAMPLE_RATE  # 960,000: 1875 chunks of the speech detector


def num_frames(num_samples: int) -> int:
    """Spectrogram frames for a wave of `num_samples` samples (no centre padding)."""
    if num_samples < WIN_LENGTH:
        return 0
    return 1 + (num_samples - WIN_LENGTH) // HOP_LENGTH


CLIP_FRAMES = num_frames(CLIP_SAMPLES)  # 598


# Decoding is hundreds of times faster than real time; a file that takes longer than this is pathological
# (a damaged stream a decoder crawls through): it is refused instead of hanging a batch job.
_DECODE_BASE_SECONDS, _DECODE_SECONDS_PER_AUDIO_SECOND = 30.0, 0.5
# A cut starting this late seeks to SEEK_LEAD_SECONDS before it instead of decoding from the start (a segment an
# hour into a video costs what one at its start costs); the lead lets the decoder and resampler settle before it
SEEK_AFTER_SECONDS, SEEK_LEAD_SECONDS = 30.0, 2.0
_UNLIMITED_RESERVE_SECONDS = 3600.0  # without a limit, a decode reserves at most this much up front (then grows)


def describe_source(source: AudioSource | np.ndarray) -> str:
    """How error messages name an input: its path, `<N bytes>`, `<array of N samples>` or a file's name."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array of {source.size} samples>"
    return str(getattr(source, "name", "<file object>"))


def open_input(source: AudioSource, name: str) -> av.container.InputContainer:
    """Open a container, turning every way a path can be wrong into an AudioError."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{name}: no such file")
        if path.is_dir():
            raise AudioError(f"{name}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: file is empty")
        target: str | BinaryIO = str(path)
    elif isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError(f"{name}: no data")
        target = io.BytesIO(source)
    else:
        target = source
    try:
        return av.open(target, mode="r")
    except av.error.FFmpegError as error:
        raise AudioError(f"{name}: not a readable audio or video file ({error.strerror})") from error
    except UnicodeDecodeError as error:  # PyAV failed to decode FFmpeg's message about a damaged file
        raise AudioError(f"{name}: not a readable audio or video file (damaged header)") from error
    except OSError as error:
        raise AudioError(f"{name}: cannot be read ({error})") from error


def decode_pieces(container: av.container.InputContainer, stream: av.AudioStream, name: str,
                   max_seconds: float | None, declared: float | None, found: Decoded, sr: int = SAMPLE_RATE,
                   limit_seconds: float | None = None, seek: float = 0.0) -> Iterator[np.ndarray]:
    """The samples of `stream` (up to `max_seconds`) as float32 mono pieces, resampled to `sr` as they are decoded
    (soxr's streaming resampler: the same samples as resampling the whole); `found` filled in as they come. The
    first sample lies at 0, or about `seek` when the decode starts there (`seek` > 0: from the packet at or before
    it). AudioError when decoding outlasts its time limit (see _DECODE_BASE_SECONDS), or the audio runs past
    `limit_seconds`."""
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    first: float | None = 0.0
    if seek > 0 and stream.time_base:
        try:
            container.seek(int((origin + seek) / stream.time_base), stream=stream, backward=True)
        except (av.error.FFmpegError, OSError) as error:
            raise _SeekMissed from error
        first = None  # known from the first frame decoded
    # Converts any sample format (u8, s16, s32, s64, flt, dbl; packed or planar) to float planar,
    # keeping the rate and channels: mixing and resampling are done here, explicitly.
    to_float = av.AudioResampler(format="fltp")
    found.rate = stream.rate or 0
    to_rate: soxr.ResampleStream | None = None
    deadline = time.monotonic() + _DECODE_BASE_SECONDS + _DECODE_SECONDS_PER_AUDIO_SECOND * (declared or 0.0)
    skip = 0  # after a seek: samples dropped so that the first kept one lies on the whole decode's 16 kHz grid

    def keep(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
        nonlocal to_rate, first, skip
        for converted in frames:
            if first is None:
                if converted.time is None or converted.time - origin > seek + SEEK_LEAD_SECONDS / 2:
                    raise _SeekMissed  # no times to cut by, or it landed past the cut: decode from the start
                index = max(0, round((converted.time - origin) * converted.sample_rate))
                grid = converted.sample_rate // math.gcd(converted.sample_rate, sr)  # source samples per shared tick
                skip = -index % grid
                first = found.first = (index + skip) / converted.sample_rate
            mono = converted.to_ndarray().mean(axis=0, dtype=np.float32)
            if skip:
                mono, skip = mono[skip:], max(0, skip - mono.size)
            found.total += mono.size
            if converted.sample_rate != sr and to_rate is None:
                to_rate = soxr.ResampleStream(converted.sample_rate, sr, 1, dtype="float32", quality="HQ")
            piece = mono if to_rate is None else to_rate.resample_chunk(mono)
            found.handed_on += piece.size
            yield piece

    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:  # the demuxer read less than the packet's size: the file ends early
                raise AudioError(f"{name}: truncated or corrupt: a packet at {packet_time(packet)} is incomplete")
            for frame in packet.decode():
                found.rate = frame.sample_rate
                yield from keep(to_float.resample(frame))
            rate = found.rate
            if max_seconds is not None and rate and first is not None and found.total >= (max_seconds - first) * rate:
                break
            if limit_seconds is not None and rate and found.total > limit_seconds * rate:
                raise AudioError(f"{name}: longer than {limit_seconds:g} s, the limit (--max-seconds)")
            if time.monotonic() > deadline:
                raise AudioError(f"{name}: decoding outlasted its time limit: a damaged or pathological stream")
        yield from keep(to_float.resample(None))
        if to_rate is not None:
            tail = to_rate.resample_chunk(np.zeros(0, np.float32), last=True)
            found.handed_on += tail.size
            yield tail
    except av.error.FFmpegError as error:
        raise AudioError(f"{name}: corrupt audio data ({error.strerror})") from error
    except UnicodeDecodeError as error:  # PyAV failed to decode FFmpeg's message about damaged data
        raise AudioError(f"{name}: corrupt audio data") from error


class _SeekMissed(Exception):
    """A seek that cannot serve a sample-accurate cut: `load_audio` decodes from the start instead."""


class _Samples:
    """A wave filled as it is decoded, in one buffer sized from the length the file declares (grown by half
    again when a file runs past it): no list of pieces to join into a second copy at the end."""

    def __init__(self, expected: int) -> None:
        self.buffer = np.empty(max(expected, 1 << 16), np.float32)
        self.size = 0

    def add(self, piece: np.ndarray) -> None:
        if self.size + piece.size > self.buffer.size:
            grown = np.empty(max(self.size + piece.size, self.buffer.size * 3 // 2), np.float32)
            grown[:self.size] = self.buffer[:self.size]
            self.buffer = grown
        self.buffer[self.size:self.size + piece.size] = piece
        self.size += piece.size

    def samples(self) -> np.ndarray:
        return self.buffer[:self.size]


def load_audio(source: AudioSource, sr: int = SAMPLE_RATE, *, offset: float = 0.0,
               duration: float | None = None, limit_seconds: float | None = None) -> np.ndarray:
    """Decode an audio or video file to a mono float32 wave in [-1, 1] at `sr` Hz.

    source: a path (wav, flac, mp3, ogg, opus, m4a/aac, or the first audio track of mp4, mkv, webm,
        mov, ...), the file's bytes, or a binary file object.
    offset, duration: seconds; the returned wave is cut sample-accurately to
        [offset, offset + duration) after resampling (decoding stops once that much is read).
    limit_seconds: a recording longer than this is refused (AudioError): on the length the container declares,
        before anything is decoded, else while decoding, once the audio runs past it.
    Returns: (N,) float32. Stereo and multichannel audio is averaged; any input rate is resampled with
    soxr's high-quality (anti-aliased) resampler.
    Raises AudioError, naming the file and the cause, on anything that does not decode to audio.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"need offset >= 0 and duration > 0, got offset={offset}, duration={duration}")
    rewindable = isinstance(source, (str, os.PathLike, bytes, bytearray))  # a file object is read once
    if offset >= SEEK_AFTER_SECONDS and rewindable:
        try:
            return _load(source, sr, offset, duration, limit_seconds, seek=offset - SEEK_LEAD_SECONDS)
        except _SeekMissed:
            pass
    return _load(source, sr, offset, duration, limit_seconds, seek=0.0)


def _load(source: AudioSource, sr: int, offset: float, duration: float | None, limit_seconds: float | None,
          seek: float) -> np.ndarray:
    """`load_audio`'s work, decoding from `seek` seconds (0: the start)."""
    name = describe_source(source)
    max_seconds = None if duration is None else offset + duration
    with open_input(source, name) as container:
        stream, declared, tagged = audio_stream(container, name, limit_seconds)
        found = Decoded()
        # room for what the file declares (or what was asked for; else the limit), never more than the limit or,
        # without one, an hour up front (a header may claim days); np.empty's untouched pages cost no memory
        ceiling = limit_seconds or _UNLIMITED_RESERVE_SECONDS
        expected = max_seconds if max_seconds is not None else declared + 1.0 if declared else ceiling
        samples = _Samples(round(min(expected, ceiling) * sr))
        for piece in decode_pieces(container, stream, name, max_seconds, declared, found, sr, limit_seconds, seek):
            samples.add(piece)
        wave = samples.samples()
        if seek > 0 and wave.size == 0:
            raise _SeekMissed  # nothing after the seek point: the start-to-end decode says why
        check_decoded(source, name, container, stream, found, declared, tagged, whole=max_seconds is None)
    if not np.isfinite(wave).all():
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    start = round((offset - found.first) * sr)
    stop = None if duration is None else start + round(duration * sr)
    if start >= wave.size:
        length = found.first + wave.size / sr
        raise AudioError(f"{name}: offset {offset:.2f} s is past the end of the audio ({length:.2f} s)")
    wave = wave[start:stop]
    return np.clip(wave, -1.0, 1.0, out=wave)


def as_wave(source: AudioSource | np.ndarray, limit_seconds: float | None = None) -> np.ndarray:
    """A 16 kHz wave given as an array (checked: 1-D, non-empty, finite), or decoded from a path, bytes or a
    file object with `load_audio`; float32. Longer than `limit_seconds`: AudioError."""
    if isinstance(source, np.ndarray):
        if source.ndim != 1 or source.size == 0 or not np.isfinite(source).all():
            raise AudioError(f"{describe_source(source)}: need a 1-D finite 16 kHz wave, got shape {source.shape}")
        if limit_seconds is not None and source.size > limit_seconds * SAMPLE_RATE:
            raise AudioError(f"{describe_source(source)}: longer than {limit_seconds:g} s, the limit (--max-seconds)")
        return source.astype(np.float32, copy=False)
    return load_audio(source, limit_seconds=limit_seconds)


def fit_length(wave: np.ndarray | torch.Tensor, seconds: float = CLIP_SECONDS, sr: int = SAMPLE_RATE,
               start: int = 0) -> np.ndarray | torch.Tensor:
    """Repeat a short wave until it lasts `seconds`, or crop a long one to `seconds` from `start`.

    wave: (..., N) numpy array or torch tensor; the last axis is time. Returns the same type, (..., L)
    with L = round(seconds * sr). Repetition follows the paper (short clips are tiled, not zero-padded).
    """
    target = round(seconds * sr)
    length = wave.shape[-1]
    if target <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if length == 0:
        raise AudioError("cannot fit an empty wave to a length")
    if length >= target:
        if not 0 <= start <= length - target:
            raise ValueError(f"start {start} out of range for a {length}-sample wave cut to {target}")
        return wave[..., start:start + target]
    repeats = -(-target // length)  # ceiling division
    if isinstance(wave, torch.Tensor):
        tiled = wave.repeat(*([1] * (wave.dim() - 1)), repeats)
    else:
        tiled = np.tile(wave, (*([1] * (wave.ndim - 1)), repeats))
    return tiled[..., :target]


# On CPU, clips go through the front end a few at a time: each step's buffers then stay in cache, which
# measured 3-4x faster than one pass over a batch of 64 (benchmarks/frontend.py).
_CPU_CLIPS_PER_STEP = 4


def spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """The paper's input: power-law-compressed real and imaginary STFT parts.

    wave: (N,) or (B, N) float tensor at 16 kHz, on any device.
    Returns: (2, T, 257) or (B, 2, T, 257) float32, T = 1 + (N - 400) // 160 (598 for 6 s); channel 0 is
    sgn(Re) |Re|^0.3, channel 1 the same of Im. Frame t covers samples [160 t, 160 t + 400), is
    multiplied by a periodic Hann window of 400 and zero-padded at the end to 512 before the real FFT.
    """
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"spectrogram takes a torch.Tensor, got {type(wave).__name__}")
    if wave.dim() not in (1, 2):
        raise ValueError(f"spectrogram takes (N,) or (B, N), got shape {tuple(wave.shape)}")
    if wave.shape[-1] < WIN_LENGTH:
        raise ValueError(f"need at least {WIN_LENGTH} samples for one frame, got {wave.shape[-1]}")
    clips = wave.float().reshape(-1, wave.shape[-1])
    window = torch.hann_window(WIN_LENGTH, periodic=True, device=clips.device)
    out = torch.empty(clips.shape[0], 2, num_frames(clips.shape[1]), N_FREQ, device=clips.device)
    step = _CPU_CLIPS_PER_STEP if clips.device.type == "cpu" else max(1, clips.shape[0])
    for first in range(0, clips.shape[0], step):
        frames = clips[first:first + step].unfold(-1, WIN_LENGTH, HOP_LENGTH)  # (b, T, 400), a view
        parts = torch.view_as_real(torch.fft.rfft(frames * window, n=N_FFT))  # (b, T, 257, 2)
        # |x|^p as exp(p log|x|): the same to float32 rounding, and cheaper than pow (log 0 -> 0 too).
        compressed = parts.abs().log_().mul_(COMPRESSION_POWER).exp_().copysign_(parts)
        out[first:first + step].copy_(compressed.permute(0, 3, 1, 2))
    return out if wave.dim() == 2 else out[0]
