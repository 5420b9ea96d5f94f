"""The voice encoder of Speech2Face (Oh et al. 2019, Table 1): spectrogram -> predicted face feature.

Choices the paper leaves open, made here (docs/voice_encoder.md explains them):
- Every conv is 4x4. Stride-1 convs pad 1 before and 2 after on both axes ("same": size kept);
  stride-2 convs pad 1 on each side, so a length n becomes floor(n / 2). For 6 s the paper config maps
  (598 x 257) -> 299 -> 149 -> 74 -> 37 (pools) -> 18 x 128 -> 9 x 64 (stride-2 convs).
- A block is conv -> ReLU -> BatchNorm (the paper's order). The last conv is linear: no ReLU and no
  BatchNorm, as the average pooling over time -> ReLU -> BatchNorm right after it stand in for them.
- Max-pooling is 2 x 1 (time only) in the paper config, so any length >= `min_frames` works; the
  average over the whole time axis removes time, and the flattened (channels x frequency) vector
  feeds FC 4096 + ReLU -> FC output_dim (no ReLU: the output is a regression target).
- Targets: the paper's VGG-Face fc7 is taken AFTER its ReLU, because fc8 (used by the distillation
  loss) reads fc7 after ReLU in VGG-Face itself; the prediction stays linear. Other teachers (dlib's
  128-d descriptor) give their embedding as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ModelError
from ..voice.audio import CLIP_FRAMES, N_FREQ, spectrogram
from .pretrained import DataclassConfig, PretrainedModel

KERNEL_SIZE = 4


@dataclass(frozen=True)
class VoiceEncoderConfig(DataclassConfig):
    """Widths and layout of the voice encoder; saved inside every checkpoint as config.json."""

    channels: tuple[int, ...] = (64, 64, 128, 128, 128, 256, 512, 512, 512)
    strides: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1, 2, 2)  # per conv, on both axes
    pool_after: tuple[int, ...] = (2, 3, 4, 5)  # indices of the convs followed by a max-pool
    pool_freq: int = 1  # the pools' size along frequency (along time it is always 2)
    hidden_dim: int = 4096
    output_dim: int = 4096
    n_freq: int = N_FREQ
    in_channels: int = 2  # real and imaginary parts

    def __post_init__(self) -> None:
        if not self.channels or len(self.strides) != len(self.channels):
            raise ValueError(f"need one stride per conv: {len(self.channels)} convs, {len(self.strides)} strides")
        if any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"strides must be 1 or 2, got {self.strides}")
        if any(not 0 <= i < len(self.channels) for i in self.pool_after):
            raise ValueError(f"pool_after indices {self.pool_after} out of range for {len(self.channels)} convs")
        if min(self.channels) < 1 or min(self.hidden_dim, self.output_dim, self.pool_freq) < 1:
            raise ValueError("widths and pool sizes must be positive")
        if self.output_freq < 1:
            raise ValueError(f"{self.n_freq} frequency bins vanish through this stack of pools and strides")

    @classmethod
    def paper(cls, output_dim: int = 4096) -> VoiceEncoderConfig:
        """The paper's encoder: 2.1e11 FLOPs per 6 s clip, 1.6e8 parameters (0.13e9 in fc1)."""
        return cls(output_dim=output_dim)

    @classmethod
    def small(cls, output_dim: int = 128) -> VoiceEncoderConfig:
        """Same code for CPU work: narrower, and pools frequency too (1.1e9 FLOPs per 6 s clip)."""
        return cls(channels=(16, 16, 32, 64, 128, 128, 256), strides=(1, 1, 1, 1, 1, 2, 2),
                   pool_after=(0, 1, 2, 3), pool_freq=2, hidden_dim=512, output_dim=output_dim)

    @classmethod
    def named(cls, name: str, output_dim: int | None = None) -> VoiceEncoderConfig:
        presets = {"paper": cls.paper, "small": cls.small}
        if name not in presets:
            raise ValueError(f"unknown voice encoder config {name!r}; choose from {', '.join(presets)}")
        return presets[name]() if output_dim is None else presets[name](output_dim)

    def _shrink(self, length: int, axis_pool: int) -> int:
        for index, stride in enumerate(self.strides):
            length = length // 2 if stride == 2 else length
            if index in self.pool_after:
                length //= axis_pool
        return length

    def output_frames(self, frames: int) -> int:
        """Time steps left before the average pooling, for an input of `frames` frames."""
        return self._shrink(frames, 2)

    @property
    def output_freq(self) -> int:
        return self._shrink(self.n_freq, self.pool_freq)

    @property
    def min_frames(self) -> int:
        """The shortest input (in spectrogram frames) the encoder accepts."""
        frames = 1
        while self.output_frames(frames) < 1:
            frames += 1
        return frames


