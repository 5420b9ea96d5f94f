"""Synthetic faces: real public-domain portraits, warped along craniofacial axes by their own landmarks.

A base portrait's 68 landmarks are moved to a new face shape (`target_landmarks`), and a thin-plate
spline through those points, anchored at the image border, carries every pixel along (`warp`). Skin
tone and light are then changed, and each video frame is a slightly moving, zoomed view of the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import faces
from ..errors import DataError
from ..faces.landmarks import JAW, LEFT_EYE, MOUTH, RIGHT_EYE
from .attributes import FaceShape, Look

BROW_RIGHT, BROW_LEFT = slice(17, 22), slice(22, 27)  # brows above the image's left / right eye
NOSTRILS = slice(31, 36)
GRID_STEP = 8  # the spline is evaluated every 8 px and interpolated in between


@dataclass(frozen=True)
class Base:
    """A base portrait: RGB uint8 and its 68 landmarks."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


def builtin_portraits() -> dict[str, np.ndarray]:
    """The public-domain portraits that installed packages carry: NASA's astronaut (scikit-image) and
    Grace Hopper (matplotlib)."""
    images: dict[str, np.ndarray] = {}
    try:
        import skimage.data

        images["astronaut"] = skimage.data.astronaut()
    except ImportError:
        pass
    try:
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            images["hopper"] = np.asarray(Image.open(handle).convert("RGB"))
    except ImportError:
        pass
    return images


