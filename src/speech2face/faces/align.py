"""Alignment to one canonical frontal template: a similarity transform -> a square crop of any size.

The template is dlib's mean face (the one its face-recognition network was trained on), fitted by
least squares to the 51 inner landmarks (brows, eyes, nose, mouth) with 25 % padding. Cropping at
any size and resizing to 150 px gives exactly the chip dlib's ResNet expects, so the crop serves
every face encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FaceNotFound
from .detect import as_rgb
from .landmarks import NUM_LANDMARKS
from .weights import require_dlib

PADDING = 0.25  # dlib's face-chip padding: the crop shows a quarter face-width around the face


@dataclass(frozen=True)
class AlignedFace:
    """A canonical crop: `.image` (size, size, 3) RGB uint8, `.landmarks` (68, 2) in crop pixels, and
    `.to_crop` (2, 3), the affine map from image to crop pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    to_crop: np.ndarray


def crop_transform(points: np.ndarray, size: int, padding: float = PADDING) -> np.ndarray:
    """(2, 3) affine map from image pixels to the canonical `size` x `size` crop, from 68 landmarks."""
    dlib = require_dlib()
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2) or not np.isfinite(points).all():
        raise FaceNotFound(f"alignment needs (68, 2) finite landmarks, got shape {points.shape}")
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                       [dlib.point(round(x), round(y)) for x, y in points])
    details = dlib.get_face_chip_details(shape, size=size, padding=padding)
    rect = details.rect
    # The chip is the rectangle rotated by `angle` about its centre (checked against extract_image_chip).
    center = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([(rect.right() - rect.left()) / (details.cols - 1),
                                                            (rect.bottom() - rect.top()) / (details.rows - 1)])
    offset = center - linear @ np.array([(details.cols - 1) / 2, (details.rows - 1) / 2])
    inverse = np.linalg.inv(linear)  # crop -> image is (linear, offset); invert for image -> crop
    return np.hstack([inverse, (-inverse @ offset)[:, None]])


def align(image: np.ndarray, landmarks: np.ndarray, size: int = 224) -> AlignedFace:
    """Warp the face with these 68 landmarks onto the canonical template, as a `size` x `size` crop."""
    import cv2

    if size < 8:
        raise ValueError(f"crop size must be at least 8, got {size}")
    rgb = as_rgb(image)
    to_crop = crop_transform(landmarks, size)
    crop = cv2.warpAffine(rgb, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mapped = np.asarray(landmarks, np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
    return AlignedFace(image=crop, landmarks=mapped.astype(np.float32), to_crop=to_crop)
