"""Real faces to compare a prediction with: the nearest faces of a `s2f prepare` folder, by cosine of features.

The gallery's features must come from the face encoder the model predicts (its card's `face_encoder`).
One face per speaker (its first sample), so the nearest faces are different people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.dataset import samples_per_speaker, shard_paths
from .errors import DataError
from .evaluate.metrics import unit_rows


@dataclass
class Gallery:
    features: np.ndarray  # (N, D), unit length
    faces: np.ndarray  # (N, S, S, 3) uint8
    speakers: list[str]
    keys: list[str]

    @classmethod
    def load(cls, data: str | Path, splits: tuple[str, ...] = ("train", "val", "test"), limit: int = 100_000,
             face_size: int = 112) -> Gallery:
        import cv2

        paths = shard_paths(data, splits)
        if not paths:
            raise DataError(f"{data}: no shards for a gallery")
        samples = [sample for _, sample in samples_per_speaker(paths, limit=limit)]
        if not samples:
            raise DataError(f"{data}: no readable samples for a gallery")
        matrix = unit_rows(np.stack([sample["feature"] for sample in samples]).astype(np.float32))
        faces = np.stack([cv2.resize(sample["face"], (face_size, face_size), interpolation=cv2.INTER_AREA)
                          for sample in samples])
        return cls(matrix, faces, [sample["meta"]["speaker"] for sample in samples],
                   [sample["key"] for sample in samples])

    def nearest(self, feature: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
        """Indices and cosines of the k nearest gallery faces to one feature (D,)."""
        if feature.shape[-1] != self.features.shape[1]:
            raise DataError(f"gallery features have {self.features.shape[1]} dimensions, the model predicts "
                            f"{feature.shape[-1]}: use shards prepared with the model's face encoder")
        scores = self.features @ (feature / max(float(np.linalg.norm(feature)), 1e-12))
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order]

    def strip(self, indices: list[int]) -> np.ndarray:
        """The faces side by side, (S, k S, 3)."""
        return np.concatenate([self.faces[i] for i in indices], axis=1)
