"""The face decoder's objective (Cole et al.): face feature -> landmarks + texture -> a frontal face.

    s2f train-decoder --data shards/ --out runs/decoder --steps 2000            # CPU: the small config
    s2f train-decoder --data shards/ --out runs/decoder --config paper --device cuda

Besides the run files of `loop.fit`, the run gets samples/step_XXXXXX.png (held-out inputs over their
decoded faces) at every evaluation. The decoder is loadable with `FaceDecoder.from_pretrained(run)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from ..data.dataset import ShardStream, shard_paths
from ..errors import DataError
from ..evaluate.metrics import decoder_quality
from ..evaluate.protocol import VALIDATION, held_out
from ..files import atomic_write
from ..images import to_float, to_uint8
from ..losses import LANDMARK_WEIGHT, PERCEPTUAL_WEIGHT, TEXTURE_WEIGHT, decoder_losses
from ..model_folder import STATE_FILE
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from .loop import TrainingSettings, run

CROP_SIZE = 224  # prepare's aligned crops


@dataclass(frozen=True)
class DecoderTraining(TrainingSettings):
    steps: int = 2000
    batch_size: int = 16
    texture_weight: float = TEXTURE_WEIGHT
    landmark_weight: float = LANDMARK_WEIGHT
    perceptual_weight: float = PERCEPTUAL_WEIGHT
    encoder: str = "dlib-torch"  # the differentiable face encoder of the perceptual loss
    eval_faces: int = 512


def face_item(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """A shard sample -> face (H, W, 3) uint8, landmarks normalised (68, 2), feature (D,)."""
    face = sample["face"]
    if face.shape != (CROP_SIZE, CROP_SIZE, 3):
        raise DataError(f"{sample['key']}: face crop {face.shape}, expected {CROP_SIZE}x{CROP_SIZE}")
    return {"face": face, "landmarks": ((sample["landmarks"] + 0.5) / CROP_SIZE).astype(np.float32),
            "feature": sample["feature"].astype(np.float32)}


def mean_landmarks(paths: list[Path], count: int = 512) -> torch.Tensor:
    points = []
    for item in ShardStream(paths, face_item, shuffle=False, loop=False):
        points.append(item["landmarks"])
        if len(points) >= count:
            break
    return torch.from_numpy(np.mean(points, axis=0))


def grid_indices(speakers: list[str], count: int = 8) -> list[int]:
    """One face per speaker first (a grid of one person says little), then the rest, up to `count`."""
    first: dict[str, int] = {}
    for index, speaker in enumerate(speakers):
        first.setdefault(speaker, index)
    chosen = list(first.values())[:count]
    return chosen + [i for i in range(len(speakers)) if i not in chosen][:count - len(chosen)]


def save_grid(path: Path, inputs: torch.Tensor, outputs: torch.Tensor) -> None:
    """Inputs (N, 3, S, S) on the top row, their decoded faces below, as a PNG."""
    from PIL import Image

    rows = [np.concatenate(list(to_uint8(images)), axis=1) for images in (inputs, outputs)]
    grid = np.concatenate(rows, axis=0)
    atomic_write(path, lambda t: Image.fromarray(grid).save(t, format="PNG"))


class DecoderTask:
    """Decoder losses (texture L1 in the mean geometry, landmark MSE, perceptual through a frozen face
    encoder), weighted; held-out landmark error, pixel L1, identity cosine and R@1 beside the mean face."""

    name, what = "train-decoder", "decoder"

    def __init__(self, data: str | Path, out: Path, settings: DecoderTraining, device: torch.device,
                 resume: bool) -> None:
        from ..faces import get_encoder

        self.settings, self.device, self.out = settings, device, out
        torch.manual_seed(settings.seed)
        self.train_paths = shard_paths(data, "train")
        if not self.train_paths:
            raise DataError(f"{data}: no train shards; run s2f prepare first")
        self.held = held_out(data, face_item, VALIDATION, limit=settings.eval_faces)
        if resume and (out / STATE_FILE).is_file():
            self.model = FaceDecoder(FaceDecoder.read_config(out)).to(device)
        else:
            feature_dim = int(self.held["feature"].shape[1])
            self.model = FaceDecoder(FaceDecoderConfig.named(settings.config, feature_dim)).to(device)
            self.model.set_mean_landmarks(mean_landmarks(self.train_paths))
        self.embed = get_encoder(settings.encoder, device=device).module  # frozen; gradients reach its input

    def stream(self, rank: int, world_size: int, start_epoch: int) -> IterableDataset:
        s = self.settings
        return ShardStream(self.train_paths, face_item, shuffle=s.shuffle_buffer > 0, buffer=max(1, s.shuffle_buffer),
                           seed=s.seed, rank=rank, world_size=world_size, start_epoch=start_epoch,
                           interleave=s.shuffle_buffer == 0)

    def optimizer(self) -> tuple[torch.optim.Optimizer, None]:
        return torch.optim.Adam(self.model.parameters(), lr=self.settings.lr), None

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.settings
        faces = to_float(batch["face"], self.model.config.image_size).to(self.device)
        decoded = model(batch["feature"].to(self.device))
        return decoder_losses(decoded, faces, batch["landmarks"].to(self.device), self.model.mean_landmarks,
                              self.embed if s.perceptual_weight > 0 else None, texture_weight=s.texture_weight,
                              landmark_weight=s.landmark_weight, perceptual_weight=s.perceptual_weight)

    @torch.no_grad()
    def decode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, D) -> decoded images (N, 3, S, S) and landmarks (N, 68, 2), float32, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        images, points = [], []
        for chunk in features.split(64):
            decoded = self.model(chunk.to(self.device))
            images.append(decoded.image.float())
            points.append(decoded.landmarks.float())
        self.model.train(was_training)
        return torch.cat(images), torch.cat(points)

    def evaluate(self, step: int) -> dict[str, Any]:
        held, size = self.held, self.model.config.image_size
        faces = to_float(held["face"], size).to(self.device)
        images, points = self.decode(held["feature"])
        show = grid_indices(held["speakers"])
        save_grid(self.out / "samples" / f"step_{step:06d}.png", faces[show], images[show])
        return decoder_quality(images, points, faces, held["landmarks"].to(self.device), held["speakers"],
                               self.embed, self.model.mean_landmarks)

    def score(self, quality: dict[str, Any]) -> None:
        return None

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def header(self) -> dict[str, Any]:
        return {}


def train_decoder(data: str | Path, out: str | Path, settings: DecoderTraining | None = None, *,
                  resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) a face decoder; returns the final held-out quality (also in eval.json). Runs
    alone or under torchrun (DDP)."""
    settings = settings or DecoderTraining()
    return run(lambda context: DecoderTask(data, Path(out), settings, context.device, resume), settings, out,
               resume=resume, progress=progress)
