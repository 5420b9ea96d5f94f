"""Model files: `config.json` + `model.safetensors` in a directory; no pickle anywhere.

A model class sets `config_class` (a dataclass with `to_dict` / `from_dict`) and `model_type`, and
inherits `save_pretrained` / `from_pretrained` from `PretrainedModel`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..errors import ModelError
from ..files import atomic_write
from ..model_folder import CONFIG_FILE, WEIGHTS_FILE

FORMAT_VERSION = 1

ModelT = TypeVar("ModelT", bound="PretrainedModel")


class DataclassConfig:
    """to_dict / from_dict for a frozen dataclass of plain values (tuples travel as JSON lists)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class ModelConfig(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig: ...


def describe_mismatch(expected: dict[str, torch.Size], found: dict[str, torch.Size], limit: int = 3) -> str:
    """A one-line account of how two name -> shape maps differ ('' when they agree)."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = [f"{key} is {tuple(found[key])}, config needs {tuple(expected[key])}"
                for key in sorted(expected.keys() & found.keys()) if expected[key] != found[key]]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)):
        if items:
            shown = "; ".join(items[:limit]) + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")
            parts.append(f"{len(items)} {label}: {shown}")
    return ", ".join(parts)


def read_header(directory: str | os.PathLike) -> Any:
    """The parsed config.json of a model directory (ModelError when there is none or it is unreadable)."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise ModelError(f"{directory}: no such model directory")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelError(f"{directory}: no {CONFIG_FILE} (not a saved model directory)") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from error


class PretrainedModel(nn.Module):
    """Base of every model with a config: save and load a directory, strictly."""

    config_class: ClassVar[type]
    model_type: ClassVar[str]
    config: Any

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `config.json` and `model.safetensors` into `directory` (created if needed), atomically."""
        directory = Path(directory)
        header = {"model_type": self.model_type, "format_version": FORMAT_VERSION, "config": self.config.to_dict()}
        state = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
        # serialised in memory, written by Python: a full disk is an OSError (ENOSPC) naming the path, not
        # safetensors' own error type
        data = save(state, metadata={"model_type": self.model_type})
        atomic_write(directory / WEIGHTS_FILE, lambda temp: temp.write_bytes(data))
        atomic_write(directory / CONFIG_FILE, lambda temp: temp.write_text(json.dumps(header, indent=2) + "\n"))
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike) -> Any:
        """The config stored in a model directory, checked to be of this model's type."""
        path = Path(directory) / CONFIG_FILE
        header = read_header(directory)
        if not isinstance(header, dict) or header.get("model_type") != cls.model_type:
            found = header.get("model_type") if isinstance(header, dict) else None
            raise ModelError(f"{path}: holds a {found!r} model, not a {cls.model_type!r}")
        if header.get("format_version", 0) > FORMAT_VERSION:
            raise ModelError(f"{path}: format version {header['format_version']} is newer than this "
                             f"speech2face reads ({FORMAT_VERSION}); upgrade the package")
        try:
            return cls.config_class.from_dict(header["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{path}: invalid config ({error})") from error

    @classmethod
    def from_pretrained(cls: type[ModelT], directory: str | os.PathLike,
                        map_location: str | torch.device = "cpu") -> ModelT:
        """Rebuild the model from `directory`; weights that do not fit the config raise ModelError."""
        config = cls.read_config(directory)
        weights_path = Path(directory) / WEIGHTS_FILE
        if not weights_path.is_file():
            raise ModelError(f"{directory}: no {WEIGHTS_FILE}")
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelError(f"{weights_path}: unreadable weights ({error})") from error
        model = cls(config)
        expected = {key: value.shape for key, value in model.state_dict().items()}
        mismatch = describe_mismatch(expected, {key: value.shape for key, value in state.items()})
        if mismatch:
            raise ModelError(f"{weights_path}: weights do not fit {CONFIG_FILE}: {mismatch}")
        model.load_state_dict(state, strict=True)
        return model.to(map_location)
