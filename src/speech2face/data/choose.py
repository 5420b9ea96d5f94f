"""Which face of which frame a segment keeps: the rule, its thresholds, and why.

A sampled frame is GOOD when
  1. the detector finds a face whose box is confident (HOG score >= MIN_SCORE),
  2. that face is the one nearest the segment's point (x, y) and the point lies inside its box widened
     by NEAR_MARGIN (AVSpeech's point marks the speaker; without a point the largest face is taken),
  3. no other confident face is about as near (its centre within AMBIGUOUS_RATIO of the chosen one's
     distance): two candidate speakers -> the frame is skipped rather than guessed,
  4. the face is big enough (eye distance >= MIN_EYE_DISTANCE px) to give a sharp crop, and
  5. it is frontal: |yaw proxy| <= MAX_YAW, where the yaw proxy is the horizontal offset of the nose
     tip from the midpoint of the eyes, in eye distances, measured along the eye line (0 for a frontal
     face, about +-0.35 at 30 degrees of yaw).
Detection is coarse to fine, for speed on HD video, and stops at the first search that finds a usable face
(for the rule above: one holding the point; without a point, any). With a point, first: for a segment's
later frames the region around the face of its previous good frame (TRACK_MARGIN face sizes on each side,
scaled so that face is TRACK_FACE_SIDE px: a talking head moves little between sampled frames), for its
first frame a square of POINT_REGION frame heights around the point at the coarse scale. Then the frame
downscaled to COARSE_SIDE px without upsampling (faces of >= 80 px there: 22 % of a 360p or 720p frame's
height, most talking heads, at a quarter of the cost or less). Last the full search (small frames
upsampled: faces down to ~40 px). A second face beyond the region of the search that succeeded does not
make the frame ambiguous. Landmarks and the crop always come from the full-resolution frame.
The segment keeps the crop and landmarks of its most frontal good frame, and as its face FEATURE the
mean of the encoder's features over all good frames: the teacher target then varies less with the
expression and pose of one frame (the voice carries neither).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import faces
from ..faces.landmarks import LEFT_EYE, RIGHT_EYE

MIN_SCORE = 0.0  # HOG: 0 is dlib's own default threshold; portraits score 0.5-2
NEAR_MARGIN = 0.25  # of the box size
AMBIGUOUS_RATIO = 1.5
MIN_EYE_DISTANCE = 16.0  # pixels: a ~45 px wide face
MAX_YAW = 0.2
CROP_SIZE = 224
COARSE_SIDE = 640  # px: the longest side of the frame in the coarse detection pass
TRACK_MARGIN = 1.0  # face sizes searched on each side of the previous frame's face
TRACK_FACE_SIDE = 100  # px: that face's size in the scaled region
POINT_REGION = 0.6  # frame heights: the side of the square searched around the point before the whole frame
HOG_WINDOW = 80  # px: the smallest face dlib's detectors find without upsampling


@dataclass(frozen=True)
class FrameFace:
    """A good frame's face."""

    time: float
    box: faces.FaceBox
    landmarks: np.ndarray  # (68, 2) in frame pixels
    yaw: float
    crop: faces.AlignedFace


def yaw_proxy(points: np.ndarray) -> float:
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    axis = left - right
    distance = float(np.linalg.norm(axis))
    return float(np.dot(points[30] - (left + right) / 2, axis / distance) / distance)


def candidate_faces(image: np.ndarray, near: tuple[float, float] | None, detector: str = "hog",
                    hint: faces.FaceBox | None = None) -> list[faces.FaceBox]:
    """The confident faces the rule chooses among, largest first, from the first search that finds a usable
    one (the largest without a point, else the nearest the point when its widened box holds the point):
    with a point, around `hint` (the face of the segment's previous good frame) or else around the point;
    then the coarse pass; else the full detection."""
    size = (image.shape[1], image.shape[0])
    coarse = min(1.0, COARSE_SIDE / max(size))
    searches = [lambda: faces.detect(image, detector=detector, upsample=0, max_side=COARSE_SIDE)]  # type: ignore[arg-type]
    if near is not None:
        searches.insert(0, lambda: _detect_around(image, hint, detector) if hint is not None else
                        _detect_near(image, near, coarse, detector))
    for search in searches:
        boxes = _confident(search())
        if boxes and (near is None or holds_point(faces.pick(boxes, near, size), near, size)):  # type: ignore[arg-type]
            return boxes
    return _confident(faces.detect(image, detector=detector))  # type: ignore[arg-type]


