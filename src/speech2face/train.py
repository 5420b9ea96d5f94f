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
from collections.abc import Callable
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
from .losses import decoder_losses, voice_losses
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


def held_out_items(data: str | Path, transform: Callable[[dict[str, Any]], dict[str, np.ndarray]], limit: int,
                   faces: bool = True) -> dict[str, Any]:
    """Up to `limit` held-out samples (val, else test) through `transform`, in a fixed order, collated,
    with their speakers."""
    paths = shard_paths(data, "val") or shard_paths(data, "test")
    if not paths:
        raise DataError(f"{data}: no val or test shards (prepare splits speakers with --val/--test)")
    items, speakers = [], []
    for item, speaker in ShardStream(paths, lambda s: (transform(s), s["meta"]["speaker"]), shuffle=False,
                                     loop=False, faces=faces):
        items.append(item)
        speakers.append(speaker)
        if len(items) >= limit:
            break
    return {**collate(items), "speakers": speakers}


def held_out(data: str | Path, limit: int) -> dict[str, Any]:
    """Held-out faces for the decoder's evaluation."""
    return held_out_items(data, face_item, limit)


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


# ---------------------------------------------------------------------------------------------------
# the voice encoder (SPEC 5): s2f train
#
#     s2f train --data data/ --decoder runs/decoder --out runs/voice --config small --steps 5000
#     torchrun --nproc_per_node 4 --no-python s2f train --data data/ --decoder runs/decoder --out runs/voice \
#         --config paper --batch-size 32                  # DDP; multi-node: add --nnodes/--node-rank/--rdzv-*
#
# --batch-size is the GLOBAL batch: each of N processes takes batch/N. Batch norms use the global batch
# statistics (GlobalBatchNorm), so N processes compute what one process would on the same batch.

@dataclass(frozen=True)
class VoiceTraining:
    steps: int = 10_000
    batch_size: int = 8  # global, as the paper
    config: str = "small"  # small (CPU) or paper
    lr: float = 1e-3
    beta1: float = 0.5
    adam_eps: float = 1e-4
    decay_every: int = 10_000  # lr x decay every decay_every steps
    decay: float = 0.95
    l1: float = 0.025
    l2: float = 200.0
    temperature: float = 2.0
    distill: str = "auto"  # teacher (the face network's classifier), fitted (a linear head on the training
    #                        identities' features), none (l2 = 0); auto: teacher if it has one, else fitted
    clip: float = 1.0
    seconds: float = 6.0
    shuffle_buffer: int = 256  # 0: no shuffling, samples interleaved across processes: N processes then see
    #                            exactly the batches of one (tests, debugging; every process reads every shard)
    log_every: int = 20
    checkpoint_every: int = 200
    eval_every: int = 500
    eval_clips: int = 512
    seed: int = 0
    workers: int = 0
    device: str = "auto"


def voice_item(sample: dict[str, Any], seed: int, seconds: float) -> dict[str, np.ndarray]:
    """A shard sample -> wave (seconds x 16 kHz: a random crop, new each epoch, or the clip repeated)
    and its face feature. The crop depends only on (seed, key, epoch): every process agrees."""
    import zlib

    from . import audio

    wave = audio.load_audio(sample["audio"])
    length = round(seconds * audio.SAMPLE_RATE)
    if len(wave) > length:
        rng = np.random.default_rng([seed, zlib.crc32(sample["key"].encode()), sample.get("epoch", 0)])
        start = int(rng.integers(0, len(wave) - length + 1))
        wave = wave[start:start + length]
    return {"wave": audio.fit_length(wave, seconds), "feature": sample["feature"].astype(np.float32)}


