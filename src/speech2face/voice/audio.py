"""Audio front end: decode any audio or video file to 16 kHz mono, fit it to 6 s, and compute the
paper's compressed complex spectrogram.

The constants are named once here; everything else derives from them.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np
import soxr
import torch

from ..errors import AudioError

SAMPLE_RATE = 16_000  # Hz, the paper's rate
WIN_LENGTH = 400  # samples per frame: 25 ms
HOP_LENGTH = 160  # samples between frames: 10 ms
N_FFT = 512  # each frame is zero-padded at the end to this length
N_FREQ = N_FFT // 2 + 1  # 257 frequency bins
COMPRESSION_POWER = 0.3  # sgn(x) |x|^0.3 on real and imaginary parts separately
CLIP_SECONDS = 6.0  # the paper's input length
CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)  # 96,000


def num_frames(num_samples: int) -> int:
    """Spectrogram frames for a wave of `num_samples` samples (no centre padding)."""
    if num_samples < WIN_LENGTH:
        return 0
    return 1 + (num_samples - WIN_LENGTH) // HOP_LENGTH


CLIP_FRAMES = num_frames(CLIP_SAMPLES)  # 598

AudioSource = Union[str, os.PathLike, bytes, BinaryIO]  # noqa: UP007 (a runtime alias on 3.10)

# A decode that yields less than this share of the duration the container declares is a damaged file:
# lossy containers only estimate their length, lossless ones (flac, pcm) state it to the sample.
_MIN_DECODED_SHARE = 0.9
_DURATION_SLACK_SECONDS = 0.1
_EXACT_LENGTH_CODECS = frozenset({"flac", "alac", "wavpack"})
_EXACT_SLACK_SECONDS = 0.01
_TAGGED_SHARE, _TAGGED_SLACK_SECONDS = 0.98, 0.1  # a Matroska DURATION tag is the muxer's exact count
# Decoding is hundreds of times faster than real time; a file that takes longer than this is pathological
# (a damaged stream a decoder crawls through): it is refused instead of hanging a batch job.
_DECODE_BASE_SECONDS, _DECODE_SECONDS_PER_AUDIO_SECOND = 30.0, 0.5
_OGG_TAIL_BYTES = 65_536  # an Ogg page is at most ~64 KiB
_OGG_END_OF_STREAM = 0x04  # header_type flag of the last page


def describe_source(source: AudioSource | np.ndarray) -> str:
    """How error messages name an input: its path, `<N bytes>`, `<array of N samples>` or a file's name."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array of {source.size} samples>"
    return str(getattr(source, "name", "<file object>"))


