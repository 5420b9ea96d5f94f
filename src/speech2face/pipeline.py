"""`Speech2Face`: a trained voice encoder and face decoder, from any recording to a face.

    model = Speech2Face.from_pretrained("demo")        # a registered name, or a folder
    prediction = model.predict("voice.wav")             # a path, a 16 kHz float array, or a file's bytes
    prediction.image.save("face.png")

The way through: load_audio -> speech check -> 6 s windows -> spectrogram -> voice encoder -> one feature
-> face decoder -> image + landmarks.

Windows: a recording up to 6 s is repeated to 6 s (SPEC 3). A longer one is read as WINDOWS_MAX 6 s
windows at most, spread evenly from its start to its end (consecutive windows overlap only when the
recording is shorter than WINDOWS_MAX x 6 s); windows without speech are dropped, and the features of the
others are averaged (their mean, before the decoder). Silence or noise -> AudioError, never a face.

A model folder (`save_pretrained`) holds `speech2face.json` (the model card: name, whether it was trained on
synthetic data, its evaluation), `voice/` and `decoder/` (each config.json + model.safetensors).
`from_pretrained` also takes a `s2f train` run folder (its decoder named in training.json) or a `s2f demo`
output folder.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import audio
from .activity import speech_activity
from .errors import AudioError, ModelError
from .files import PREPARE_HEADER, read_header, write_json

CARD_FILE = "speech2face.json"
WINDOWS_MAX = 8
MIN_WINDOW_VOICED_SECONDS = 0.5  # a 6 s window with less speech than this is skipped
AudioInput = str | os.PathLike | bytes | np.ndarray


@dataclass
class ModelCard:
    """What a model is; shown wherever the model is (CLI, web page, JSON outputs)."""

    name: str
    synthetic: bool
    description: str = ""
    face_encoder: str = ""  # the face network whose feature space the voice encoder predicts
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """One line for people: the name, and the synthetic warning where it applies."""
        warning = " — SYNTHETIC: trained on the synthetic world; says nothing about real people" \
            if self.synthetic else ""
        return f"{self.name}{warning}"


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
        self.device = torch.device(device) if device is not None else \
            torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.voice, self.decoder = voice.to(self.device).eval(), decoder.to(self.device).eval()
        self.card = card

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
        voice_dir, decoder_dir, card = _locate(path)
        return cls(VoiceEncoder.from_pretrained(voice_dir), FaceDecoder.from_pretrained(decoder_dir), card, device)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """`speech2face.json` + `voice/` + `decoder/`; what `from_pretrained` and the registry read."""
        directory = Path(directory)
        self.voice.save_pretrained(directory / "voice")
        self.decoder.save_pretrained(directory / "decoder")
        write_json(directory / CARD_FILE, {"format_version": 1, **self.card.__dict__})
        return directory

    def clips(self, source: AudioInput) -> tuple[np.ndarray, float]:
        """The 6 s windows this model reads from a recording (W, 96000), and its voiced seconds.
        Raises AudioError for what cannot be decoded, and for silence or noise."""
        name = audio.describe_source(source)
        if isinstance(source, np.ndarray):
            wave = np.asarray(source, np.float32)
            if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
                raise AudioError(f"{name}: need a 1-D finite 16 kHz wave")
        else:
            wave = audio.load_audio(source)
        activity = speech_activity(wave)
        if not activity.has_speech:
            raise AudioError(f"{name}: no speech found: {activity.describe()}")
        if len(wave) <= audio.CLIP_SAMPLES:
            return audio.fit_length(wave)[None], activity.voiced_seconds
        count = min(WINDOWS_MAX, math.ceil(len(wave) / audio.CLIP_SAMPLES))
        starts = np.linspace(0, len(wave) - audio.CLIP_SAMPLES, count).round().astype(int)
        windows = [wave[s:s + audio.CLIP_SAMPLES] for s in starts]
        speaking = [w for w in windows if speech_activity(w).voiced_seconds >= MIN_WINDOW_VOICED_SECONDS]
        return np.stack(speaking or windows), activity.voiced_seconds  # all quiet windows: keep them all

    @torch.no_grad()
    def features(self, clips: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """Per recording (its windows (W, 96000)) -> the mean of its windows' features; (N, D)."""
        flat = torch.from_numpy(np.concatenate(clips)).to(self.device)
        out = torch.cat([self.voice(audio.spectrogram(chunk)).float() for chunk in flat.split(batch)])
        bounds = np.cumsum([0, *(len(c) for c in clips)])
        return torch.stack([out[a:b].mean(0) for a, b in itertools.pairwise(bounds)]).cpu().numpy()

    @torch.no_grad()
    def draw(self, features: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """Face features (N, D) -> [(PIL image, landmarks in pixels)]."""
        from PIL import Image

        decoded = self.decoder(torch.from_numpy(np.asarray(features, np.float32)).to(self.device))
        images = (decoded.image.clamp(0, 1).permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy()
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from error


def _locate(path: Path) -> tuple[Path, Path, ModelCard]:
    """(voice folder, decoder folder, card) of a model folder, a training run or a demo output."""
    if (path / CARD_FILE).is_file():
        card = _read_json(path / CARD_FILE)
        card.pop("format_version", None)
        try:
            return path / "voice", path / "decoder", ModelCard(**card)
        except TypeError as error:
            raise ModelError(f"{path / CARD_FILE}: not a model card ({error})") from error
    if (path / "model" / CARD_FILE).is_file():  # a demo output folder
        return _locate(path / "model")
    if (path / "training.json").is_file() and (path / "model.safetensors").is_file():  # a s2f train run
        training = _read_json(path / "training.json")
        decoder = Path(training.get("decoder", ""))
        if not (decoder / "model.safetensors").is_file():
            raise ModelError(f"{path}: its decoder {decoder} is gone; pass a model folder instead")
        prepared = read_header(training["data"], PREPARE_HEADER) if "data" in training else {}
        return path, decoder, ModelCard(name=path.name, synthetic=bool(prepared.get("synthetic", False)),
                                        description=f"voice encoder run {path}",
                                        face_encoder=prepared.get("settings", {}).get("encoder", ""))
    raise ModelError(f"{path}: not a speech2face model (no {CARD_FILE}, no training run)")


def package_run(voice_run: str | os.PathLike, out: str | os.PathLike, card: ModelCard) -> Path:
    """Copy a `s2f train` run and its decoder into a self-contained model folder `out` with `card`."""
    voice_dir, decoder_dir, _ = _locate(Path(voice_run))
    out = Path(out)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for source, name in ((voice_dir, "voice"), (decoder_dir, "decoder")):
        (staging / name).mkdir(parents=True)
        for file in ("config.json", "model.safetensors"):
            shutil.copy2(source / file, staging / name / file)
    write_json(staging / CARD_FILE, {"format_version": 1, **card.__dict__})
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out
