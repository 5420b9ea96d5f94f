"""Augmentation of the face decoder's training faces, each with its teacher feature recomputed.

    faces, landmarks, features = augment_batch(batch, settings, teacher)

Three kinds, chosen per face by uniform numbers the data stream draws from (seed, key, epoch), so that a
batch's augmentation is as deterministic as the batch itself:
- flip: the face mirrored, its landmarks mirrored and renumbered (`MIRROR`);
- morph: a new identity, the landmark-aligned blend of the face and another face of the batch of the same sex
  (both warped onto the blend of their landmarks, then mixed; `synth/` morphs its portraits the same way);
- colour: brightness, contrast and saturation jittered.
An augmented face gets its feature from the teacher (the encoder that made the shards' features), as
`prepare` would have computed it: the decoder learns feature -> face, so input and target must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..images import to_float, to_uint8
from ..models.warp import warp_image

AUGMENT_DRAWS = 7  # uniform numbers per sample: flip, morph, morph mix, colour, and its three factors

# iBUG 68 landmarks mirrored left-right: index i of the mirrored face is point MIRROR[i] of the original
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # eyebrows
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]  # nose bridge, nostrils
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65])  # inner lip


@dataclass(frozen=True)
class Augmentation:
    flip: float = 0.5  # probability of a mirrored face
    morph: float = 0.0  # probability of a same-sex morph with another face of the batch
    colour: float = 0.0  # probability of a colour jitter
    colour_strength: float = 0.15  # brightness, contrast and saturation change by up to this fraction

    def any(self) -> bool:
        return max(self.flip, self.morph, self.colour) > 0


def draws(seed: int, key_hash: int, epoch: int) -> np.ndarray:
    """The AUGMENT_DRAWS uniform numbers of one sample in one epoch."""
    return np.random.default_rng([seed, key_hash, epoch, 7]).random(AUGMENT_DRAWS).astype(np.float32)


def mirror_landmarks(points: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) normalised -> the landmarks of the mirrored faces."""
    mirrored = points[:, torch.as_tensor(MIRROR, device=points.device)].clone()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    return mirrored


def morph_partners(male: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each face that wants a morph, the index of the next face of the same known sex in the batch (cyclic);
    -1 where there is none or none is wanted."""
    partners = np.full(len(male), -1)
    for index in np.flatnonzero(wanted & (male >= 0)):
        for step in range(1, len(male)):
            other = (index + step) % len(male)
            if male[other] == male[index]:
                partners[index] = other
                break
    return partners


def jitter(images: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]; strength (B, 3) in [-1, 1]: brightness, contrast, saturation factors 1 + s x k."""
    b, c, s = (1 + strength[:, i, None, None, None] for i in range(3))
    grey = images.mean(dim=1, keepdim=True)
    images = grey + (images - grey) * s
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * c + mean) * b


def augment_batch(batch: dict[str, torch.Tensor], augmentation: Augmentation, teacher: Any,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's faces (B, H, W, 3) uint8, landmarks (B, 68, 2) and features (B, D), augmented per its "draws"
    (B, AUGMENT_DRAWS) and "male" (B,) (1, 0, or -1 unknown); augmented faces get the teacher's feature."""
    faces = batch["face"]
    landmarks, features = batch["landmarks"].clone(), batch["feature"].clone()
    u = batch["draws"].numpy()
    flip = u[:, 0] < augmentation.flip
    partners = morph_partners(batch["male"].numpy(), u[:, 1] < augmentation.morph)
    colour = u[:, 3] < augmentation.colour
    changed = flip | (partners >= 0) | colour
    if not changed.any():
        return faces, landmarks, features
    images = to_float(faces)
    morph = partners >= 0
    if morph.any():
        mix = torch.as_tensor(0.3 + 0.4 * u[morph, 2])[:, None, None]  # the face's share, 0.3-0.7
        own, other = landmarks[morph], landmarks[partners[morph]]
        blended = mix * own + (1 - mix) * other
        warped_own = warp_image(images[morph], own, blended)
        warped_other = warp_image(images[partners[morph]], other, blended)
        images[morph] = mix[..., None] * warped_own + (1 - mix[..., None]) * warped_other
        landmarks[morph] = blended
    if colour.any():
        factors = torch.as_tensor(2 * u[colour, 4:7] - 1) * augmentation.colour_strength
        images[colour] = jitter(images[colour], factors).clamp(0, 1)
    if flip.any():
        images[flip] = images[flip].flip(-1)
        landmarks[flip] = mirror_landmarks(landmarks[flip])
    out = torch.as_tensor(to_uint8(images))
    out[~torch.as_tensor(changed)] = faces[~torch.as_tensor(changed)]  # untouched faces stay bit-exact
    features[changed] = torch.as_tensor(teacher.embed(out[changed].numpy()), dtype=features.dtype)
    return out, landmarks, features
