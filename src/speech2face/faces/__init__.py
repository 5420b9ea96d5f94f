"""Faces: detect, landmarks, align to a canonical crop, and embed with a face encoder (the teacher).

    boxes = faces.detect(image)                       # list[FaceBox], largest first; [] when none
    points = faces.landmarks(image, boxes[0])         # (68, 2)
    crop = faces.align(image, points, size=224)       # .image (224, 224, 3) uint8, .landmarks (68, 2)
    encoder = faces.get_encoder("dlib")               # .dim, .embed((N, H, W, 3) uint8) -> (N, dim)
    found = faces.attributes(crops)                   # the judge: .p_male (N,), .age (N,) in years
"""

from .align import AlignedFace, align
from .detect import FaceBox, as_rgb, detect, pick
from .encoders import FaceEncoder, available_encoders, get_encoder
from .judge import Attributes, Judge, attributes
from .landmarks import NUM_LANDMARKS, eye_centers, landmarks

__all__ = [
    "NUM_LANDMARKS",
    "AlignedFace",
    "Attributes",
    "FaceBox",
    "FaceEncoder",
    "Judge",
    "align",
    "as_rgb",
    "attributes",
    "available_encoders",
    "detect",
    "eye_centers",
    "get_encoder",
    "landmarks",
    "pick",
]
