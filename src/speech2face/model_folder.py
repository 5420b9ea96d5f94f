"""The on-disk format of training runs and model folders: file names, the model card, and how to find
the voice encoder and decoder in any of them. A leaf: it imports only errors and files, so every module
above it (training, evaluation, the pipeline, the registry, the demo) can read and write the same names.

A network folder: `config.json` + `model.safetensors` (`models.pretrained`).
A training run (`s2f train-decoder`, `s2f train`): a network folder plus
    training.json        the settings (and for the voice encoder: its decoder's and data's paths)
    training_state.pt    model, optimiser, scheduler, step, best score, RNG (read with weights_only=True)
    metrics.jsonl        one JSON object per logged step, with `step`
    eval.json            the final held-out evaluation (its presence marks a finished run)
    best/                the network with the best held-out score (voice encoder)
A model folder (`Speech2Face.save_pretrained`, `package_run`): `speech2face.json` (the card) + `voice/` +
`decoder/`. A `s2f demo` output folder holds one as `model/`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .files import PREPARE_HEADER, read_header, write_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "speech2face.json"
TRAINING_FILE = "training.json"
STATE_FILE = "training_state.pt"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
BEST_DIR = "best"
VOICE_DIR = "voice"
DECODER_DIR = "decoder"
DEMO_MODEL_DIR = "model"  # inside a `s2f demo` output folder
SHIPPED_DEMO = Path(__file__).with_name("demo_model")  # the demo model as the package ships it
CARD_FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """What a model is; shown wherever the model is (CLI, web page, JSON outputs)."""

    name: str
    synthetic: bool
    description: str = ""
    face_encoder: str = ""  # the face network whose feature space the voice encoder predicts
    evaluation: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256, where the folder is shipped
    terms: str = ""  # the terms of the data the model learnt from (CelebA: non-commercial research only)

    @property
    def label(self) -> str:
        """One line for people: the name, the synthetic warning and the data's terms where they apply."""
        warning = " — SYNTHETIC: trained on a synthetic pairing of voices and faces; says nothing about real people" \
            if self.synthetic else ""
        terms = f" — {self.terms}" if self.terms else ""
        return f"{self.name}{warning}{terms}"

    def write(self, folder: Path) -> None:
        write_json(folder / CARD_FILE, {"format_version": CARD_FORMAT_VERSION, **asdict(self)})

    @classmethod
    def read(cls, folder: Path) -> ModelCard:
        fields = read_json(folder / CARD_FILE)
        fields.pop("format_version", None)
        try:
            return cls(**fields)
        except TypeError as error:
            raise ModelError(f"{folder / CARD_FILE}: not a model card ({error})") from error


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run or model folder; a one-line ModelError when it is missing or damaged."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from error
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a JSON object")
    return data


def training_settings(run: Path) -> dict[str, Any]:
    """A run's training.json, or {} when it has none (a bare network folder)."""
    path = Path(run) / TRAINING_FILE
    return read_json(path) if path.is_file() else {}


def is_model_folder(path: Path) -> bool:
    return (Path(path) / CARD_FILE).is_file()


def is_network_folder(path: Path) -> bool:
    return (Path(path) / WEIGHTS_FILE).is_file()


def locate(path: Path) -> tuple[Path, Path, ModelCard]:
    """(voice folder, decoder folder, card) of a model folder, a `s2f train` run or a `s2f demo` output."""
    path = Path(path)
    if is_model_folder(path):
        return path / VOICE_DIR, path / DECODER_DIR, ModelCard.read(path)
    if is_model_folder(path / DEMO_MODEL_DIR):
        return locate(path / DEMO_MODEL_DIR)
    if (path / TRAINING_FILE).is_file() and is_network_folder(path):
        training = read_json(path / TRAINING_FILE)
        decoder = Path(training.get("decoder", ""))
        if not is_network_folder(decoder):
            raise ModelError(f"{path}: its decoder {decoder} is gone; pass a model folder instead")
        prepared = read_header(training["data"], PREPARE_HEADER) if "data" in training else {}
        return path, decoder, ModelCard(name=path.name, synthetic=bool(prepared.get("synthetic", False)),
                                        description=f"voice encoder run {path}",
                                        face_encoder=prepared.get("settings", {}).get("encoder", ""))
    raise ModelError(f"{path}: not a speech2face model (no {CARD_FILE}, no training run)")


def package_run(voice_run: str | os.PathLike, out: str | os.PathLike, card: ModelCard) -> Path:
    """Copy a `s2f train` run and its decoder into a self-contained model folder `out` with `card`; the
    folder appears whole or not at all."""
    voice_dir, decoder_dir, _ = locate(Path(voice_run))
    out = Path(out)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for source, name in ((voice_dir, VOICE_DIR), (decoder_dir, DECODER_DIR)):
        (staging / name).mkdir(parents=True)
        for file in (CONFIG_FILE, WEIGHTS_FILE):
            shutil.copy2(source / file, staging / name / file)
    card.write(staging)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out
