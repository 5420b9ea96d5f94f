"""Training. `train_decoder`: the face decoder (Cole et al.) on prepared shards.

    s2f train-decoder --data shards/ --out runs/decoder --steps 2000            # CPU: the small config
    s2f train-decoder --data shards/ --out runs/decoder --config paper --device cuda

A run directory holds config.json + model.safetensors (the model, loadable with
`FaceDecoder.from_pretrained`), training_state.pt (optimiser and step; read with weights_only=True, no
code runs), metrics.jsonl (one JSON object per logged step), samples/step_XXXXXX.png (held-out inputs
over their decoded faces) and eval.json (quality on held-out speakers). `--resume` continues from the
last checkpoint; the data stream restarts at a new seeded epoch (the shards are a stream, not an index).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data.dataset import ShardStream, collate, shard_paths
from .errors import DataError
from .evaluate import decoder_quality
from .files import atomic_write, write_json
from .losses import decoder_losses
from .models.face_decoder import FaceDecoder, FaceDecoderConfig

log = logging.getLogger(__name__)
CROP_SIZE = 224  # prepare's aligned crops
STATE_FILE = "training_state.pt"


@dataclass(frozen=True)
class DecoderTraining:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    config: str = "small"  # small (64 px, CPU) or paper (224 px)
    texture_weight: float = 1.0
    landmark_weight: float = 100.0  # landmark MSE is in normalised units (~1e-3)
    perceptual_weight: float = 0.5
    encoder: str = "dlib-torch"  # the differentiable face encoder of the perceptual loss
    log_every: int = 20
    checkpoint_every: int = 200
    eval_every: int = 500
    eval_faces: int = 512
    seed: int = 0
    workers: int = 0
    device: str = "auto"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def face_item(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """A shard sample -> face (H, W, 3) uint8, landmarks normalised (68, 2), feature (D,)."""
    face = sample["face"]
    if face.shape != (CROP_SIZE, CROP_SIZE, 3):
        raise DataError(f"{sample['key']}: face crop {face.shape}, expected {CROP_SIZE}x{CROP_SIZE}")
    return {"face": face, "landmarks": ((sample["landmarks"] + 0.5) / CROP_SIZE).astype(np.float32),
            "feature": sample["feature"].astype(np.float32)}


def to_images(faces: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, size, size) float in [0, 1]."""
    images = faces.permute(0, 3, 1, 2).float().div_(255)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images


def held_out(data: str | Path, limit: int) -> dict[str, Any]:
    """Up to `limit` held-out samples (val, else test), in a fixed order, with their speakers."""
    paths = shard_paths(data, "val") or shard_paths(data, "test")
    if not paths:
        raise DataError(f"{data}: no val or test shards (prepare splits speakers with --val/--test)")
    items, speakers = [], []
    for sample in ShardStream(paths, lambda s: (face_item(s), s["meta"]["speaker"]), shuffle=False, loop=False):
        items.append(sample[0])
        speakers.append(sample[1])
        if len(items) >= limit:
            break
    batch = collate(items)
    return {**batch, "speakers": speakers}


