"""A voice encoder built on a pretrained speaker encoder: wave -> d-vector -> MLP head -> face feature.

    s2f train --voice-backbone speaker [--finetune-backbone] --data D --decoder RUN --out OUT

The backbone is `speech2face.voice.speakers.SpeakerEncoder` (Resemblyzer's GE2E LSTM, trained on thousands of
real speakers): a 6 s window is cut into 1.6 s partials whose d-vectors are averaged (as `speakers.embed`
does), then a two-layer MLP maps the 256-d unit vector to the face feature. Frozen by default (only the
head learns: what a few thousand speakers can support); `finetune` trains the LSTM too, at
BACKBONE_LR_SCALE of the head's learning rate. The backbone's weights are saved inside the model folder,
so a trained model loads without the resemblyzer package; only training starts from its weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..voice.speakers import EMBEDDING, SpeakerEncoder
from .pretrained import DataclassConfig, PretrainedModel

BACKBONE = "resemblyzer-ge2e"
BACKBONE_LR_SCALE = 0.1  # a pretrained LSTM moved at the head's rate forgets what it knew


@dataclass(frozen=True)
class SpeakerVoiceConfig(DataclassConfig):
    """The head's widths and whether the backbone learns; saved inside every checkpoint as config.json."""

    output_dim: int = 128
    hidden_dim: int = 512
    backbone: str = BACKBONE
    finetune: bool = False

    def __post_init__(self) -> None:
        if self.backbone != BACKBONE:
            raise ValueError(f"unknown speaker backbone {self.backbone!r}; this version has {BACKBONE!r}")
        if min(self.output_dim, self.hidden_dim) < 1:
            raise ValueError("widths must be positive")


class SpeakerVoiceEncoder(PretrainedModel):
    """Waves (B, samples) at 16 kHz, all of one length -> predicted face feature (B, output_dim)."""

    config_class = SpeakerVoiceConfig
    model_type = "speaker_voice_encoder"
    input_kind = "wave"  # takes waves, not the paper's spectrogram (voice_encoder.model_inputs)

    def __init__(self, config: SpeakerVoiceConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = SpeakerEncoder().requires_grad_(config.finetune)
        self.head = nn.Sequential(nn.Linear(EMBEDDING, config.hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(config.hidden_dim, config.output_dim))

    @classmethod
    def from_speaker_encoder(cls, config: SpeakerVoiceConfig) -> SpeakerVoiceEncoder:
        """A new model whose backbone holds the pretrained speaker encoder's weights (the head is random)."""
        model = cls(config)
        model.backbone.load_state_dict(SpeakerEncoder.pretrained("cpu").state_dict(), strict=True)
        return model

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """waves: (B, samples) float, 16 kHz -> (B, output_dim)."""
        if waves.dim() != 2:
            raise ValueError(f"the speaker voice encoder takes waves (B, samples), got {tuple(waves.shape)}")
        learn = self.config.finetune and torch.is_grad_enabled()
        # the LSTM and its mel front end in float32 (autocast off): the d-vector is the model's only input
        with torch.autocast(waves.device.type, enabled=False), torch.set_grad_enabled(learn):
            vectors = self.backbone.embed_waves(waves.float())
        return self.head(vectors * math.sqrt(EMBEDDING))  # unit vectors -> entries of about unit size

    @torch.no_grad()
    def set_linear_head(self, mean: torch.Tensor, spread: torch.Tensor, weights: torch.Tensor,
                        bias: torch.Tensor) -> None:
        """Set the head to an affine map of the d-vector v (unit, as `embed_waves` gives it), exactly:
        head = ((v - mean) / spread) @ weights + bias, with mean, spread (256,), weights (256, output_dim) and
        bias (output_dim,). The first layer passes z = (v - mean) / spread as [z; -z] and the second reads
        relu(z) - relu(-z) = z, so a head of hidden_dim >= 512 holds any affine map."""
        first, second = self.head[0], self.head[2]
        if self.config.hidden_dim < 2 * EMBEDDING or tuple(weights.shape) != (EMBEDDING, self.config.output_dim):
            raise ValueError(f"a linear head needs hidden_dim >= {2 * EMBEDDING} and weights of shape "
                             f"({EMBEDDING}, {self.config.output_dim}); got {self.config.hidden_dim} and "
                             f"{tuple(weights.shape)}")
        scale = 1 / (spread * math.sqrt(EMBEDDING))  # the head reads the d-vector x sqrt(256) (forward)
        first.weight.zero_()
        first.bias.zero_()
        second.weight.zero_()
        first.weight[:EMBEDDING] = torch.diag(scale)
        first.weight[EMBEDDING:2 * EMBEDDING] = -torch.diag(scale)
        first.bias[:EMBEDDING] = -mean / spread
        first.bias[EMBEDDING:2 * EMBEDDING] = mean / spread
        second.weight[:, :EMBEDDING] = weights.T
        second.weight[:, EMBEDDING:2 * EMBEDDING] = -weights.T
        second.bias.copy_(bias)

    def parameter_groups(self, lr: float) -> list[dict[str, object]]:
        """Adam's groups: the head at `lr`, a fine-tuned backbone at BACKBONE_LR_SCALE x lr."""
        groups: list[dict[str, object]] = [{"params": list(self.head.parameters()), "lr": lr}]
        if self.config.finetune:
            groups.append({"params": list(self.backbone.parameters()), "lr": lr * BACKBONE_LR_SCALE})
        return groups