def _detect_around(image: np.ndarray, box: faces.FaceBox, detector: str) -> list[faces.FaceBox]:
    """Faces in the region TRACK_MARGIN face sizes around `box`, scaled so that a face of the box's size
    is TRACK_FACE_SIDE px (HOG's 80 px window finds it there at a few pyramid levels)."""
    side = max(box.width, box.height, 1.0)
    return _detect_in(image, (box.x0 - TRACK_MARGIN * side, box.y0 - TRACK_MARGIN * side,
                              box.x1 + TRACK_MARGIN * side, box.y1 + TRACK_MARGIN * side), TRACK_FACE_SIDE / side,
                      detector)


def _detect_near(image: np.ndarray, near: tuple[float, float], scale: float, detector: str) -> list[faces.FaceBox]:
    """Faces in a square of POINT_REGION frame heights centred on the point, at the coarse pass's scale
    (AVSpeech's point is the speaker's face centre: a face up to about that size is inside)."""
    height, width = image.shape[:2]
    half = POINT_REGION * height / 2
    x, y = near[0] * width, near[1] * height
    return _detect_in(image, (x - half, y - half, x + half, y + half), scale, detector)


def _detect_in(image: np.ndarray, region: tuple[float, float, float, float], scale: float,
               detector: str) -> list[faces.FaceBox]:
    """Faces in a region (x0, y0, x1, y1) of the frame (clipped to it), detected at `scale` without
    upsampling; boxes in frame pixels. None when the scaled region is smaller than HOG's window."""
    import cv2

    height, width = image.shape[:2]
    x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
    x1, y1 = min(width, int(region[2]) + 1), min(height, int(region[3]) + 1)
    region_width, region_height = round((x1 - x0) * scale), round((y1 - y0) * scale)
    if min(region_width, region_height) < HOG_WINDOW:
        return []
    crop = image[y0:y1, x0:x1]
    if scale != 1.0:
        crop = cv2.resize(crop, (region_width, region_height),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    found = faces.detect(crop, detector=detector, upsample=0, max_side=max(crop.shape))  # type: ignore[arg-type]
    return [faces.FaceBox(f.x0 / scale + x0, f.y0 / scale + y0, f.x1 / scale + x0, f.y1 / scale + y0, f.score)
            for f in found]


def _confident(boxes: list[faces.FaceBox]) -> list[faces.FaceBox]:
    return [box for box in boxes if box.score >= MIN_SCORE]


def holds_point(box: faces.FaceBox, near: tuple[float, float], size: tuple[int, int]) -> bool:
    """Whether the box widened by NEAR_MARGIN holds the normalised point (x, y) of an image (width, height)."""
    px, py = near[0] * size[0], near[1] * size[1]
    margin_x, margin_y = NEAR_MARGIN * box.width, NEAR_MARGIN * box.height
    return box.x0 - margin_x <= px <= box.x1 + margin_x and box.y0 - margin_y <= py <= box.y1 + margin_y


def frame_face(image: np.ndarray, time: float, near: tuple[float, float] | None,
               detector: str = "hog", hint: faces.FaceBox | None = None) -> FrameFace | str:
    """The frame's usable face, or the reason there is none: 'no-face', 'no-face-near-point',
    'ambiguous-face', 'face-too-small' or 'not-frontal'. `hint`: the face of the previous good frame."""
    boxes = candidate_faces(image, near, detector, hint)
    if not boxes:
        return "no-face"
    height, width = image.shape[:2]
    if near is None:
        box = boxes[0]  # the largest
    else:
        box = faces.pick(boxes, near, (width, height))
        assert box is not None
        if not holds_point(box, near, (width, height)):
            return "no-face-near-point"
        px, py = near[0] * width, near[1] * height
        chosen = np.hypot(box.center[0] - px, box.center[1] - py)
        for other in boxes:
            if other is not box and np.hypot(other.center[0] - px, other.center[1] - py) <= \
                    AMBIGUOUS_RATIO * chosen + 0.1 * box.width:
                return "ambiguous-face"
    return face_from_box(image, box, time)


def face_from_box(image: np.ndarray, box: faces.FaceBox, time: float, max_yaw: float = MAX_YAW) -> FrameFace | str:
    """The face in `box` if it is big enough and frontal (rules 4 and 5; |yaw| <= `max_yaw`), with its landmarks
    and crop; else 'face-too-small' or 'not-frontal'. Frames and photos alike."""
    points = faces.landmarks(image, box)
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    if np.linalg.norm(left - right) < MIN_EYE_DISTANCE:
        return "face-too-small"
    yaw = yaw_proxy(points)
    if abs(yaw) > max_yaw:
        return "not-frontal"
    return FrameFace(time, box, points, yaw, faces.align(image, points, size=CROP_SIZE))
