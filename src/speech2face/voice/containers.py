"""What a container says of its audio's length, and the ways a file betrays that it was cut short: the checks
`audio.load_audio` runs around its decode (a damaged file is an AudioError, never a short wave)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import av

from ..errors import AudioError

AudioSource = Union[str, os.PathLike, bytes, BinaryIO]  # noqa: UP007 (a runtime alias on 3.10)

# A decode that yields less than this share of the duration the container declares is a damaged file:
# lossy containers only estimate their length, lossless ones (flac, pcm) state it to the sample.
MIN_DECODED_SHARE = 0.9
DURATION_SLACK_SECONDS = 0.1
EXACT_LENGTH_CODECS = frozenset({"flac", "alac", "wavpack"})
EXACT_SLACK_SECONDS = 0.01
TAGGED_SHARE, TAGGED_SLACK_SECONDS = 0.98, 0.1  # a Matroska DURATION tag is the muxer's exact count
OGG_TAIL_BYTES = 65_536  # an Ogg page is at most ~64 KiB
OGG_END_OF_STREAM = 0x04  # header_type flag of the last page


def declared_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> tuple[float | None, bool]:
    """How long the audio stream says it is: its own duration, else its Matroska/WebM `DURATION` tag, else the
    container's duration where audio is its only stream. None when only the container knows: a container's
    duration is its longest stream's, and video often runs longer than the sound (ffmpeg -shortest, merged
    downloads), so it says nothing about the audio being cut; decoder errors and incomplete packets still do.
    The flag says whether the length came from a tag (exact, so little shortfall is allowed)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base), False
    tagged = tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tagged is not None:
        return tagged, True
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base, False
    return None, False


def tag_seconds(text: str | None) -> float | None:
    """'HH:MM:SS.fffffffff' (Matroska's per-track DURATION tag) -> seconds; None if absent or malformed."""
    if not text:
        return None
    parts = text.strip().split(":")
    try:
        hours, minutes, seconds = (float(part) for part in parts) if len(parts) == 3 else (0.0, 0.0, float(text))
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def ogg_is_unfinished(source: AudioSource) -> bool:
    """True when an Ogg file's last page lacks the end-of-stream flag: the file was cut short.

    Ogg is a streaming format, so a cut file declares the shorter duration and decodes cleanly; only
    the missing end-of-stream page betrays it.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            handle.seek(max(0, os.path.getsize(source) - OGG_TAIL_BYTES))
            tail = handle.read()
    elif isinstance(source, (bytes, bytearray)):
        tail = bytes(source[-OGG_TAIL_BYTES:])
    else:
        return False  # a stream we cannot rewind: give it the benefit of the doubt
    last_page = tail.rfind(b"OggS")
    if last_page < 0 or last_page + 6 > len(tail):
        return True
    header_type = tail[last_page + 5]
    return not header_type & OGG_END_OF_STREAM


def riff_is_cut(source: AudioSource) -> bool:
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


def packet_time(packet: av.Packet) -> str:
    if packet.pts is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(packet.pts * packet.time_base):.2f} s"


def check_complete(name: str, decoded: float, declared: float | None, codec: str, tagged: bool = False) -> None:
    """Raise if the decode yielded clearly less audio than the audio stream declares."""
    if declared is None or declared <= 0:
        return
    exact = codec in EXACT_LENGTH_CODECS or codec.startswith("pcm_")
    share, slack = (TAGGED_SHARE, TAGGED_SLACK_SECONDS) if tagged else (MIN_DECODED_SHARE, DURATION_SLACK_SECONDS)
    shortfall_allowed = EXACT_SLACK_SECONDS if exact else (1 - share) * declared + slack
    if decoded < declared - shortfall_allowed:
        raise AudioError(f"{name}: truncated or corrupt: decoded {decoded:.2f} s of the {declared:.2f} s it declares")


@dataclass
class Decoded:
    """What a decode found as it ran: the stream's rate, how many samples it gave at that rate, how many it handed
    on (at the rate asked for), and the time (from the stream's start) of the first one."""

    rate: int = 0
    total: int = 0
    handed_on: int = 0
    first: float = 0.0


def audio_stream(container: av.container.InputContainer, name: str, limit_seconds: float | None,
                  ) -> tuple[av.AudioStream, float | None, bool]:
    """The container's first audio stream, the seconds it declares (None where it does not) and whether a
    Matroska tag declared them; AudioError without one, without a decoder, or declared over `limit_seconds`."""
    if not container.streams.audio:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise AudioError(f"{name}: has no audio stream (found: {', '.join(kinds)})")
    stream = container.streams.audio[0]
    declared, tagged = declared_seconds(container, stream)
    if stream.codec_context is None:  # a damaged header can leave a stream without a decoder
        raise AudioError(f"{name}: truncated or corrupt: its audio stream has no decoder")
    if limit_seconds is not None and declared is not None and declared > limit_seconds:
        raise AudioError(f"{name}: {declared:.0f} s long, over the limit of {limit_seconds:g} s (--max-seconds)")
    return stream, declared, tagged


def check_decoded(source: AudioSource, name: str, container: av.container.InputContainer, stream: av.AudioStream,
                   found: Decoded, declared: float | None, tagged: bool, whole: bool) -> None:
    """AudioError where a decode gave nothing, or (`whole`: read to its end) less than the file says it holds."""
    if found.handed_on == 0 or found.rate <= 0:
        raise AudioError(f"{name}: contains no audio samples")
    if whole:
        check_complete(name, found.first + found.total / found.rate, declared, stream.codec_context.name, tagged)
    formats = container.format.name.split(",")
    if "ogg" in formats and ogg_is_unfinished(source):
        raise AudioError(f"{name}: truncated: the Ogg stream has no end-of-stream page")
    if "avi" in formats and riff_is_cut(source):
        raise AudioError(f"{name}: truncated: the file is shorter than its AVI header says")
