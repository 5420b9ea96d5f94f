"""Which device to run on: one rule for every command and class."""

from __future__ import annotations

import torch


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto` or None: CUDA when present, else CPU; otherwise the named device (`cpu`, `cuda`, `cuda:1`)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
