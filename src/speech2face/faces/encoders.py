"""Face encoders (teachers) behind one interface: `.name`, `.dim`, `.embed(aligned (N, H, W, 3) uint8)`.

Every encoder reads canonical crops made by `faces.align` (any size; each resizes to its own input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..errors import ModelError
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

    def __init__(self) -> None:
        self._model = require_dlib().face_recognition_model_v1(str(dlib_model_path("resnet")))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        import cv2

        chips = [np.ascontiguousarray(face) if face.shape[:2] == (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE)
                 else cv2.resize(face, (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), interpolation=cv2.INTER_AREA)
                 for face in check_batch(faces)]
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        return np.array([np.array(d) for d in self._model.compute_face_descriptor(chips)], np.float32)


_ENCODERS: dict[str, Callable[[], FaceEncoder]] = {"dlib": DlibEncoder}


def available_encoders() -> list[str]:
    """Names `get_encoder` accepts."""
    return sorted(_ENCODERS)


def get_encoder(name: str) -> FaceEncoder:
    """A new encoder by name (load it once and keep it: loading reads the weights)."""
    if name not in _ENCODERS:
        raise ModelError(f"unknown face encoder {name!r}; available: {', '.join(available_encoders())}")
    return _ENCODERS[name]()
