"""The voice encoder's objective (the paper's loss): voice -> the face feature, through a frozen decoder.

    s2f train --data data/ --decoder runs/decoder --out runs/voice --size small --steps 5000

Batch norms use the global batch statistics under DDP (GlobalBatchNorm), so N processes compute what one
process would on the same batch. The run keeps the best held-out R@1 in `best/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .. import distributed
from ..data.dataset import ShardStream, shard_paths
from ..data.splits import VALIDATION, held_out, voice_clip
from ..errors import DataError
from ..evaluate.metrics import voice_quality
from ..faces import get_encoder
from ..losses import PAPER_DISTILL_WEIGHT, PAPER_NORM_WEIGHT, PAPER_TEMPERATURE, voice_losses
from ..models import new_voice_encoder
from ..models.face_decoder import FaceDecoder
from ..models.speaker_voice import SpeakerVoiceEncoder
from ..models.voice_encoder import encode_waves, model_inputs
from .loop import TrainingSettings, run
from .ridge import fit_ridge

log = logging.getLogger(__name__)
DISTILL_CHOICES = ("auto", "teacher", "fitted", "none")
HEAD_FIT_BATCH = 64  # clips embedded at once for the closed-form head


@dataclass(frozen=True)
class VoiceTraining(TrainingSettings):
    steps: int = 10_000
    batch_size: int = 8  # global, as the paper
    beta1: float = 0.5
    adam_eps: float = 1e-4
    decay_every: int = 10_000  # lr x decay every decay_every steps
    decay: float = 0.95
    norm_weight: float = PAPER_NORM_WEIGHT  # the paper's lambda_1 (--l1)
    distill_weight: float = PAPER_DISTILL_WEIGHT  # the paper's lambda_2 (--l2)
    temperature: float = PAPER_TEMPERATURE
    distill: str = "auto"  # teacher (the face network's classifier), fitted (a linear head on the training
    #                        identities' features), none (no distillation); auto: teacher if it has one, else fitted
    seconds: float = 6.0
    eval_clips: int = 512
    voice_backbone: str = "paper"  # paper (the CNN on spectrograms) or speaker (pretrained speaker encoder + head)
    finetune_backbone: bool = False  # with voice_backbone speaker: train the speaker encoder too (else frozen)
    fit_head: bool = False  # with voice_backbone speaker: set the head by ridge regression before any step (ridge.py)


def fitted_classifier(paths: list[Path], seed: int, steps: int = 300) -> torch.nn.Linear:
    """A linear classifier of the training speakers on their face features: the distillation target
    when the face network has none (dlib). Fitted with full-batch Adam; frozen afterwards."""
    features, speakers = [], []
    for feature, speaker in ShardStream(paths, lambda s: (s["feature"], s["meta"]["speaker"]), shuffle=False,
                                        loop=False, faces=False):
        features.append(feature)
        speakers.append(speaker)
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
    if choice not in DISTILL_CHOICES:
        raise DataError(f"--distill must be {', '.join(DISTILL_CHOICES)}; got {settings.distill!r}")
    if choice == "auto":
        choice = "teacher" if encoder_name == "vggface" else "fitted"
    if choice == "none" or settings.distill_weight == 0:
        return None, "none"
    if choice == "teacher":
        if encoder_name != "vggface":
            raise DataError(f"the shards' face encoder ({encoder_name}) has no identity classifier; "
                            "use --distill fitted or none")
        module = get_encoder("vggface", device=device).module
        return module.fc8, "teacher: VGG-Face fc8"  # type: ignore[union-attr]
    return fitted_classifier(paths, settings.seed).to(device), "fitted: linear head on training identities"


class VoiceTask:
    """The paper's loss through the frozen decoder's first layer (+ distillation); held-out feature cosine
    and R@K over the whole held-out set; the best R@1 kept."""

    name, what = "train", "voice encoder"

    def __init__(self, data: str | Path, decoder_dir: str | Path, settings: VoiceTraining,
                 context: distributed.Context) -> None:
        self.settings, self.device = settings, context.device
        self.data, self.decoder_dir = data, decoder_dir
        self.train_paths = shard_paths(data, "train")
        if not self.train_paths:
            raise DataError(f"{data}: no train shards; run s2f prepare first")
        self.decoder = FaceDecoder.from_pretrained(decoder_dir, map_location=self.device).eval().requires_grad_(False)
        self.held = held_out(data, lambda s: voice_clip(s, settings.seconds), VALIDATION,
                             limit=settings.eval_clips, faces=False) if context.main else None
        first = next(iter(ShardStream(self.train_paths, lambda s: s, shuffle=False, loop=False, faces=False)))
        feature_dim, encoder_name = int(first["feature"].shape[0]), first["meta"]["encoder"]
        if feature_dim != self.decoder.config.feature_dim:
            raise DataError(f"the shards hold {feature_dim}-d features, the decoder reads "
                            f"{self.decoder.config.feature_dim}")
        self.classifier, self.distill_kind = teacher_classifier(settings, encoder_name, self.train_paths, self.device)
        torch.manual_seed(settings.seed)
        try:
            self.model = new_voice_encoder(settings.voice_backbone, settings.size, feature_dim,
                                           settings.finetune_backbone).to(self.device)
        except ValueError as error:  # an unknown backbone, or fine-tuning one that has nothing pretrained
            raise DataError(str(error)) from error
        self.head_fit = fit_linear_head(self.model, self.train_paths, settings, self.device) if settings.fit_head \
            else None

    def stream(self, rank: int, world_size: int, start_epoch: int) -> IterableDataset:
        s = self.settings
        return ShardStream(self.train_paths, lambda sample: voice_clip(sample, s.seconds, s.seed),
                           shuffle=s.shuffle_buffer > 0, buffer=max(1, s.shuffle_buffer), seed=s.seed, rank=rank,
                           world_size=world_size, start_epoch=start_epoch, interleave=s.shuffle_buffer == 0,
                           faces=False)

    def optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        s = self.settings
        optimizer = torch.optim.Adam(self.model.parameter_groups(s.lr), lr=s.lr, betas=(s.beta1, 0.999),
                                     eps=s.adam_eps)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, s.decay_every, s.decay)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.settings
        predicted = model(model_inputs(model, batch["wave"].to(self.device)))  # the front end on the device
        return voice_losses(predicted, batch["feature"].to(self.device), self.decoder.first_layer, self.classifier,
                            norm_weight=s.norm_weight, distill_weight=s.distill_weight, temperature=s.temperature)

    def evaluate(self, step: int) -> dict[str, Any]:
        assert self.held is not None  # rank 0 only
        predicted = encode_waves(self.model, self.held["wave"]).numpy()
        return voice_quality(predicted, self.held["feature"].numpy())

    def score(self, quality: dict[str, Any]) -> float:
        return quality["R@1"] + 1e-3 * quality["cosine"]

    def extra_state(self) -> dict[str, Any]:
        return {"classifier": self.classifier.state_dict()} if self.classifier is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.classifier is not None and "classifier" in state:
            self.classifier.load_state_dict(state["classifier"])

    def header(self) -> dict[str, Any]:
        return {"distill": self.distill_kind, "voice_backbone": self.settings.voice_backbone,
                "finetune_backbone": self.settings.finetune_backbone, "head_fit": self.head_fit,
                "decoder": str(Path(self.decoder_dir).resolve()),
                "data": str(Path(self.data).resolve())}


def fit_linear_head(model: nn.Module, paths: list[Path], settings: VoiceTraining,
                    device: torch.device) -> dict[str, Any]:
    """Set a speaker voice encoder's head to the ridge map (`ridge.fit_ridge`) from the d-vectors of every training
    clip's first `settings.seconds` to its face feature; returns what was chosen (for training.json)."""
    if not isinstance(model, SpeakerVoiceEncoder):
        raise DataError("--fit-head needs --voice-backbone speaker (the head on the speaker encoder's d-vector)")
    vectors, features, speakers = [], [], []
    stream = ShardStream(paths, lambda s: voice_clip(s, settings.seconds) | {"speaker": s["meta"]["speaker"]},
                         shuffle=False, loop=False, faces=False)
    with torch.no_grad():
        for batch in DataLoader(stream, batch_size=HEAD_FIT_BATCH, collate_fn=list):
            waves = torch.from_numpy(np.stack([item["wave"] for item in batch])).to(device)
            vectors.append(model.backbone.embed_waves(waves).float().cpu().numpy())
            features.extend(item["feature"] for item in batch)
            speakers.extend(str(item["speaker"]) for item in batch)
    if not speakers:
        raise DataError("--fit-head: the train shards hold no readable clip")
    try:
        fitted = fit_ridge(np.concatenate(vectors), np.stack(features), speakers, seed=settings.seed)
    except ValueError as error:
        raise DataError(f"--fit-head: {error}") from error
    model.set_linear_head(*(torch.from_numpy(np.asarray(a, np.float32)).to(device) for a in (
        fitted.input_mean, fitted.input_spread, fitted.weights * fitted.spread_scale, fitted.output_mean)))
    log.info("head fitted in closed form on %d clips of %d speakers: %s", len(speakers), len(set(speakers)),
             fitted.summary())
    if fitted.cv_rank_over_chance >= 1.0:
        log.warning("the fitted head ranks held-back speakers' faces no better than chance (cross-validated mean "
                    "rank / chance %.2f): these voices tell nothing of these faces", fitted.cv_rank_over_chance)
    return {"clips": len(speakers), "speakers": len(set(speakers)), **fitted.summary()}


def train_voice(data: str | Path, decoder_dir: str | Path, out: str | Path, settings: VoiceTraining | None = None,
                *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) the voice encoder; returns the last held-out evaluation. Runs alone or under
    torchrun (DDP); only rank 0 logs, evaluates and writes."""
    settings = settings or VoiceTraining()
    return run(lambda context: VoiceTask(data, decoder_dir, settings, context), settings, out, resume=resume,
               progress=progress)
