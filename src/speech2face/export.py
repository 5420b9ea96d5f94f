"""`s2f export`: a model as one ONNX graph (6 s wave -> face), or as a .tar.gz for a model registry.

The ONNX graph takes `wave` (B, 96000) float32 at 16 kHz (a 6 s window: `speech2face.fit_length`, or
`Speech2Face.clips` for the speech check and longer recordings) and returns `image` (B, 3, H, W) in [0, 1],
`landmarks` (B, 68, 2) normalised to [0, 1], `feature` (B, D). Inside: the spectrogram as a strided
convolution with the windowed DFT basis (the same numbers as `speech2face.spectrogram`, which uses an FFT),
the voice encoder (BatchNorm folded by eval mode), the decoder, and the spline solve by Gauss-Jordan
elimination (ONNX has no linear solver). Opset 18.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ModelError
from .files import atomic_write
from .models.voice_encoder import takes_waves
from .pipeline import Speech2Face
from .voice import audio

OPSET = 18


class SpectrogramConv(nn.Module):
    """`speech2face.spectrogram` as a convolution: (B, N) -> (B, 2, T, 257)."""

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(audio.WIN_LENGTH, dtype=torch.float64)
        k = torch.arange(audio.N_FREQ, dtype=torch.float64)
        window = torch.hann_window(audio.WIN_LENGTH, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * n[None] / audio.N_FFT  # zero padding to 512 adds nothing
        basis = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])  # (514, 400)
        self.register_buffer("basis", basis.float()[:, None, :])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        parts = torch.nn.functional.conv1d(wave[:, None, :], self.basis, stride=audio.HOP_LENGTH)  # (B, 514, T)
        parts = parts.view(wave.shape[0], 2, audio.N_FREQ, -1).transpose(2, 3)
        return torch.sign(parts) * parts.abs().pow(audio.COMPRESSION_POWER)


class WaveToFace(nn.Module):
    """wave (B, 96000) -> (image, landmarks, feature)."""

    def __init__(self, voice: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.front, self.voice, self.decoder = SpectrogramConv(), voice, decoder

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feature = self.voice(wave if takes_waves(self.voice) else self.front(wave))  # its own front end, or ours
        decoded = self.decoder(feature)
        return decoded.image, decoded.landmarks, feature


def export_onnx(model_name: str | os.PathLike, out: str | os.PathLike, batch: int = 1) -> Path:
    """Write `out` (.onnx) for a model folder, run or registered name. The batch axis is dynamic."""
    model = Speech2Face.from_pretrained(model_name, device="cpu")
    graph = WaveToFace(model.voice, model.decoder).eval()
    out = Path(out)
    example = torch.zeros(batch, audio.CLIP_SAMPLES)

    def write(temp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-level shape checks (fixed at 6 s)
            torch.onnx.export(graph, (example,), str(temp), input_names=["wave"],
                              output_names=["image", "landmarks", "feature"], opset_version=OPSET,
                              dynamic_axes={axis: {0: "batch"} for axis in ("wave", "image", "landmarks", "feature")},
                              dynamo=False)

    try:
        atomic_write(out, write)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as error:  # type: ignore[attr-defined]
        raise ModelError(f"ONNX export failed: {str(error).splitlines()[0][:300]}") from error  # not its IR dump
    return out
