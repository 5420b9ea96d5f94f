"""Synthetic faces: morphs of real public-domain portraits, warped along craniofacial axes by their landmarks.

Every portrait is first aligned to one canvas (`canonical_canvas`: the face template of `faces.align`,
eyes level, the same size and place). An identity's face is a morph of portraits of its sex (`morph`:
each is warped to the weighted mean of their landmarks, then cross-dissolved), whose 68 landmarks are
moved to a new face shape (`target_landmarks`); a thin-plate spline through those points, anchored at the
image border, carries every pixel along (`warp`). Skin tone and light are then changed, and each video
frame is a slightly moving, zoomed view of the result.

The real judge (`faces.Judge`) calls Grace Hopper's portrait male (p 0.97). Plain morphs of the astronaut
with up to 30 % Hopper it calls female (p <= 0.02; 40 %: 0.37), but with the warps and look noise at face
noise 1, 3 % of 30 %-capped women were called male on the canvas and 8 % in the videos; at 15 % none of 96
(max p 0.34). So Hopper's weight is capped at 0.15 and the world's sex is the sex the judge sees
(measured on video frames in tests/test_synth.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import faces
from ..errors import DataError
from ..faces.align import crop_transform
from ..faces.landmarks import JAW, LEFT_EYE, MOUTH, RIGHT_EYE
from .attributes import SEXES, FaceShape, Look, PortraitInfo

BROW_RIGHT, BROW_LEFT = slice(17, 22), slice(22, 27)  # brows above the image's left / right eye
NOSTRILS = slice(31, 36)
GRID_STEP = 8  # the spline is evaluated every 8 px and interpolated in between
CANVAS = 400  # px, square
CANVAS_PADDING = 0.9  # of the face template's width on each side: the face is ~35 % of the canvas
PHOTOS_DIR = Path(__file__).with_name("photos")
HOPPER_MAX_WEIGHT = 0.15  # see the module docstring


@dataclass(frozen=True)
class Source:
    """Where a built-in portrait comes from, and what the world's mapping knows of it."""

    info: PortraitInfo
    origin: str
    licence: str


BUILTIN = (
    Source(PortraitInfo("astronaut", "female", 42), "Eileen Collins, NASA portrait (scikit-image data.astronaut)",
           "public domain (NASA)"),
    Source(PortraitInfo("hopper", "female", 78, max_weight=HOPPER_MAX_WEIGHT),
           "Grace Hopper, US Navy portrait (matplotlib sample data grace_hopper.jpg)", "public domain (US Navy)"),
    Source(PortraitInfo("obama", "male", 51), "Barack Obama, official portrait (face_recognition 1.3.0 sdist)",
           "public domain (US government work)"),
    Source(PortraitInfo("obama2", "male", 48), "Barack Obama (face_recognition 1.3.0 sdist)",
           "public domain (US government work)"),
    Source(PortraitInfo("obama3", "male", 50), "Barack Obama (face_recognition 1.3.0 sdist)",
           "public domain (US government work)"),
    Source(PortraitInfo("biden", "male", 70), "Joe Biden, official vice-presidential portrait (face_recognition "
                                              "1.3.0 sdist)", "public domain (US government work)"),
)


@dataclass(frozen=True)
class PortraitSpec:
    """An extra portrait the user gives: an image file of one face, its sex and age."""

    path: Path
    sex: str
    age: float

    @classmethod
    def parse(cls, text: str) -> PortraitSpec:
        """`PATH:SEX:AGE`, e.g. `me.jpg:female:34`."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or parts[1] not in SEXES:
            raise DataError(f"--portrait {text!r}: give IMAGE:SEX:AGE, SEX one of {', '.join(SEXES)}")
        try:
            age = float(parts[2])
        except ValueError:
            raise DataError(f"--portrait {text!r}: the age {parts[2]!r} is not a number") from None
        return cls(Path(parts[0]), parts[1], age)


@dataclass(frozen=True)
class Base:
    """A base portrait on the canvas: RGB uint8 (CANVAS, CANVAS, 3), its 68 landmarks, and what it is."""

    info: PortraitInfo
    image: np.ndarray
    landmarks: np.ndarray

    @property
    def name(self) -> str:
        return self.info.name


def canonical_canvas(image: np.ndarray) -> np.ndarray:
    """The largest face of `image` on the world's canvas (CANVAS px, the face template at CANVAS_PADDING)."""
    import cv2

    boxes = faces.detect(image)
    if not boxes:
        raise DataError("no face found in the portrait")
    to_canvas = crop_transform(faces.landmarks(image, boxes[0]), CANVAS, padding=CANVAS_PADDING)
    return cv2.warpAffine(image, to_canvas, (CANVAS, CANVAS), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT101)


