"""Batch prediction to files: `s2f predict` and `s2f examples` draw each recording's faces into a folder.

    result = predict_files(Speech2Face.from_pretrained("demo"), ["a.wav", "b.mp4"], "faces/")
    result.written  # per input: its images and Prediction;  result.failed: (input, one-line error)

Per input NAME.png (or NAME.speaker1.png, NAME.speaker2.png ... when it holds several speakers) and NAME.json;
with a gallery of real faces also NAME[.speakerK].nearest.png. A bad input is recorded and the others are
still drawn; every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import Speech2FaceError
from .files import atomic_write, write_json
from .gallery import Gallery
from .pipeline import MAX_RECORDING_SECONDS, MIN_SPEECH_SECONDS, Prediction, Speech2Face, Voice


@dataclass(frozen=True)
class PredictSettings:
    """How `s2f predict` draws (the CLI's defaults)."""

    batch_size: int = 16  # recordings per forward pass
    nearest: int = 5  # gallery faces per strip
    speakers: int | None = None  # None: found from the voices; N: forced (1: each recording as one voice)
    min_speech: float = MIN_SPEECH_SECONDS  # seconds of speech a face needs, per speaker: the model loads with it
    max_seconds: float = MAX_RECORDING_SECONDS  # the longest recording read: the model loads with it too


@dataclass
class BatchResult:
    """What `predict_files` did: per written input its files; per failed input its error (one line)."""

    written: list[dict[str, Any]]
    failed: list[tuple[str, str]]


def predict_files(model: Speech2Face, sources: Sequence[str | os.PathLike], out: str | os.PathLike,
                  settings: PredictSettings = PredictSettings(), *, gallery: Gallery | None = None,
                  progress: bool = False, on_error: Callable[[str, str], None] | None = None) -> BatchResult:
    """Draw the faces of each file into `out`: NAME.png when it holds one speaker, NAME.speaker1.png,
    NAME.speaker2.png ... when several (`settings.speakers`: as `Speech2Face.voices`), and NAME.json (input, model,
    synthetic, the main speaker's windows, voiced seconds, feature and landmarks, and `speakers`: each one's
    label, turns, voiced seconds, image ...; with a `gallery.Gallery` also NAME[.speakerK].nearest.png and the
    nearest speakers). NAME is the file's stem, made unique. A bad input is recorded (and passed to
    `on_error(source, message)`) and the others are still drawn; every file is written atomically. Recordings are
    read and drawn `settings.batch_size` at a time, so that a folder of thousands holds one batch's windows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult([], [])
    names: set[str] = set()
    ready: list[tuple[str | os.PathLike, list[Voice]]] = []  # at most batch_size recordings' windows at a time
    for source in tqdm(sources, desc="read", unit="file", disable=not progress or len(sources) < 2):
        try:
            ready.append((source, model.voices(source, settings.speakers, progress=progress)))
        except Speech2FaceError as error:  # a batch job records the bad item and goes on
            result.failed.append((str(source), str(error)))
            if on_error is not None:
                on_error(str(source), str(error))
        if len(ready) == settings.batch_size:
            _draw(model, ready, out, names, result, gallery, settings.nearest)
            ready = []
    if ready:
        _draw(model, ready, out, names, result, gallery, settings.nearest)
    return result


def _draw(model: Speech2Face, ready: list[tuple[str | os.PathLike, list[Voice]]], out: Path, names: set[str],
          result: BatchResult, gallery: Gallery | None, nearest: int) -> None:
    """One batch of read recordings through the networks, each one's files written and recorded in `result`."""
    for (source, _), prediction in zip(ready, model.predict_voices([v for _, v in ready]), strict=True):
        stem = Path(source).stem or "input"
        name = stem if stem not in names else f"{stem}-{len(names)}"
        names.add(name)
        several = len(prediction.speakers) > 1
        entries = [_write_speaker(out, f"{name}.{one.label}" if several else name, one, gallery, nearest)
                   for one in prediction.speakers]
        main = next(entry for entry in entries if entry["label"] == prediction.label)
        write_json(out / f"{name}.json", {"input": str(source), "synthetic": model.card.synthetic, **main,
                                          "speakers": entries})
        result.written.append({"input": str(source), "image": out / main["image"], "prediction": prediction,
                               "images": [out / entry["image"] for entry in entries]})


def _write_speaker(out: Path, name: str, prediction: Prediction, gallery: Gallery | None,
                   nearest: int) -> dict[str, Any]:
    """NAME.png (+ NAME.nearest.png with a gallery) for one speaker; its JSON entry."""
    atomic_write(out / f"{name}.png", lambda temp: prediction.image.save(temp, format="PNG"))
    entry = {"image": f"{name}.png", **prediction.to_json()}
    if gallery is not None:
        entry["nearest"] = _write_nearest(gallery, prediction.feature, nearest, out / f"{name}.nearest.png")
    return entry


def _write_nearest(gallery: Gallery, feature: np.ndarray, count: int, path: Path) -> list[dict[str, Any]]:
    """The `count` gallery faces nearest to `feature` as one strip image at `path`; their speakers."""
    from PIL import Image

    found = gallery.nearest(feature, count)
    strip = Image.fromarray(gallery.strip([i for i, _ in found]))
    atomic_write(path, lambda temp: strip.save(temp, format="PNG"))
    return [{"speaker": gallery.speakers[i], "key": gallery.keys[i], "cosine": round(c, 4)} for i, c in found]