def conv_block(in_channels: int, out_channels: int, stride: int, activate: bool) -> nn.Sequential:
    """4x4 conv (padded as the module docstring says) [-> ReLU -> BatchNorm]."""
    if stride == 1:  # (left, right, top, bottom) = (freq before, freq after, time before, time after)
        layers: list[nn.Module] = [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(in_channels, out_channels, KERNEL_SIZE)]
    else:
        layers = [nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, stride=stride, padding=1)]
    if activate:
        layers += [nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers)


class VoiceEncoder(PretrainedModel):
    """Spectrogram (B, 2, T, n_freq) -> predicted face feature (B, output_dim), for any T >= min_frames."""

    config_class = VoiceEncoderConfig
    model_type = "voice_encoder"

    def __init__(self, config: VoiceEncoderConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.in_channels
        last = len(config.channels) - 1
        for index, (out_channels, stride) in enumerate(zip(config.channels, config.strides, strict=True)):
            layers.append(conv_block(in_channels, out_channels, stride, activate=index != last))
            if index in config.pool_after:
                layers.append(nn.MaxPool2d((2, config.pool_freq)))
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)
        self.pooled_norm = nn.BatchNorm1d(in_channels)
        self.fc1 = nn.Linear(in_channels * config.output_freq, config.hidden_dim)
        self.fc2 = nn.Linear(config.hidden_dim, config.output_dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: (B, 2, T, n_freq) from `speech2face.spectrogram` -> (B, output_dim)."""
        config = self.config
        if spec.dim() != 4 or spec.shape[1] != config.in_channels or spec.shape[3] != config.n_freq:
            raise ValueError(f"voice encoder takes (B, {config.in_channels}, T, {config.n_freq}), "
                             f"got {tuple(spec.shape)}")
        if spec.shape[2] < config.min_frames:
            raise ValueError(f"input of {spec.shape[2]} frames is shorter than the encoder's minimum "
                             f"of {config.min_frames} ({config.min_frames / 100:.2f} s)")
        # NHWC convs: 15-35 % faster on CPU (oneDNN) and what tensor cores want (benchmarks/voice_encoder.py).
        x = self.convs(spec.contiguous(memory_format=torch.channels_last))  # (B, C, T', F')
        x = x.mean(dim=2)  # average over all of time: (B, C, F')
        x = self.pooled_norm(F.relu(x))
        x = F.relu(self.fc1(x.flatten(1)))  # (B, hidden)
        return self.fc2(x)

    def parameter_groups(self, lr: float) -> list[dict[str, object]]:
        """Adam's parameter groups: one, at `lr`."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def flops(self, frames: int = CLIP_FRAMES, backward: bool = False) -> int:
        """Matmul and conv FLOPs (2 per multiply-add) for one clip of `frames` frames (598 = 6 s)."""
        return count_flops(self.config, frames, backward)


def count_flops(config: VoiceEncoderConfig, frames: int = CLIP_FRAMES, backward: bool = False) -> int:
    """FLOPs of one clip through a model of `config`, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = VoiceEncoder(config).train(backward)
        spec = torch.zeros(2, config.in_channels, frames, config.n_freq)  # 2: BatchNorm needs a batch
        with FlopCounterMode(display=False) as counter:
            out = model(spec)
            if backward:
                out.sum().backward()
    return counter.get_total_flops() // 2


def takes_waves(model: nn.Module) -> bool:
    """Whether a voice model has its own front end (`input_kind = "wave"`) rather than reading the spectrogram."""
    inner = getattr(model, "module", model)  # under DDP
    return getattr(inner, "input_kind", "spectrogram") == "wave"


def model_inputs(model: nn.Module, waves: torch.Tensor) -> torch.Tensor:
    """What a voice model's forward takes from 16 kHz waves (B, samples): the spectrogram (B, 2, T, 257) for
    the paper's CNN, the waves themselves for a model with its own front end."""
    return waves if takes_waves(model) else spectrogram(waves)


@torch.no_grad()
def encode_waves(model: nn.Module, waves: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Waves (N, samples) at 16 kHz -> the voice encoder's features (N, D), float32 on the CPU: in eval mode
    (restored after), batched, the front end computed on the model's device. Every caller that runs a
    voice encoder on recordings (held-out evaluation, `s2f evaluate`, `Speech2Face`) goes through here."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        features = torch.cat([model(model_inputs(model, chunk.to(device))).float().cpu()
                              for chunk in waves.split(batch)])
    finally:
        model.train(was_training)
    if not bool(torch.isfinite(features).all()):  # a broken model would otherwise score and draw garbage
        raise ModelError("the voice encoder gives non-finite features (NaN or infinity): its weights are broken")
    return features
