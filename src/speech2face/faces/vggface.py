"""VGG-Face (Parkhi et al. 2015), the paper's teacher: VGG-16 on 224x224 RGB, fc7 4096-d, fc8 2622 identities.

No package ships its weights, so the user supplies them (see docs/faces.md):

- a `.safetensors` file, or
- a PyTorch state dict (`.pth` / `.pt`), read with `torch.load(weights_only=True)`, which runs no code.
  The public PyTorch conversion of the Oxford release, `vgg_face_dag.pth` (S. Albanie, pytorch-mcn),
  has exactly this module's keys: conv1_1 ... conv5_3, fc6, fc7, fc8 (`.weight`, `.bias`).

`convert_vggface(src, dst)` turns a state dict into safetensors. Loading is strict: a missing, unexpected
or wrong-shaped tensor is an error that names it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ModelError
from ..files import atomic_write
from ..models.pretrained import describe_mismatch

INPUT_SIZE = 224
# RGB mean of the VGG-Face training images, subtracted from 0..255 pixels (no scaling), as in the release
PIXEL_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)
FC7_DIM = 4096
NUM_IDENTITIES = 2622
# conv channels per block; 2x2 max pooling after each block; 224 -> 7
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
WEIGHTS_ENV = "S2F_VGGFACE_WEIGHTS"


class VggFace(nn.Module):
    """(B, 3, H, W) RGB float in [0, 1] -> fc7 (B, 4096), after its ReLU (fc8 reads that).
    `logits(fc7)` gives the 2622 identity scores. Inputs other than 224x224 are resized."""

    def __init__(self) -> None:
        super().__init__()
        in_channels = 3
        self.conv_names: list[str] = []
        for block, widths in enumerate(BLOCKS, start=1):
            for index, channels in enumerate(widths, start=1):
                name = f"conv{block}_{index}"
                self.add_module(name, nn.Conv2d(in_channels, channels, 3, padding=1))
                self.conv_names.append(name)
                in_channels = channels
        self.fc6 = nn.Linear(in_channels * 7 * 7, FC7_DIM)
        self.fc7 = nn.Linear(FC7_DIM, FC7_DIM)
        self.fc8 = nn.Linear(FC7_DIM, NUM_IDENTITIES)
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                   align_corners=False)
        x = images * 255.0 - self.mean
        block_ends = {f"conv{block}_{len(widths)}" for block, widths in enumerate(BLOCKS, start=1)}
        for name in self.conv_names:
            x = F.relu(getattr(self, name)(x))
            if name in block_ends:
                x = F.max_pool2d(x, 2)
        x = F.relu(self.fc6(x.flatten(1)))
        return F.relu(self.fc7(x))

    def logits(self, fc7: torch.Tensor) -> torch.Tensor:
        """(B, 4096) fc7 -> (B, 2622) identity scores (the distillation loss's f_VGG)."""
        return self.fc8(fc7)

    @classmethod
    def from_file(cls, path: str | Path) -> VggFace:
        model = cls()
        state = read_state_dict(path)
        problem = describe_mismatch({k: v.shape for k, v in model.state_dict().items()},
                                    {k: v.shape for k, v in state.items()})
        if problem:
            raise ModelError(f"{path}: not VGG-Face weights ({problem})")
        model.load_state_dict(state, strict=True)
        return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a pickle-free PyTorch state dict, by name."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")

    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: unreadable weights ({reason})") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a state dict of tensors")
    return state


def convert_vggface(source: str | Path, target: str | Path) -> Path:
    """Check a VGG-Face state dict and write it as safetensors (loads without pickle from then on)."""
    state = {key: value.contiguous() for key, value in VggFace.from_file(source).state_dict().items()}
    target = Path(target)
    atomic_write(target, lambda temporary: save_file(state, str(temporary)))
    return target


def default_weights() -> Path:
    """The file named by $S2F_VGGFACE_WEIGHTS, or a ModelError that says how to get one."""
    value = os.environ.get(WEIGHTS_ENV)
    if not value:
        raise ModelError(f"vggface needs its weights, which no package ships: pass weights=PATH or set {WEIGHTS_ENV} "
                         "to a .safetensors or vgg_face_dag.pth file (see docs/faces.md)")
    return Path(value)