def _open_input(source: AudioSource, name: str) -> av.container.InputContainer:
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


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> tuple[float | None, bool]:
    """How long the audio stream says it is: its own duration, else its Matroska/WebM `DURATION` tag, else the
    container's duration where audio is its only stream. None when only the container knows: a container's
    duration is its longest stream's, and video often runs longer than the sound (ffmpeg -shortest, merged
    downloads), so it says nothing about the audio being cut; decoder errors and incomplete packets still do.
    The flag says whether the length came from a tag (exact, so little shortfall is allowed)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base), False
    tagged = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tagged is not None:
        return tagged, True
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base, False
    return None, False


def _tag_seconds(text: str | None) -> float | None:
    """'HH:MM:SS.fffffffff' (Matroska's per-track DURATION tag) -> seconds; None if absent or malformed."""
    if not text:
        return None
    parts = text.strip().split(":")
    try:
        hours, minutes, seconds = (float(part) for part in parts) if len(parts) == 3 else (0.0, 0.0, float(text))
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _ogg_is_unfinished(source: AudioSource) -> bool:
    """True when an Ogg file's last page lacks the end-of-stream flag: the file was cut short.

    Ogg is a streaming format, so a cut file declares the shorter duration and decodes cleanly; only
    the missing end-of-stream page betrays it.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            handle.seek(max(0, os.path.getsize(source) - _OGG_TAIL_BYTES))
            tail = handle.read()
    elif isinstance(source, (bytes, bytearray)):
        tail = bytes(source[-_OGG_TAIL_BYTES:])
    else:
        return False  # a stream we cannot rewind: give it the benefit of the doubt
    last_page = tail.rfind(b"OggS")
    if last_page < 0 or last_page + 6 > len(tail):
        return True
    header_type = tail[last_page + 5]
    return not header_type & _OGG_END_OF_STREAM


def _riff_is_cut(source: AudioSource) -> bool:
    """True when an AVI file is shorter than its RIFF header says: the file was cut short. (A cut AVI keeps
    decoding cleanly and, with its index gone, declares the shorter length.)"""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            head = handle.read(12)
        size = os.path.getsize(source)
    elif isinstance(source, (bytes, bytearray)):
        head, size = bytes(source[:12]), len(source)
    else:
        return False  # a stream we cannot measure: give it the benefit of the doubt
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return False
    return int.from_bytes(head[4:8], "little") + 8 > size


def _decode_mono(container: av.container.InputContainer, stream: av.AudioStream, name: str,
                 max_seconds: float | None, declared: float | None = None) -> tuple[np.ndarray, int]:
    """The samples of `stream` (up to `max_seconds`) as float32 mono at the stream's own rate; AudioError when
    decoding outlasts its time limit (see _DECODE_BASE_SECONDS)."""
    # Converts any sample format (u8, s16, s32, s64, flt, dbl; packed or planar) to float planar,
    # keeping the rate and channels: mixing and resampling are done by the caller, explicitly.
    to_float = av.AudioResampler(format="fltp")
    chunks: list[np.ndarray] = []
    rate = stream.rate or 0
    total = 0
    deadline = time.monotonic() + _DECODE_BASE_SECONDS + _DECODE_SECONDS_PER_AUDIO_SECOND * (declared or 0.0)

    def keep(frames: list[av.AudioFrame]) -> None:
        nonlocal total
        for converted in frames:
            chunks.append(converted.to_ndarray().mean(axis=0, dtype=np.float32))
            total += chunks[-1].size

    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:  # the demuxer read less than the packet's size: the file ends early
                raise AudioError(f"{name}: truncated or corrupt: a packet at {_packet_time(packet)} is incomplete")
            for frame in packet.decode():
                rate = frame.sample_rate
                keep(to_float.resample(frame))
            if max_seconds is not None and rate and total >= max_seconds * rate:
                break
            if time.monotonic() > deadline:
                raise AudioError(f"{name}: decoding outlasted its time limit: a damaged or pathological stream")
        keep(to_float.resample(None))
    except av.error.FFmpegError as error:
        raise AudioError(f"{name}: corrupt audio data ({error.strerror})") from error
    except UnicodeDecodeError as error:  # PyAV failed to decode FFmpeg's message about damaged data
        raise AudioError(f"{name}: corrupt audio data") from error
    wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return wave, rate


def _packet_time(packet: av.Packet) -> str:
    if packet.pts is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(packet.pts * packet.time_base):.2f} s"


def _check_complete(name: str, decoded: float, declared: float | None, codec: str, tagged: bool = False) -> None:
    """Raise if the decode yielded clearly less audio than the audio stream declares."""
    if declared is None or declared <= 0:
        return
    exact = codec in _EXACT_LENGTH_CODECS or codec.startswith("pcm_")
    share, slack = (_TAGGED_SHARE, _TAGGED_SLACK_SECONDS) if tagged else (_MIN_DECODED_SHARE, _DURATION_SLACK_SECONDS)
    shortfall_allowed = _EXACT_SLACK_SECONDS if exact else (1 - share) * declared + slack
    if decoded < declared - shortfall_allowed:
        raise AudioError(f"{name}: truncated or corrupt: decoded {decoded:.2f} s of the {declared:.2f} s it declares")


def load_audio(source: AudioSource, sr: int = SAMPLE_RATE, *, offset: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Decode an audio or video file to a mono float32 wave in [-1, 1] at `sr` Hz.

    source: a path (wav, flac, mp3, ogg, opus, m4a/aac, or the first audio track of mp4, mkv, webm,
        mov, ...), the file's bytes, or a binary file object.
    offset, duration: seconds; the returned wave is cut sample-accurately to
        [offset, offset + duration) after resampling (decoding stops once that much is read).
    Returns: (N,) float32. Stereo and multichannel audio is averaged; any input rate is resampled with
    soxr's high-quality (anti-aliased) resampler.
    Raises AudioError, naming the file and the cause, on anything that does not decode to audio.
    """
    name = describe_source(source)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"need offset >= 0 and duration > 0, got offset={offset}, duration={duration}")
    with _open_input(source, name) as container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise AudioError(f"{name}: has no audio stream (found: {', '.join(kinds)})")
        stream = container.streams.audio[0]
        declared, tagged = _declared_seconds(container, stream)
        if stream.codec_context is None:  # a damaged header can leave a stream without a decoder
            raise AudioError(f"{name}: truncated or corrupt: its audio stream has no decoder")
        codec = stream.codec_context.name
        max_seconds = None if duration is None else offset + duration
        wave, rate = _decode_mono(container, stream, name, max_seconds, declared)
        formats = container.format.name.split(",")
    if wave.size == 0 or rate <= 0:
        raise AudioError(f"{name}: contains no audio samples")
    if max_seconds is None:
        _check_complete(name, wave.size / rate, declared, codec, tagged)
    if "ogg" in formats and _ogg_is_unfinished(source):
        raise AudioError(f"{name}: truncated: the Ogg stream has no end-of-stream page")
    if "avi" in formats and _riff_is_cut(source):
        raise AudioError(f"{name}: truncated: the file is shorter than its AVI header says")
    if not np.isfinite(wave).all():
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    if rate != sr:
        wave = soxr.resample(wave, rate, sr, quality="HQ").astype(np.float32, copy=False)
    start = round(offset * sr)
    stop = None if duration is None else start + round(duration * sr)
    if start >= wave.size:
        raise AudioError(f"{name}: offset {offset:.2f} s is past the end of the audio ({wave.size / sr:.2f} s)")
    wave = wave[start:stop]
    return np.clip(wave, -1.0, 1.0, out=wave)


def as_wave(source: AudioSource | np.ndarray) -> np.ndarray:
    """A 16 kHz wave given as an array (checked: 1-D, non-empty, finite), or decoded from a path, bytes or a
    file object with `load_audio`; float32."""
    if isinstance(source, np.ndarray):
        if source.ndim != 1 or source.size == 0 or not np.isfinite(source).all():
            raise AudioError(f"{describe_source(source)}: need a 1-D finite 16 kHz wave, got shape {source.shape}")
        return source.astype(np.float32, copy=False)
    return load_audio(source)


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
