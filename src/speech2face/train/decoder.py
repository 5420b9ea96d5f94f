"""The face decoder's objective (Cole et al.): face feature -> landmarks + texture -> a frontal face.

    s2f train-decoder --data shards/ --out runs/decoder --steps 2000            # CPU: the small config
    s2f train-decoder --data photo-shards/ --data shards/ --out runs/decoder --size medium   # 128 px
    s2f train-decoder --data shards/ --out runs/decoder --size paper --device cuda

`--data` may be given several times: photo shards (`prepare --images`), video shards, or both; they must share
one face encoder (the teacher). Training faces are augmented (`augment.py`: flips, same-sex morphs, colour),
each augmented face with its feature recomputed by the teacher.

Besides the run files of `loop.fit`, the run gets samples/step_XXXXXX.png (held-out inputs over their
decoded faces) at every evaluation. The decoder is loadable with `FaceDecoder.from_pretrained(run)`.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from ..data.dataset import ShardStream, face_item, shard_paths
from ..data.photos import photo_sex
from ..data.splits import VALIDATION, held_out
from ..errors import DataError
from ..evaluate.metrics import decoder_quality
from ..faces import get_encoder
from ..files import atomic_write
from ..images import to_float, to_uint8
from ..losses import LANDMARK_WEIGHT, PERCEPTUAL_WEIGHT, TEXTURE_WEIGHT, decoder_losses
from ..model_folder import STATE_FILE
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from .augment import Augmentation, augment_batch, draws
from .loop import TrainingSettings, run


@dataclass(frozen=True)
class DecoderTraining(TrainingSettings):
    steps: int = 2000
    batch_size: int = 16
    texture_weight: float = TEXTURE_WEIGHT
    landmark_weight: float = LANDMARK_WEIGHT
    perceptual_weight: float = PERCEPTUAL_WEIGHT
    encoder: str = "dlib-torch"  # the differentiable face encoder of the perceptual loss
    eval_faces: int = 512
    flip: float = 0.5  # augmentation (augment.py): probability of a mirrored face
    morph: float = 0.0  # probability of a same-sex morph of two faces (a new identity)
    colour: float = 0.0  # probability of a colour jitter
    decay: bool = True  # cosine learning-rate decay over `steps`

    def __post_init__(self) -> None:
        for name in ("flip", "morph", "colour"):
            if not 0 <= getattr(self, name) <= 1:
                raise DataError(f"--{name} is a probability in [0, 1], got {getattr(self, name)}")

    def augmentation(self) -> Augmentation:
        return Augmentation(flip=self.flip, morph=self.morph, colour=self.colour)


def training_item(sample: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    """face_item, with the sample's augmentation draws for this epoch and its sex (1 male, 0 female, -1
    unknown: a photo's label or confident judge; video samples: unknown)."""
    sex = photo_sex(sample["meta"])
    return face_item(sample) | {"draws": draws(seed, zlib.crc32(sample["key"].encode()), sample.get("epoch", 0)),
                                "male": np.int64(-1 if sex is None else sex == "male")}


def cosine(step: int, steps: int, floor: float = 0.01) -> float:
    """The learning-rate factor at `step` of `steps`: from 1 down a half cosine to `floor`, then `floor`."""
    progress = min(step / max(steps, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def teacher_name(folders: list[Path]) -> str:
    """The face encoder that made the features of every folder's training shards, as their first sample names
    it (the same for all, or DataError)."""
    names = set()
    for folder in folders:
        first = next(iter(ShardStream(shard_paths(folder, "train"), lambda sample: sample["meta"], shuffle=False,
                                      loop=False, faces=False)), {})
        names.add(str(first.get("encoder", "")))
    if len(names) != 1 or "" in names:
        raise DataError(f"--data folders must share one face encoder (s2f prepare --encoder); found "
                        f"{', '.join(sorted(n or 'unknown' for n in names))}")
    return names.pop()


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

    def __init__(self, data: list[Path], out: Path, settings: DecoderTraining, device: torch.device,
                 resume: bool) -> None:
        self.settings, self.device, self.out = settings, device, out
        torch.manual_seed(settings.seed)
        self.train_paths = [path for folder in data for path in shard_paths(folder, "train")]
        if not self.train_paths:
            raise DataError(f"{', '.join(map(str, data))}: no train shards; run s2f prepare first")
        self.held = held_out(data, face_item, VALIDATION, limit=settings.eval_faces)
        self.augmentation = settings.augmentation()
        if resume and (out / STATE_FILE).is_file():
            self.model = FaceDecoder(FaceDecoder.read_config(out)).to(device)
        else:
            feature_dim = int(self.held["feature"].shape[1])
            self.model = FaceDecoder(FaceDecoderConfig.named(settings.size, feature_dim)).to(device)
            self.model.set_mean_landmarks(mean_landmarks(self.train_paths))
        self.embed = get_encoder(settings.encoder, device=device).module  # frozen; gradients reach its input
        self.teacher_name = teacher_name(data)
        on = None if self.teacher_name == "dlib" else device  # dlib's own C++ network runs on the CPU only
        self.teacher = get_encoder(self.teacher_name, device=on) if self.augmentation.any() else None

    def stream(self, rank: int, world_size: int, start_epoch: int) -> IterableDataset:
        s = self.settings
        return ShardStream(self.train_paths, functools.partial(training_item, seed=s.seed),
                           shuffle=s.shuffle_buffer > 0, buffer=max(1, s.shuffle_buffer),
                           seed=s.seed, rank=rank, world_size=world_size, start_epoch=start_epoch,
                           interleave=s.shuffle_buffer == 0)

    def optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """Adam; with `decay`, the learning rate falls along a cosine to 1 % over the run (sharper faces at the
        end than a constant rate gives)."""
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.settings.lr)
        if not self.settings.decay:
            return optimizer, None
        # a factor of the step alone (no state of its own): `--resume --steps MORE` follows the longer cosine
        factor = functools.partial(cosine, steps=self.settings.steps)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.settings
        crops, landmarks, features = batch["face"], batch["landmarks"], batch["feature"]
        if self.teacher is not None:
            crops, landmarks, features = augment_batch(batch, self.augmentation, self.teacher)
        faces = to_float(crops, self.model.config.image_size).to(self.device)
        decoded = model(features.to(self.device))
        return decoder_losses(decoded, faces, landmarks.to(self.device), self.model.mean_landmarks,
                              self.embed if s.perceptual_weight > 0 else None, texture_weight=s.texture_weight,
                              landmark_weight=s.landmark_weight, perceptual_weight=s.perceptual_weight)

    def evaluate(self, step: int) -> dict[str, Any]:
        held, size = self.held, self.model.config.image_size
        faces = to_float(held["face"], size).to(self.device)
        images, points = self.model.draw(held["feature"])
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
        return {"teacher": self.teacher_name}


def train_decoder(data: str | Path | list[str | Path], out: str | Path, settings: DecoderTraining | None = None, *,
                  resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) a face decoder on one prepared folder or several (photos, videos, both); returns
    the final held-out quality (also in eval.json). Runs alone or under torchrun (DDP)."""
    settings = settings or DecoderTraining()
    folders = [Path(d) for d in (data if isinstance(data, list | tuple) else [data])]
    return run(lambda context: DecoderTask(folders, Path(out), settings, context.device, resume), settings, out,
               resume=resume, progress=progress)