def load_bases(paths: list[Path] | None = None) -> list[Base]:
    """The built-in portraits plus any image files given; each must show a face (the largest is used)."""
    images = builtin_portraits()
    for path in paths or []:
        from PIL import Image, UnidentifiedImageError

        try:
            images[Path(path).stem] = np.asarray(Image.open(path).convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{path}: not a readable image ({error})") from error
    if not images:
        raise DataError("no base portraits: install scikit-image and matplotlib (pip install 'speech2face[data]') "
                        "or pass portrait images")
    bases = []
    for name, image in images.items():
        boxes = faces.detect(image)
        if not boxes:
            raise DataError(f"portrait {name!r}: no face found")
        bases.append(Base(name, image, faces.landmarks(image, boxes[0])))
    return bases


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin (between the eyes), rotation rows (u: towards the image's right eye, v: down) and eye distance."""
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    u = (left - right) / np.linalg.norm(left - right)
    v = np.array([-u[1], u[0]])
    return (left + right) / 2, np.stack([u, v]), float(np.linalg.norm(left - right))


def target_landmarks(points: np.ndarray, shape: FaceShape) -> np.ndarray:
    """Where the 68 landmarks go for this face shape (image pixels)."""
    origin, axes, eye_distance = face_frame(points)
    local = (points - origin) @ axes.T  # (68, 2): across, down
    moved = local.copy()
    chin = local[8, 1]
    lowness = np.clip(local[JAW, 1] / chin, 0, 1)  # 0 at the eyes, 1 at the chin
    moved[JAW, 0] *= shape.face_width * (1 + (shape.jaw_width - 1) * lowness)
    for group, side in ((RIGHT_EYE, -1), (BROW_RIGHT, -1), (LEFT_EYE, 1), (BROW_LEFT, 1)):
        moved[group, 0] += side * (shape.eye_spacing - 1) * eye_distance / 2
    for group in (NOSTRILS, MOUTH):
        centre = local[group, 0].mean()
        width = shape.nose_width if group is NOSTRILS else shape.mouth_width
        moved[group, 0] = centre + (local[group, 0] - centre) * width
    nose_tip = local[33, 1]
    inner = np.r_[27:36, 48:68]  # nose and mouth: stretched or shortened below the eyes, the chin kept
    moved[inner, 1] = np.where(local[inner, 1] > 0, local[inner, 1] * shape.nose_length, local[inner, 1])
    moved[48:68, 1] = local[48:68, 1] + nose_tip * (shape.nose_length - 1)
    moved[:, 1] *= np.where(moved[:, 1] > 0, shape.face_height, 1.0)  # below the eyes only
    return moved @ axes + origin


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.where(squared > 0, squared * np.log(np.maximum(squared, 1e-12)), 0.0)


def warp(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Move the pixels at `source` points to `target` points smoothly (thin-plate spline, border fixed)."""
    import cv2

    height, width = image.shape[:2]
    scale = float(max(height, width))
    border = np.array([(x, y) for x in np.linspace(0, width - 1, 6) for y in (0, height - 1)]
                      + [(x, y) for y in np.linspace(0, height - 1, 6)[1:-1] for x in (0, width - 1)])
    control = np.vstack([target, border]) / scale  # the spline maps output positions back to input ones
    values = np.vstack([source, border]) / scale
    count = len(control)
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = _tps_kernel(control, control) + 1e-6 * np.eye(count)  # coincident lip points
    system[:count, count] = 1
    system[:count, count + 1:] = control
    system[count, :count] = 1
    system[count + 1:, :count] = control.T
    solution = np.linalg.solve(system, np.vstack([values, np.zeros((3, 2))]))
    gy, gx = np.mgrid[0:height + GRID_STEP:GRID_STEP, 0:width + GRID_STEP:GRID_STEP]
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1) / scale
    mapped = (_tps_kernel(grid, control) @ solution[:count] + solution[count] + grid @ solution[count + 1:]) * scale
    coarse = mapped.reshape((*gx.shape, 2)).astype(np.float32)
    full = cv2.resize(coarse, (gx.shape[1] * GRID_STEP, gx.shape[0] * GRID_STEP), interpolation=cv2.INTER_LINEAR)
    # resize aligns pixel centres: coarse sample i sits at full-res (i + 0.5) * step - 0.5, not i * step
    shift = (GRID_STEP - 1) / 2
    full = cv2.warpAffine(full, np.float32([[1, 0, shift], [0, 1, shift]]), (width, height),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(image, full[..., 0], full[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def face_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Soft (H, W) float32 mask of the face and forehead."""
    import cv2

    origin, axes, eye_distance = face_frame(points)
    local = (points[JAW] - origin) @ axes.T  # the jaw mirrored above the eyes, flattened: the forehead
    local[:, 1] = -np.abs(local[:, 1]) * 0.6
    outline = np.vstack([points[JAW], local @ axes + origin]).astype(np.int32)
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(outline), 1.0)
    sigma = max(1.0, 0.25 * eye_distance)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def render_identity(base: Base, shape: FaceShape, look: Look) -> tuple[np.ndarray, np.ndarray]:
    """The identity's portrait (RGB uint8, the base's size) and its 68 landmarks."""
    points = target_landmarks(base.landmarks, shape)
    image = warp(base.image, base.landmarks, points).astype(np.float32)
    mask = face_mask(points, image.shape[:2])[..., None]
    image *= 1 + mask * (np.asarray(look.skin_gain, np.float32) - 1)
    x = np.linspace(-0.5, 0.5, image.shape[1], dtype=np.float32)
    image *= (1 + look.light_slope * x)[None, :, None]
    return np.clip(image, 0, 255).astype(np.uint8), points


def frame_transforms(points: np.ndarray, image_shape: tuple[int, int], look: Look, frames: int, size: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(frames, 2, 3) affine maps portrait -> video frame: the face centred with a per-clip offset, drifting
    and turning slightly from frame to frame."""
    face_width = float(np.linalg.norm(points[16] - points[0]))
    zoom = max(look.zoom, 1.05 * face_width / min(image_shape))  # the view stays inside the portrait
    centre = points.mean(axis=0)
    offset = rng.uniform(-0.05, 0.05, 2) * size
    phase = rng.uniform(0, 2 * np.pi, 4)
    speed = rng.uniform(0.15, 0.4, 4)  # cycles per second at 25 fps
    t = np.arange(frames) / 25.0
    drift_x, drift_y, turn, breathe = (np.sin(2 * np.pi * speed[i] * t + phase[i]) for i in range(4))
    transforms = np.empty((frames, 2, 3))
    for i in range(frames):
        scale = zoom * size / face_width * (1 + 0.02 * breathe[i])
        angle = np.deg2rad(2.0 * turn[i])
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        destination = np.array([size / 2, size * 0.47]) + offset + 0.015 * size * np.array([drift_x[i], drift_y[i]])
        transforms[i, :, :2] = rotation
        transforms[i, :, 2] = destination - rotation @ centre
    return transforms


def render_frames(portrait: np.ndarray, transforms: np.ndarray, size: int) -> np.ndarray:
    """(frames, size, size, 3) uint8 video frames."""
    import cv2

    return np.stack([cv2.warpAffine(portrait, m, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT101) for m in transforms])
