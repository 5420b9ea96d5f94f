"""Losses: the face decoder's (Cole et al.) here; the voice encoder's (SPEC 5) join them.

Shapes: images (B, 3, S, S) in [0, 1]; landmarks (B, 68, 2) normalised to [0, 1]; embeddings (B, E).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .models.face_decoder import DecodedFace
from .models.warp import warp_image


def unwarp_to_mean(faces: torch.Tensor, landmarks: torch.Tensor, mean_landmarks: torch.Tensor) -> torch.Tensor:
    """The faces redrawn in the mean geometry: the texture head's target."""
    return warp_image(faces, landmarks, mean_landmarks.expand(faces.shape[0], -1, -1))


def decoder_losses(decoded: DecodedFace, faces: torch.Tensor, landmarks: torch.Tensor,
                   mean_landmarks: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor] | None,
                   ) -> dict[str, torch.Tensor]:
    """texture: L1 between the texture and the face un-warped into the mean geometry; landmarks: MSE;
    perceptual: 1 - cosine between the face encoder's embeddings of output and input (0 = same face)."""
    with torch.no_grad():
        target = unwarp_to_mean(faces, landmarks, mean_landmarks)
    losses = {"texture": (decoded.texture.float() - target).abs().mean(),
              "landmarks": (decoded.landmarks.float() - landmarks).pow(2).mean()}
    if embed is not None:
        with torch.no_grad():
            wanted = embed(faces)
        losses["perceptual"] = 1 - F.cosine_similarity(embed(decoded.image.float()), wanted, dim=1).mean()
    return losses