def fitted_classifier(paths: list[Path], seed: int, steps: int = 300) -> torch.nn.Linear:
    """A linear classifier of the training speakers on their face features: the distillation target
    when the face network has none (dlib). Fitted with full-batch Adam; frozen afterwards."""
    features, speakers = [], []
    for item in ShardStream(paths, lambda s: (s["feature"], s["meta"]["speaker"]), shuffle=False, loop=False,
                            faces=False):
        features.append(item[0])
        speakers.append(item[1])
    names = sorted(set(speakers))
    x = torch.from_numpy(np.stack(features)).float()
    y = torch.tensor([names.index(s) for s in speakers])
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(names))
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(head(x), y).backward()
        optimizer.step()
    return head.requires_grad_(False)


def teacher_classifier(settings: VoiceTraining, encoder_name: str, paths: list[Path],
                       device: torch.device) -> tuple[torch.nn.Module | None, str]:
    """The distillation's f_VGG and what it is."""
    choice = settings.distill
    if choice == "auto":
        choice = "teacher" if encoder_name == "vggface" else "fitted"
    if choice == "none" or settings.l2 == 0:
        return None, "none"
    if choice == "teacher":
        if encoder_name != "vggface":
            raise DataError(f"the shards' face encoder ({encoder_name}) has no identity classifier; "
                            "use --distill fitted or none")
        from .faces import get_encoder

        module = get_encoder("vggface", device=device).module
        return module.fc8, "teacher: VGG-Face fc8"  # type: ignore[union-attr]
    if choice == "fitted":
        return fitted_classifier(paths, settings.seed).to(device), "fitted: linear head on training identities"
    raise DataError(f"--distill must be auto, teacher, fitted or none; got {settings.distill!r}")


def held_out_voices(data: str | Path, settings: VoiceTraining) -> dict[str, Any]:
    """Held-out clips: the first `seconds` of each (no randomness), features, speakers."""
    from . import audio

    length = round(settings.seconds * audio.SAMPLE_RATE)

    def first_seconds(sample: dict[str, Any]) -> dict[str, np.ndarray]:
        wave = audio.load_audio(sample["audio"])[:length]
        return {"wave": audio.fit_length(wave, settings.seconds), "feature": sample["feature"].astype(np.float32)}

    return held_out_items(data, first_seconds, settings.eval_clips, faces=False)


