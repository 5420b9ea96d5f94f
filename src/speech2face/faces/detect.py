"""Face detection with dlib: HOG (fast, default) or MMOD CNN (accurate)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .weights import dlib_model_path, require_dlib

DetectorName = Literal["hog", "mmod"]
MAX_SIDE = 1280  # larger images are downscaled for detection; boxes are mapped back
SMALL_SIDE = 800  # below this, images are upsampled once so that faces of ~40 px are found
MIN_SIDE = 20  # nothing smaller can hold a face the detectors find


@dataclass(frozen=True)
class FaceBox:
    """A detected face in image pixels: (x0, y0) top-left, (x1, y1) bottom-right, and a score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def scaled(self, factor: float) -> FaceBox:
        return FaceBox(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4) uint8 -> contiguous RGB uint8 (H, W, 3)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3]
    else:
        raise ValueError(f"images must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    return np.ascontiguousarray(image)


@functools.cache
def _detector(name: DetectorName) -> object:
    dlib = require_dlib()
    if name == "hog":
        return dlib.get_frontal_face_detector()
    if name == "mmod":
        return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))
    raise ValueError(f"unknown face detector {name!r}; choose 'hog' or 'mmod'")


def detect(image: np.ndarray, detector: DetectorName = "hog", upsample: int | None = None,
           max_side: int = MAX_SIDE) -> list[FaceBox]:
    """Faces in an image, largest first; an empty list when there is none.

    image: grey, RGB or RGBA uint8. detector: 'hog' (~0.1 s per image on CPU) or 'mmod' (CNN, more
    accurate, ~20x slower on CPU). upsample: times to double the image before detecting; by default
    once for images under 800 px (finds faces down to ~40 px), else never. Images over `max_side`
    are downscaled first and the boxes mapped back.
    """
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return []
    scale = 1.0
    if max(height, width) > max_side:
        import cv2

        scale = max_side / max(height, width)
        rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    if upsample is None:
        upsample = 1 if max(rgb.shape[:2]) < SMALL_SIDE else 0
    model = _detector(detector)
    if detector == "hog":
        rects, scores, _ = model.run(rgb, upsample, 0.0)
        found = [(rect, score) for rect, score in zip(rects, scores, strict=True)]
    else:
        found = [(d.rect, d.confidence) for d in model(rgb, upsample)]
    boxes = [FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s)).scaled(1 / scale)
             for r, s in found]
    return sorted(boxes, key=lambda box: box.area, reverse=True)


def pick(boxes: list[FaceBox], near: tuple[float, float], image_size: tuple[int, int]) -> FaceBox | None:
    """The box whose centre is nearest a normalised point (AVSpeech's x, y in [0, 1]); None if no boxes.

    image_size: (width, height) of the image the boxes are in.
    """
    if not boxes:
        return None
    target = (near[0] * image_size[0], near[1] * image_size[1])
    return min(boxes, key=lambda box: (box.center[0] - target[0]) ** 2 + (box.center[1] - target[1]) ** 2)
