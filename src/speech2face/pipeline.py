"""`Speech2Face`: a trained voice encoder and face decoder, from any recording to a face.

    model = Speech2Face.from_pretrained("demo")        # a registered name, or a folder
    prediction = model.predict("voice.wav")             # a path, a 16 kHz float array, or a file's bytes
    prediction.image.save("face.png")

The way through: load_audio -> speech check -> 6 s windows -> spectrogram -> voice encoder -> one feature
-> face decoder -> image + landmarks.

Windows: a recording up to 6 s is repeated to 6 s (the paper's input length). A longer one is read as
WINDOWS_MAX 6 s windows at most, spread evenly from its start to its end (consecutive windows overlap only
when the recording is shorter than WINDOWS_MAX x 6 s); windows with under 0.5 s of speech (the detector's
regions) are dropped, and the features of the others are averaged (their mean, before the decoder).
Silence, noise, tones or music -> AudioError, never a face.

A model folder (`save_pretrained`; its format: `model_folder.py`) holds `speech2face.json` (the model
card: name, whether it was trained on synthetic data, its evaluation), `voice/` and `decoder/` (each
config.json + model.safetensors). `from_pretrained` also takes a `s2f train` run folder (its decoder named
in training.json) or a `s2f demo` output folder.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import audio
from .activity import SpeechDetector
from .devices import pick_device
from .errors import AudioError, ModelError
from .images import to_uint8
from .model_folder import DECODER_DIR, VOICE_DIR, ModelCard, locate
from .models.voice_encoder import encode_waves

WINDOWS_MAX = 8
MIN_WINDOW_SPEECH_SECONDS = 0.5  # a 6 s window with less speech than this is skipped
AudioInput = str | os.PathLike | bytes | np.ndarray


@dataclass
class Prediction:
    """One recording's face. `landmarks` in pixels of `image`; `feature` the predicted face feature."""

    image: Any  # PIL.Image.Image, RGB
    feature: np.ndarray  # (D,)
    landmarks: np.ndarray  # (68, 2)
    windows: int  # 6 s windows averaged
    voiced_seconds: float
    model: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "windows": self.windows, "voiced_seconds": round(self.voiced_seconds, 3),
                "feature": self.feature.round(6).tolist(), "landmarks": self.landmarks.round(3).tolist()}


