"""Faces of real people for the world: each identity's face is a real photo of a collection (default the packaged
CelebA photos, `celeba-999`), or a same-sex morph of two of them when the world has more identities than photos.

    identities, photos = photo_identities(settings)    # Identity per world identity; key -> FacePhoto it uses
    base = photo_base(photos[key])                      # the photo on the world's canvas (a worker does this)

What the voice follows is read from the face itself (`photo_attributes`): sex (the collection's CSV, else the
age/sex judge when it is sure: `data.photos.sure_sex`), age (CSV, else the judge) and craniofacial ratios of its
68 landmarks (jaw width -> masculinity within the sex, face width to height -> size, nose width -> nose). Photos
the judge is unsure of, and photos without one clear frontal face, are not used.

Held out means held out twice: identities of the world's val/test split (`split_of(speaker_id, val, test)`, as
`s2f prepare` computes it with the same fractions) take photos of the collection's held-out split
(`DECODER_SPLITS`, as `s2f prepare --images` splits it for the face decoder), so no face a model is measured on
was ever a decoder's training photo; training identities take training photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.photos import (
    CELEBA_999,
    DECODER_SPLITS,
    EMBED_BATCH,
    PhotoFailure,
    photo_face,
    read_photo,
    read_photos,
    sure_sex,
)
from ..data.splits import split_of
from ..errors import DataError
from ..faces.align import crop_transform
from ..faces.judge import Judge
from .attributes import PHOTO_EFFECTS, VOICE, FaceShape, Identity, Look, PortraitInfo, rng, voice
from .portraits import CANVAS, CANVAS_PADDING, Base, craniofacial_measures

PORTRAITS = "portraits"  # --faces portraits: the six built-in public-domain portraits (a small offline fallback)
MORPH_WEIGHTS = (0.3, 0.7)  # the first photo's share in a morph of two
PHOTO_ZOOM = (0.46, 0.52)  # face width / frame width: the view stays inside the photo (CelebA's crops are tight)
POOL, MORPH, VIEW = 4, 5, 6  # generator purposes (attributes.py has 1-3)
NEUTRAL = FaceShape(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# Reference population: the first 400 usable photos of celeba-999 (`python -m speech2face.synth.photo_faces`; 42 %
# men): jaw width / face height by sex, face width / face height, judged age; mean and standard deviation
JAW_RATIO = {"female": (1.009, 0.063), "male": (0.995, 0.075)}
NOSE_RATIO = (0.235, 0.032)
WIDTH_RATIO = (1.231, 0.079)
AGE_YEARS = (35.7, 10.8)


@dataclass(frozen=True)
class FacePhoto:
    """A usable photo: where it is, its 68 landmarks (photo pixels), sex, age, and whether a decoder may have
    trained on it (`held_out` False)."""

    key: str
    path: str
    landmarks: np.ndarray
    sex: str
    age: float
    held_out: bool


def photo_attributes(points: np.ndarray, sex: str, age: float) -> dict[str, float]:
    """The world's hidden attributes of a real face: masculinity (its sign the sex; within the sex, a wider jaw is
    more masculine), age (standardised years), size (face width to height) and nose (nose width to face height),
    each clipped to [-2, 2]."""
    measures = craniofacial_measures(points)
    jaw_mean, jaw_sd = JAW_RATIO[sex]
    within = float(np.clip((measures["measured_jaw_width"] - jaw_mean) / jaw_sd, -2, 2))
    magnitude = float(np.clip(0.8 + 0.4 * within, 0.1, 2.0))
    return {"masculinity": magnitude if sex == "male" else -magnitude,
            "age": float(np.clip((age - AGE_YEARS[0]) / AGE_YEARS[1], -2, 2)),
            "size": float(np.clip((measures["measured_face_width"] - WIDTH_RATIO[0]) / WIDTH_RATIO[1], -2, 2)),
            "nose": float(np.clip((measures["measured_nose_width"] - NOSE_RATIO[0]) / NOSE_RATIO[1], -2, 2))}


def photo_identities(identities: int, seed: int, strength: float, val: float, test: float, faces: str,
                     labels: str | None = None, progress: bool = True) -> tuple[list[Identity], dict[str, FacePhoto]]:
    """The world's identities on faces of the collection `faces` (a name or folder), and the photos they use."""
    speaker_ids = [f"syn{index:05d}" for index in range(identities)]
    held_out = [split_of(speaker, val, test) != "train" for speaker in speaker_ids]
    collection = [p for p in read_photos(faces, labels) if p.error is None]
    pools = {}
    judge = Judge()
    for flag in (True, False):
        members = [p for p in collection if (decoder_split(p.speaker) != "train") == flag]
        order = rng(seed, POOL, int(flag)).permutation(len(members))
        needed = sum(h == flag for h in held_out)
        pools[flag] = usable_photos([members[i] for i in order], needed, flag, judge, progress) if needed else []
    by_key = {photo.key: photo for pool in pools.values() for photo in pool}
    result = []
    counters = {True: 0, False: 0}
    for index, (speaker, flag) in enumerate(zip(speaker_ids, held_out, strict=True)):
        pool = pools[flag]
        if not pool:
            raise DataError(f"--faces {faces}: no usable {'held-out' if flag else 'training'} photo (one clear "
                            "frontal face whose sex is known) for the world's "
                            f"{'val/test' if flag else 'training'} identities")
        mix = face_mix(pool, counters[flag], rng(seed, index, MORPH))
        counters[flag] += 1
        result.append(photo_identity(speaker, index, seed, strength, [(by_key[k], w) for k, w in mix]))
    used = {key for identity in result for key, _ in identity.look.mix}
    return result, {key: by_key[key] for key in sorted(used)}


