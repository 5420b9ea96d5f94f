"""Losses: the face decoder's (Cole et al.) and the voice encoder's (the paper's, Sec. 3.3 of Oh et al.).
Each returns its terms and their weighted sum as "total", which the training loop minimises.

Shapes: images (B, 3, S, S) in [0, 1]; landmarks (B, 68, 2) normalised to [0, 1]; features (B, D).
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


TEXTURE_WEIGHT = 1.0
LANDMARK_WEIGHT = 100.0  # the landmark MSE is in normalised units (~1e-3)
PERCEPTUAL_WEIGHT = 0.5


def decoder_losses(decoded: DecodedFace, faces: torch.Tensor, landmarks: torch.Tensor,
                   mean_landmarks: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor] | None, *,
                   texture_weight: float = TEXTURE_WEIGHT, landmark_weight: float = LANDMARK_WEIGHT,
                   perceptual_weight: float = PERCEPTUAL_WEIGHT,
                   ) -> dict[str, torch.Tensor]:
    """texture: L1 between the texture and the face un-warped into the mean geometry; landmarks: MSE;
    perceptual: 1 - cosine between the face encoder's
    embeddings of output and input (0 = same face), skipped when `embed` is None. The face encoder runs
    under the caller's autocast (it is the costly part); the other terms in float32."""
    with torch.no_grad():
        target = unwarp_to_mean(faces, landmarks, mean_landmarks)
    losses = {"texture": (decoded.texture.float() - target).abs().mean(),
              "landmarks": (decoded.landmarks.float() - landmarks).pow(2).mean()}
    if embed is not None:
        with torch.no_grad():
            wanted = embed(faces)
        losses["perceptual"] = 1 - F.cosine_similarity(embed(decoded.image.float()), wanted, dim=1).float().mean()
    losses["total"] = texture_weight * losses["texture"] + landmark_weight * losses["landmarks"]
    if "perceptual" in losses:
        losses["total"] = losses["total"] + perceptual_weight * losses["perceptual"]
    return losses


# ---------------------------------------------------------------------------------------------------
# the voice encoder: the paper's loss and its weights (lambda_1, lambda_2, T)

PAPER_NORM_WEIGHT = 0.025
PAPER_DISTILL_WEIGHT = 200.0
PAPER_TEMPERATURE = 2.0


def distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                 temperature: float = PAPER_TEMPERATURE) -> torch.Tensor:
    """L_distill(a, b) = -sum_i p_i(a) log p_i(b), p = softmax(x / T); (B, C) each -> (B,)."""
    target = F.softmax(_at_least_float32(teacher_logits) / temperature, dim=1)
    return -(target * F.log_softmax(_at_least_float32(student_logits) / temperature, dim=1)).sum(dim=1)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def voice_losses(predicted: torch.Tensor, true: torch.Tensor, first_layer: Callable[[torch.Tensor], torch.Tensor],
                 classifier: Callable[[torch.Tensor], torch.Tensor] | None, *,
                 norm_weight: float = PAPER_NORM_WEIGHT, distill_weight: float = PAPER_DISTILL_WEIGHT,
                 temperature: float = PAPER_TEMPERATURE) -> dict[str, torch.Tensor]:
    """The paper's loss on predicted (v_s) and true (v_f) face features (B, D), each term per sample, then
    averaged over the batch:
        decoder  || f_dec(v_f) - f_dec(v_s) ||_1       (f_dec: the frozen decoder's first layer)
        norm     || v_f/|v_f| - v_s/|v_s| ||_2^2        (x norm_weight, the paper's lambda_1)
        distill  L_distill(f_VGG(v_f), f_VGG(v_s))      (x distill_weight, lambda_2; f_VGG: the teacher's
                                                         classifier, skipped if None)
    All in at least float32, with autocast off: the terms are small differences of large activations.
    """
    with torch.autocast(predicted.device.type, enabled=False):
        return _voice_losses(_at_least_float32(predicted), _at_least_float32(true), first_layer, classifier,
                             norm_weight, distill_weight, temperature)


def _voice_losses(predicted: torch.Tensor, true: torch.Tensor, first_layer: Callable[[torch.Tensor], torch.Tensor],
                  classifier: Callable[[torch.Tensor], torch.Tensor] | None, norm_weight: float,
                  distill_weight: float, temperature: float) -> dict[str, torch.Tensor]:
    losses = {
        "decoder": (first_layer(true) - first_layer(predicted)).abs().sum(dim=1).mean(),
        "norm": (F.normalize(true, dim=1) - F.normalize(predicted, dim=1)).pow(2).sum(dim=1).mean(),
    }
    total = losses["decoder"] + norm_weight * losses["norm"]
    if classifier is not None and distill_weight > 0:
        losses["distill"] = distillation(classifier(true), classifier(predicted), temperature).mean()
        total = total + distill_weight * losses["distill"]
    losses["total"] = total
    return losses
