"""Who is held out, and how a clip is cut: the one rule shared by `s2f prepare`, training and evaluation.

- `split_of`: train / val / test by a hash of the speaker id (so every node and every run agrees).
- `held_out`: the held-out samples of a prepared folder for a purpose: `VALIDATION` (model selection while
  training: the val split, else test) or `EVALUATION` (`s2f evaluate`: test and val).
- `voice_clip`: a sample's wave of `seconds` as the networks read it: the first `seconds` (evaluation,
  validation), or a crop drawn from (seed, key, epoch) when training; repeated when shorter (SPEC).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..voice.audio import SAMPLE_RATE, fit_length, load_audio
from .dataset import collate, samples_per_speaker, shard_paths
from .shards import sample_audio

VALIDATION = "validation"
EVALUATION = "evaluation"
EVAL_SECONDS = 6.0  # the paper's clip


def split_of(speaker: str, val: float, test: float, seed: int = 0) -> str:
    """train / val / test for a speaker: a hash, so every node and every run agrees."""
    digest = hashlib.sha256(f"{seed}:{speaker}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


def held_out_paths(data: str | Path, purpose: str) -> list[Path]:
    """The held-out shards for `purpose` (VALIDATION: val, else test; EVALUATION: test and val)."""
    if purpose == VALIDATION:
        paths = shard_paths(data, "val") or shard_paths(data, "test")
    elif purpose == EVALUATION:
        paths = shard_paths(data, ("test", "val"))
    else:
        raise ValueError(f"purpose must be {VALIDATION!r} or {EVALUATION!r}, got {purpose!r}")
    if not paths:
        raise DataError(f"{data}: no val or test shards (s2f prepare splits speakers with --val/--test)")
    return paths


def held_out(data: str | Path | list[Path], transform: Callable[[dict[str, Any]], dict[str, np.ndarray]],
             purpose: str, *, per_speaker: int | None = None, limit: int | None = None, faces: bool = True,
             ) -> dict[str, Any]:
    """Held-out samples of one prepared folder (or several, in turn) in shard order through `transform`
    (damaged ones skipped), at most `per_speaker` per speaker and `limit` in all; collated into tensors, with
    "speakers" (a list, one per item)."""
    folders = data if isinstance(data, list) else [Path(data)]
    paths = [path for folder in folders for path in held_out_paths(folder, purpose)]
    pairs = list(samples_per_speaker(paths, per_speaker, faces=faces, limit=limit, transform=transform))
    if not pairs:
        raise DataError(f"{data}: no readable held-out samples")
    return {**collate([item for _, item in pairs]), "speakers": [speaker for speaker, _ in pairs]}


def voice_clip(sample: dict[str, Any], seconds: float = EVAL_SECONDS, seed: int | None = None,
               ) -> dict[str, np.ndarray]:
    """A shard sample -> {"wave": (seconds x 16 kHz,), "feature": (D,)}. `seed` None: the clip's first
    `seconds`; else a random crop that depends only on (seed, key, epoch), new each epoch, so that every
    process agrees. Shorter clips are repeated (`fit_length`)."""
    wave = load_audio(sample_audio(sample))
    length = round(seconds * SAMPLE_RATE)
    if len(wave) > length:
        start = 0
        if seed is not None:
            rng = np.random.default_rng([seed, zlib.crc32(sample["key"].encode()), sample.get("epoch", 0)])
            start = int(rng.integers(0, len(wave) - length + 1))
        wave = wave[start:start + length]
    return {"wave": fit_length(wave, seconds), "feature": sample["feature"].astype(np.float32)}