def predict_features(model: torch.nn.Module, waves: torch.Tensor, device: torch.device, batch: int = 16,
                     ) -> np.ndarray:
    """Waves (N, samples) -> the voice encoder's features (N, D), in eval mode, batched."""
    from .audio import spectrogram

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for chunk in waves.split(batch):
            out.append(model(spectrogram(chunk.to(device))).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def train_voice(data: str | Path, decoder_dir: str | Path, out: str | Path, settings: VoiceTraining | None = None,
                *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) the voice encoder; returns the last held-out evaluation. Runs alone or under
    torchrun (DDP); only rank 0 logs, evaluates and writes."""
    from . import distributed
    from .audio import spectrogram
    from .evaluate import voice_quality
    from .models import VoiceEncoder, VoiceEncoderConfig

    settings = settings or VoiceTraining()
    context = distributed.setup(settings.device)
    device, out = context.device, Path(out)
    try:
        if settings.batch_size % context.world_size:
            raise DataError(f"--batch-size {settings.batch_size} must divide among {context.world_size} processes")
        train_paths = shard_paths(data, "train")
        if not train_paths:
            raise DataError(f"{data}: no train shards; run s2f prepare first")
        decoder = FaceDecoder.from_pretrained(decoder_dir, map_location=device).eval().requires_grad_(False)
        held = held_out_voices(data, settings) if context.main else None
        first = next(iter(ShardStream(train_paths, lambda s: s, shuffle=False, loop=False, faces=False)))
        feature_dim, encoder_name = int(first["feature"].shape[0]), first["meta"]["encoder"]
        if feature_dim != decoder.config.feature_dim:
            raise DataError(f"the shards hold {feature_dim}-d features, the decoder reads {decoder.config.feature_dim}")
        classifier, distill_kind = teacher_classifier(settings, encoder_name, train_paths, device)
        state_path = out / STATE_FILE
        resuming = resume and state_path.is_file()
        if not resuming and (out / "model.safetensors").exists():
            raise DataError(f"{out} already holds a trained voice encoder; pass --resume or use another --out")
        torch.manual_seed(settings.seed)
        model = VoiceEncoder(VoiceEncoderConfig.named(settings.config, feature_dim)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(settings.beta1, 0.999),
                                     eps=settings.adam_eps)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, settings.decay_every, settings.decay)
        step, best = 0, -1.0
        if resuming:
            state = torch.load(state_path, map_location=device, weights_only=True)
            model.load_state_dict(state["model"], strict=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step, best = int(state["step"]), float(state["best"])
            torch.set_rng_state(state["rng"].cpu())
            if classifier is not None and "classifier" in state:
                classifier.load_state_dict(state["classifier"])
        elif context.main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "training.json", asdict(settings) | {"world_size": context.world_size,
                                                                   "distill": distill_kind,
                                                                   "decoder": str(Path(decoder_dir).resolve()),
                                                                   "data": str(Path(data).resolve())})
        if context.distributed:
            from torch.nn.parallel import DistributedDataParallel

            distributed.global_batchnorm(model)
            ddp: torch.nn.Module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                           else None)
        else:
            ddp = model
        stream = ShardStream(train_paths, lambda s: voice_item(s, settings.seed, settings.seconds),
                             shuffle=settings.shuffle_buffer > 0, buffer=max(1, settings.shuffle_buffer),
                             seed=settings.seed, rank=context.rank, world_size=context.world_size, start_epoch=step,
                             interleave=settings.shuffle_buffer == 0, faces=False)
        loader = DataLoader(stream, batch_size=settings.batch_size // context.world_size,
                            num_workers=settings.workers, collate_fn=collate)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        bar = tqdm(total=settings.steps, initial=step, desc="train", unit="step",
                   disable=not (progress and context.main))
        started, seen, quality = time.perf_counter(), 0, None
        ddp.train()
        for batch in loader:
            if step >= settings.steps:
                break
            features = batch["feature"].to(device)
            spec = spectrogram(batch["wave"].to(device))  # on the training device
            with autocast:
                predicted = ddp(spec)
            losses = voice_losses(predicted, features, decoder.first_layer, classifier, settings.l1, settings.l2,
                                  settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(features) * context.world_size
            bar.update(1)
            if step % settings.log_every == 0 or step == settings.steps:
                logged = {k: float(distributed.mean_across(v.detach())) for k, v in losses.items()}
                if context.main:
                    _append(out / "metrics.jsonl", {"step": step, "loss": logged.pop("total"), **logged,
                                                    "lr": scheduler.get_last_lr()[0],
                                                    "samples_per_s": round(seen / (time.perf_counter() - started), 2)})
                    bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}")
            evaluate_now = step % settings.eval_every == 0 or step == settings.steps
            if context.main and evaluate_now:
                quality = voice_quality(predict_features(model, held["wave"], device), held["feature"].numpy())
                _append(out / "metrics.jsonl", {"step": step, "eval": quality})
                if quality["R@1"] + 1e-3 * quality["cosine"] > best:
                    best = quality["R@1"] + 1e-3 * quality["cosine"]
                    model.save_pretrained(out / "best")
            if context.main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "step": step, "best": best,
                         "rng": torch.get_rng_state()}
                if classifier is not None:
                    state["classifier"] = classifier.state_dict()
                model.save_pretrained(out)
                atomic_write(state_path, lambda t, state=state: torch.save(state, t))
        bar.close()
        if step < settings.steps:
            raise DataError(f"the training stream ended at step {step}")
        if context.main:
            result = {"step": step, "held_out": quality, "distill": distill_kind,
                      "note": "held-out speakers (val split, else test); pool = the whole held-out set"}
            write_json(out / "eval.json", result)
            return result
        return {"step": step}
    finally:
        distributed.teardown()
