"""68-point facial landmarks (iBUG 300-W layout) with dlib's shape predictor."""

from __future__ import annotations

import functools

import numpy as np

from .detect import FaceBox, as_rgb
from .weights import dlib_model_path, require_dlib

NUM_LANDMARKS = 68
# Index ranges of the iBUG 68-point layout.
JAW = slice(0, 17)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)  # the subject's right eye: the left one in the image
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)


@functools.cache
def _predictor() -> object:
    return require_dlib().shape_predictor(str(dlib_model_path("landmarks68")))


def landmarks(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """(68, 2) float32 (x, y) image coordinates of the face in `box`."""
    dlib = require_dlib()
    rect = dlib.rectangle(round(box.x0), round(box.y0), round(box.x1) - 1, round(box.y1) - 1)
    shape = _predictor()(as_rgb(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centers(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye in the image's left and right halves (the subject's right and left eyes)."""
    return points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