def _builtin_image(name: str) -> np.ndarray:
    from PIL import Image

    if name == "astronaut":
        import skimage.data

        return canonical_canvas(skimage.data.astronaut())
    if name == "hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            return canonical_canvas(np.asarray(Image.open(handle).convert("RGB")))
    return np.asarray(Image.open(PHOTOS_DIR / f"{name}.jpg").convert("RGB"))  # already on the canvas


def _on_canvas(info: PortraitInfo, image: np.ndarray) -> Base:
    boxes = faces.detect(image)
    if not boxes:
        raise DataError(f"portrait {info.name!r}: no face found")
    return Base(info, image, faces.landmarks(image, boxes[0]))


@functools.cache
def load_bases(extra: tuple[PortraitSpec, ...] = ()) -> tuple[Base, ...]:
    """The built-in portraits plus `extra` ones, on the canvas (cached per process)."""
    try:
        bases = [_on_canvas(source.info, _builtin_image(source.info.name)) for source in BUILTIN]
    except ImportError as error:
        raise DataError(f"the built-in portraits need {error.name}: pip install 'speech2face[data]'") from error
    for spec in extra:
        from PIL import Image, UnidentifiedImageError

        try:
            image = np.asarray(Image.open(spec.path).convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{spec.path}: not a readable image ({error})") from error
        try:
            canvas = canonical_canvas(image)
        except DataError:
            raise DataError(f"{spec.path}: no face found in the portrait") from None
        bases.append(_on_canvas(PortraitInfo(spec.path.stem, spec.sex, spec.age), canvas))
    return tuple(bases)


def morph(bases: dict[str, Base], mix: tuple[tuple[str, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The weighted morph of portraits: each warped to the weighted mean landmarks, then cross-dissolved.
    Returns the image (CANVAS, CANVAS, 3) uint8 and its landmarks (68, 2)."""
    points = sum(weight * bases[name].landmarks for name, weight in mix)
    if len(mix) == 1:
        return bases[mix[0][0]].image, bases[mix[0][0]].landmarks
    image = sum(weight * warp(bases[name].image, bases[name].landmarks, points).astype(np.float32)
                for name, weight in mix)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), points.astype(np.float32)


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin (between the eyes), rotation rows (u: towards the image's right eye, v: down) and eye distance."""
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    u = (left - right) / np.linalg.norm(left - right)
    v = np.array([-u[1], u[0]])
    return (left + right) / 2, np.stack([u, v]), float(np.linalg.norm(left - right))


def craniofacial_measures(points: np.ndarray) -> dict[str, float]:
    """Ratios measured on the identity's landmarks, in units of its face height (eyes to chin)."""
    origin, _, eye_distance = face_frame(points)
    height = float(np.linalg.norm(points[8] - origin))

    def span(a: int, b: int) -> float:
        return round(float(np.linalg.norm(points[a] - points[b])) / height, 4)

    return {"measured_face_width": span(0, 16), "measured_jaw_width": span(4, 12),
            "measured_nose_width": span(31, 35), "measured_mouth_width": span(48, 54),
            "measured_eye_spacing": round(eye_distance / height, 4), "measured_nose_length": span(27, 33)}


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


def render_identity(bases: dict[str, Base], shape: FaceShape, look: Look) -> tuple[np.ndarray, np.ndarray]:
    """The identity's portrait (RGB uint8, the canvas) and its 68 landmarks."""
    base_image, base_points = morph(bases, look.mix)
    points = target_landmarks(base_points, shape)
    unchanged = np.allclose(points, base_points, atol=1e-3)  # a real face kept as it is: no resampling blur
    image = (base_image if unchanged else warp(base_image, base_points, points)).astype(np.float32)
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