def save_grid(path: Path, inputs: torch.Tensor, outputs: torch.Tensor, count: int = 8) -> None:
    """Inputs on the top row, their decoded faces below, as a PNG."""
    from PIL import Image

    rows = [torch.cat(list(images[:count]), dim=2) for images in (inputs, outputs)]
    grid = (torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    atomic_write(path, lambda t: Image.fromarray(grid).save(t, format="PNG"))


def grid_indices(speakers: list[str], count: int = 8) -> list[int]:
    """One face per speaker first (a grid of one person says little), then the rest, up to `count`."""
    first: dict[str, int] = {}
    for index, speaker in enumerate(speakers):
        first.setdefault(speaker, index)
    chosen = list(first.values())[:count]
    return chosen + [i for i in range(len(speakers)) if i not in chosen][:count - len(chosen)]


def _decode_all(decoder: FaceDecoder, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images, points = [], []
    with torch.no_grad():
        for chunk in features.split(64):
            decoded = decoder(chunk)
            images.append(decoded.image.float())
            points.append(decoded.landmarks.float())
    return torch.cat(images), torch.cat(points)


def evaluate_decoder(decoder: FaceDecoder, held: dict[str, Any], embed: torch.nn.Module,
                     device: torch.device) -> dict[str, dict[str, float]]:
    decoder.eval()
    faces = to_images(held["face"], decoder.config.image_size).to(device)
    images, points = _decode_all(decoder, held["feature"].to(device))
    decoder.train()
    return decoder_quality(images, points, faces, held["landmarks"].to(device), held["speakers"], embed,
                           decoder.mean_landmarks)


def mean_landmarks(paths: list[Path], count: int = 512) -> torch.Tensor:
    points = []
    for item in ShardStream(paths, face_item, shuffle=False, loop=False):
        points.append(item["landmarks"])
        if len(points) >= count:
            break
    return torch.from_numpy(np.mean(points, axis=0))


def train_decoder(data: str | Path, out: str | Path, settings: DecoderTraining | None = None, *,
                  resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) a face decoder; returns the final held-out quality (also in eval.json)."""
    from .faces import get_encoder

    settings = settings or DecoderTraining()
    out = Path(out)
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    train_paths = shard_paths(data, "train")
    if not train_paths:
        raise DataError(f"{data}: no train shards; run s2f prepare first")
    held = held_out(data, settings.eval_faces)
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        decoder = FaceDecoder(FaceDecoder.read_config(out)).to(device)
        state = torch.load(state_path, map_location=device, weights_only=True)
        decoder.load_state_dict(state["model"], strict=True)  # the weights that go with this optimiser state
        step = int(state["step"])
        log.info("resuming %s at step %d", out, step)
    else:
        if (out / "model.safetensors").exists():
            raise DataError(f"{out} already holds a trained decoder; pass --resume or use another --out")
        feature_dim = int(held["feature"].shape[1])
        decoder = FaceDecoder(FaceDecoderConfig.named(settings.config, feature_dim)).to(device)
        decoder.set_mean_landmarks(mean_landmarks(train_paths))
        state, step = None, 0
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "training.json", asdict(settings))
    optimizer = torch.optim.Adam(decoder.parameters(), lr=settings.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    embed = get_encoder(settings.encoder, device=device).module  # frozen; gradients reach its input
    stream = ShardStream(train_paths, face_item, seed=settings.seed, start_epoch=step)
    loader = DataLoader(stream, batch_size=settings.batch_size, num_workers=settings.workers, collate_fn=collate)
    size = decoder.config.image_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(total=settings.steps, initial=step, desc="train-decoder", unit="step", disable=not progress)
    started, seen = time.perf_counter(), 0
    decoder.train()
    for batch in loader:
        if step >= settings.steps:
            break
        faces = to_images(batch["face"], size).to(device)
        landmarks, features = batch["landmarks"].to(device), batch["feature"].to(device)
        with autocast:
            decoded = decoder(features)
            losses = decoder_losses(decoded, faces, landmarks, decoder.mean_landmarks,
                                    embed if settings.perceptual_weight > 0 else None)
        total = (settings.texture_weight * losses["texture"] + settings.landmark_weight * losses["landmarks"]
                 + settings.perceptual_weight * losses.get("perceptual", torch.zeros((), device=device)))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        optimizer.step()
        step += 1
        seen += len(features)
        bar.update(1)
        if step % settings.log_every == 0 or step == settings.steps:
            row = {"step": step, "loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()},
                   "images_per_s": round(seen / (time.perf_counter() - started), 2)}
            _append(out / "metrics.jsonl", row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_checkpoint(decoder, optimizer, step, out)
        if step % settings.eval_every == 0 or step == settings.steps:
            quality = evaluate_decoder(decoder, held, embed, device)
            _append(out / "metrics.jsonl", {"step": step, "eval": quality})
            show = grid_indices(held["speakers"])
            with torch.no_grad():
                sample = decoder(held["feature"][show].to(device)).image.float()
            save_grid(out / "samples" / f"step_{step:06d}.png", to_images(held["face"][show], size), sample.cpu())
    bar.close()
    if step < settings.steps:
        raise DataError(f"the training stream ended at step {step}")
    quality = evaluate_decoder(decoder, held, embed, device)
    result = {"step": step, "held_out": quality, "note": "held-out speakers (val split, else test)"}
    write_json(out / "eval.json", result)
    return result


def save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, out: Path) -> None:
    """The model (for use) and the training state (model + optimiser + step, for --resume), each written
    atomically: a kill between the two leaves a consistent state file to resume from."""
    model.save_pretrained(out)  # type: ignore[operator]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    atomic_write(out / STATE_FILE, lambda t: torch.save(state, t))


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