class Speech2Face:
    """A voice encoder and the face decoder it was trained with, in eval mode on one device."""

    def __init__(self, voice: torch.nn.Module, decoder: torch.nn.Module, card: ModelCard,
                 device: str | torch.device | None = None) -> None:
        self.device = pick_device(device)
        self.voice, self.decoder = voice.to(self.device).eval(), decoder.to(self.device).eval()
        self.card = card
        self.detector = SpeechDetector(self.device)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        progress: bool = True) -> Speech2Face:
        """A model folder, a `s2f train` run, a `s2f demo` output folder, or a registered name (`s2f models`)."""
        from .models import FaceDecoder, VoiceEncoder

        path = Path(name_or_path)
        if not path.exists():
            if os.sep in str(name_or_path) or "/" in str(name_or_path):
                raise ModelError(f"{name_or_path}: no such model folder")
            from .registry import resolve

            path = resolve(str(name_or_path), progress=progress)
        voice_dir, decoder_dir, card = locate(path)
        return cls(VoiceEncoder.from_pretrained(voice_dir), FaceDecoder.from_pretrained(decoder_dir), card, device)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """`speech2face.json` + `voice/` + `decoder/`; what `from_pretrained` and the registry read."""
        directory = Path(directory)
        self.voice.save_pretrained(directory / VOICE_DIR)
        self.decoder.save_pretrained(directory / DECODER_DIR)
        self.card.write(directory)
        return directory

    def clips(self, source: AudioInput) -> tuple[np.ndarray, float]:
        """The 6 s windows this model reads from a recording (W, 96000), and its seconds of speech.
        Raises AudioError for what cannot be decoded, and where the detector finds no speech (silence,
        noise, tones, music)."""
        name = audio.describe_source(source)
        wave = audio.as_wave(source)
        activity = self.detector(wave)
        if not activity.has_speech:
            raise AudioError(f"{name}: no speech found: {activity.describe()}")
        if len(wave) <= audio.CLIP_SAMPLES:
            return audio.fit_length(wave)[None], activity.speech_seconds
        count = min(WINDOWS_MAX, math.ceil(len(wave) / audio.CLIP_SAMPLES))
        starts = np.linspace(0, len(wave) - audio.CLIP_SAMPLES, count).round().astype(int)
        seconds = audio.CLIP_SAMPLES / audio.SAMPLE_RATE
        speech = np.array([activity.speech_in(s / audio.SAMPLE_RATE, s / audio.SAMPLE_RATE + seconds) for s in starts])
        keep = np.flatnonzero(speech >= MIN_WINDOW_SPEECH_SECONDS)
        if len(keep) == 0:  # speech, but spread thin: the window that holds the most
            keep = np.array([int(speech.argmax())])
        return np.stack([wave[starts[i]:starts[i] + audio.CLIP_SAMPLES] for i in keep]), activity.speech_seconds

    def features(self, clips: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """Per recording (its windows (W, 96000)) -> the mean of its windows' features; (N, D)."""
        out = encode_waves(self.voice, torch.from_numpy(np.concatenate(clips)), batch)
        bounds = np.cumsum([0, *(len(c) for c in clips)])
        return torch.stack([out[a:b].mean(0) for a, b in itertools.pairwise(bounds)]).numpy()

    @torch.no_grad()
    def draw(self, features: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """Face features (N, D) -> [(PIL image, landmarks in pixels)]."""
        from PIL import Image

        decoded = self.decoder(torch.from_numpy(np.asarray(features, np.float32)).to(self.device))
        images = to_uint8(decoded.image)
        size = np.array(images.shape[2:0:-1], np.float32)  # (W, H)
        return [(Image.fromarray(img), points * size) for img, points in zip(images, decoded.landmarks.cpu().numpy(),
                                                                              strict=True)]

    def predict(self, source: AudioInput) -> Prediction:
        """One recording -> its face. `source`: a path (any audio or video file), bytes, or a 16 kHz wave."""
        return self.predict_batch([source])[0]

    def predict_batch(self, sources: Sequence[AudioInput], batch: int = 16) -> list[Prediction]:
        """Several recordings, their windows batched through the networks; AudioError on the first bad one."""
        prepared = [self.clips(source) for source in sources]
        return self.predict_clips([c for c, _ in prepared], [v for _, v in prepared], batch)

    def predict_clips(self, clips: Sequence[np.ndarray], voiced: Sequence[float], batch: int = 16,
                      ) -> list[Prediction]:
        """Recordings already cut by `clips` -> predictions (what batch jobs call after checking each input)."""
        if not clips:
            return []
        features = self.features(clips, batch)
        return [Prediction(image=image, feature=feature, landmarks=points, windows=len(windows),
                           voiced_seconds=seconds, model=self.card.label)
                for (image, points), feature, windows, seconds in zip(self.draw(features), features, clips, voiced,
                                                                      strict=True)]


@dataclass
class BatchResult:
    """What `predict_files` did: per written input its files; per failed input its error (one line)."""

    written: list[dict[str, Any]]
    failed: list[tuple[str, str]]


def predict_files(model: Speech2Face, sources: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                  batch_size: int = 16, gallery: Any = None, nearest: int = 5, progress: bool = False,
                  on_error: Any = None) -> BatchResult:
    """Draw a face for each file into `out`: NAME.png and NAME.json (input, model, synthetic, windows, voiced
    seconds, feature, landmarks; with a `gallery.Gallery` also NAME.nearest.png and the nearest speakers).
    NAME is the file's stem, made unique. A bad input is recorded (and passed to `on_error(source, message)`)
    and the others are still drawn; every file is written atomically."""
    from tqdm import tqdm

    from .errors import Speech2FaceError
    from .files import atomic_write, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult([], [])
    ready = []
    for source in tqdm(sources, desc="read", unit="file", disable=not progress or len(sources) < 2):
        try:
            ready.append((source, *model.clips(source)))
        except Speech2FaceError as error:  # a batch job records the bad item and goes on
            result.failed.append((str(source), str(error)))
            if on_error is not None:
                on_error(str(source), str(error))
    names: set[str] = set()
    for start in range(0, len(ready), batch_size):
        chunk = ready[start:start + batch_size]
        predictions = model.predict_clips([c for _, c, _ in chunk], [v for _, _, v in chunk])
        for (source, _, _), prediction in zip(chunk, predictions, strict=True):
            stem = Path(source).stem or "input"
            name = stem if stem not in names else f"{stem}-{len(names)}"
            names.add(name)
            atomic_write(out / f"{name}.png", lambda temp, image=prediction.image: image.save(temp, format="PNG"))
            record = {"input": str(source), "image": f"{name}.png", "synthetic": model.card.synthetic,
                      **prediction.to_json()}
            if gallery is not None:
                record["nearest"] = _write_nearest(gallery, prediction.feature, nearest, out / f"{name}.nearest.png")
            write_json(out / f"{name}.json", record)
            result.written.append({"input": str(source), "image": out / f"{name}.png", "prediction": prediction})
    return result


def _write_nearest(gallery: Any, feature: np.ndarray, count: int, path: Path) -> list[dict[str, Any]]:
    """The `count` gallery faces nearest to `feature` as one strip image at `path`; their speakers."""
    from PIL import Image

    from .files import atomic_write

    found = gallery.nearest(feature, count)
    strip = Image.fromarray(gallery.strip([i for i, _ in found]))
    atomic_write(path, lambda temp: strip.save(temp, format="PNG"))
    return [{"speaker": gallery.speakers[i], "key": gallery.keys[i], "cosine": round(c, 4)} for i, c in found]
