"""Face images between their two forms: uint8 (N, H, W, 3) as stored and shown, float (N, 3, H, W) in
[0, 1] as the networks read and draw them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] (clipped) -> (N, H, W, 3) uint8, rounded."""
    return (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy()


def to_float(faces: torch.Tensor | np.ndarray, size: int | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float in [0, 1] (resized with antialiasing when needed)."""
    images = torch.as_tensor(faces).permute(0, 3, 1, 2).float().div_(255)
    if size is not None and images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images
