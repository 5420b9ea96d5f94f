"""Webdataset shards: plain tar files whose members `<key>.<field>` group into samples.

One sample = one speech segment (docs/prepare.md): `audio.flac` (16 kHz mono, the exact segment),
`face.jpg` (aligned crop), `landmarks.npy` (68x2, crop pixels), `feature.npy` (float32 face feature),
`json` (speaker, source, times, face box, frame times, encoder). A photo sample (`prepare --images`) is the
same without `audio.flac` (its json has "kind": "photo"); only the face decoder trains on it. Members are
written in a fixed order with fixed metadata, so the same samples give the same bytes; a shard appears only
complete (temp + rename).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files import atomic_write

FIELDS = ("audio.flac", "face.jpg", "landmarks.npy", "feature.npy", "json")
AUDIO = "audio.flac"  # the one field a photo sample lacks


@dataclass
class Sample:
    key: str
    audio_flac: bytes | None  # None: a photo sample
    face_jpg: bytes
    landmarks: np.ndarray
    feature: np.ndarray
    meta: dict[str, Any]

    def members(self) -> list[tuple[str, bytes]]:
        audio = [] if self.audio_flac is None else [(AUDIO, self.audio_flac)]
        return [*audio, ("face.jpg", self.face_jpg), ("landmarks.npy", npy_bytes(self.landmarks)),
                ("feature.npy", npy_bytes(self.feature)), ("json", json.dumps(self.meta, sort_keys=True).encode())]


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """An (H, W, 3) uint8 crop as JPEG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def write_shard(path: Path, samples: Iterable[Sample]) -> None:
    """Write the samples as one tar, atomically, each as it comes (an iterator is never held whole)."""
    def write(temporary: Path) -> None:
        with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as archive:
            for sample in samples:
                if "." in sample.key or "/" in sample.key:
                    raise ValueError(f"sample keys cannot hold '.' or '/': {sample.key!r}")
                for field, data in sample.members():
                    info = tarfile.TarInfo(f"{sample.key}.{field}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    archive.addfile(info, io.BytesIO(data))

    atomic_write(path, write)


def raw_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample of a shard, in order; DataError if the tar itself is unreadable."""
    key, fields = None, {}
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name, _, field = member.name.partition(".")
                if name != key:
                    if key is not None:
                        yield key, fields
                    key, fields = name, {}
                handle = archive.extractfile(member)
                if handle is not None:
                    fields[field] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: unreadable shard ({error})") from error
    if key is not None:
        yield key, fields


def decode_sample(key: str, fields: dict[str, bytes], face: bool = True) -> dict[str, Any]:
    """key, audio (flac bytes, decode with load_audio; None for a photo sample), face (RGB uint8; None unless
    `face`), landmarks, feature, meta. Readers that never look at the face skip its JPEG decoding."""
    from PIL import Image, UnidentifiedImageError

    missing = [f for f in FIELDS if f not in fields and f != AUDIO]
    if missing:
        raise DataError(f"sample {key} lacks {', '.join(missing)}")
    try:
        return {"key": key, "audio": fields.get(AUDIO),
                "face": np.asarray(Image.open(io.BytesIO(fields["face.jpg"])).convert("RGB")) if face else None,
                "landmarks": np.load(io.BytesIO(fields["landmarks.npy"]), allow_pickle=False),
                "feature": np.load(io.BytesIO(fields["feature.npy"]), allow_pickle=False),
                "meta": json.loads(fields["json"])}
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"sample {key}: damaged ({error})") from error


def sample_audio(sample: dict[str, Any]) -> bytes:
    """A decoded sample's audio; DataError for a photo sample (only the face decoder trains on photos)."""
    if sample["audio"] is None:
        raise DataError(f"sample {sample['key']} is a photo (no audio): voices train on video shards only")
    return sample["audio"]


def read_shard(path: str | Path) -> Iterator[dict[str, Any]]:
    """Decoded samples of a shard (see decode_sample); DataError on the first damaged one."""
    for key, fields in raw_samples(path):
        yield decode_sample(key, fields)