def decoder_split(identity: str) -> str:
    """The split `s2f prepare --images` puts a collection's identity in, at the demo decoder's fractions."""
    return split_of(identity, DECODER_SPLITS["val"], DECODER_SPLITS["test"])


def face_mix(pool: Sequence[FacePhoto], position: int, draw: np.random.Generator) -> tuple[tuple[str, float], ...]:
    """The `position`-th identity of a pool: its own photo while the pool lasts, then a same-sex morph of two."""
    if position < len(pool):
        return ((pool[position].key, 1.0),)
    first = pool[int(draw.integers(len(pool)))]
    partners = [p for p in pool if p.sex == first.sex and p.key != first.key]
    if not partners:
        return ((first.key, 1.0),)
    second = partners[int(draw.integers(len(partners)))]
    weight = float(draw.uniform(*MORPH_WEIGHTS))
    return ((first.key, weight), (second.key, 1.0 - weight))


def photo_identity(speaker: str, index: int, seed: int, strength: float,
                   mix: list[tuple[FacePhoto, float]]) -> Identity:
    """One identity: the face as the photo (or morph) is, the voice from what the face shows."""
    points = sum(weight * canvas_landmarks(photo.landmarks) for photo, weight in mix)
    sex = mix[0][0].sex
    attributes = photo_attributes(points, sex, sum(weight * photo.age for photo, weight in mix))
    look = Look(skin_gain=(1.0, 1.0, 1.0), light_slope=0.0, zoom=float(rng(seed, index, VIEW).uniform(*PHOTO_ZOOM)),
                mix=tuple((photo.key, weight) for photo, weight in mix))
    sound = voice(attributes, strength, rng(seed, index, VOICE), PHOTO_EFFECTS)
    return Identity(speaker, index, attributes, NEUTRAL, look, sound)


def usable_photos(photos: list, needed: int, held_out: bool, judge: Any, progress: bool) -> list[FacePhoto]:
    """The first `needed` photos (in the given order) with one clear frontal face (a photo's rule, `s2f prepare
    --images`: about a tenth turn further than video frames may, and prepare refuses their clips) and a known sex;
    all of them when there are fewer. Faces are found one photo at a time and judged EMBED_BATCH at a time."""
    found: list[FacePhoto] = []
    batch: list[tuple] = []
    bar = tqdm(total=needed, desc="faces " + ("held out" if held_out else "training"), unit="photo",
               disable=not progress)
    for position, photo in enumerate(photos):
        try:
            face = photo_face(read_photo(photo.source), "hog")
        except (PhotoFailure, DataError):
            face = None
        if face is not None:
            batch.append((photo, face))
        if batch and (len(batch) == EMBED_BATCH or position == len(photos) - 1):
            judged = judge(np.stack([face.crop.image for _, face in batch]))
            for row, (item, face) in enumerate(batch):
                sex = item.sex or sure_sex(float(judged.p_male[row]))
                if sex is not None and len(found) < needed:
                    age = item.age if item.age is not None else float(judged.age[row])
                    found.append(FacePhoto(item.key, item.source, face.landmarks, sex, age, held_out))
                    bar.update()
            batch = []
            if len(found) >= needed:
                break
    bar.close()
    return found


def canvas_transform(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) map from the photo onto the world's canvas (portraits.CANVAS, the face where portraits have it)."""
    return crop_transform(landmarks, CANVAS, padding=CANVAS_PADDING)


def canvas_landmarks(landmarks: np.ndarray, transform: np.ndarray | None = None) -> np.ndarray:
    """The landmarks on the canvas (`transform`: canvas_transform's, when the caller has it)."""
    transform = canvas_transform(landmarks) if transform is None else transform
    return (landmarks @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def photo_base(photo: FacePhoto) -> object:
    """The photo on the world's canvas as a `portraits.Base` (edges beyond the photo repeat its border pixels)."""
    import cv2

    transform = canvas_transform(photo.landmarks)
    image = cv2.warpAffine(read_photo(photo.path), transform, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return Base(PortraitInfo(photo.key, photo.sex, photo.age), image, canvas_landmarks(photo.landmarks, transform))


def reference_population(count: int = 400) -> None:
    """Print the ratios JAW_RATIO, WIDTH_RATIO and AGE_YEARS are set from (the first `count` usable photos)."""
    photos = usable_photos(read_photos(CELEBA_999), count, False, Judge(), True)
    rows = [(p.sex, craniofacial_measures(canvas_landmarks(p.landmarks)), p.age) for p in photos]
    for sex in ("female", "male"):
        jaw = [m["measured_jaw_width"] for s, m, _ in rows if s == sex]
        print(f"jaw {sex}: {np.mean(jaw):.3f} +- {np.std(jaw):.3f} (n {len(jaw)})")
    width = [m["measured_face_width"] for _, m, _ in rows]
    nose = [m["measured_nose_width"] for _, m, _ in rows]
    print(f"nose: {np.mean(nose):.3f} +- {np.std(nose):.3f}")
    ages = [a for _, _, a in rows]
    print(f"width: {np.mean(width):.3f} +- {np.std(width):.3f}; age {np.mean(ages):.1f} +- {np.std(ages):.1f}")
    print(f"male share {np.mean([s == 'male' for s, _, _ in rows]):.2f}")


if __name__ == "__main__":
    reference_population()
