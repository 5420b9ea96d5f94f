"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) as a PyTorch module.

The architecture is `anet_type` of dlib's `tools/python/src/face_recognition.cpp` (dlib 20.0.1 sdist);
the weights are read from the `.dat` file that `face_recognition_models` ships, with a reader for dlib's
serialization format (`dlib/serialize.h`, `dlib/cuda/tensor.h`, the layers' `serialize` functions in
`dlib/dnn/layers.h`). No pickle is involved. Facts this port relies on, each checked in that source:

- input `input_rgb_image_sized<150>`: (pixel - (122.782, 117.001, 104.298)) / 256, RGB;
- `con_<N, r, c, s, s>` pads r//2 when the stride is 1 and 0 when it is 2; convolution is correlation
  (as in torch); filters are stored (N, K, r, c) followed by N biases;
- batch norm was frozen into `affine_` layers (per channel gamma * x + beta) when the model was saved;
- `ares` = relu(x + block(x)); `ares_down` = relu(avg_pool2x2(x) + block_stride2(x)) where
  block = affine(con3x3(relu(affine(con3x3_stride(x))))). `add_prev` of tensors of different sizes
  zero-pads the smaller one at the end of every axis (channels 128 -> 256 and, at the 256 level,
  3x3 -> 4x4 because dlib's unpadded stride-2 convolution and pooling round differently);
- `avg_pool_everything` then `fc_no_bias<128>`, weights stored (inputs, outputs).

Shapes through the network for a 150x150 input: 72 (7x7/2) -> 35 (max 3x3/2) -> 35 x3 (32 ch) ->
17 x4 (64) -> 8 x3 (128) -> 4 x3 (256) -> 2 (256) -> mean -> 128.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

INPUT_SIZE = 150
PIXEL_MEAN = (122.782, 117.001, 104.298)  # RGB, from dlib's input_rgb_image
PIXEL_SCALE = 256.0
EMBEDDING_DIM = 128
# (channels, residual blocks, whether the first block halves the resolution), input side first
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
STEM_CHANNELS = 32


class Affine(nn.Module):
    """dlib's `affine_` layer: batch norm frozen to a per-channel scale and shift."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b as dlib's add_prev computes it: each tensor zero-padded at the end to the larger size."""
    if a.shape == b.shape:
        return a + b
    size = [max(i, j) for i, j in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:  # F.pad lists (left, right) pairs from the last axis
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    """relu(shortcut(x) + affine(conv(relu(affine(conv_stride(x)))))); stride 2 -> 2x2 average shortcut."""

    def __init__(self, in_channels: int, channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2) if self.downsample else x
        return F.relu(add_zero_padded(shortcut, y))


class DlibResNet(nn.Module):
    """(B, 3, H, W) RGB float in [0, 1] -> (B, 128) dlib face descriptor (not normalised; same person
    < 0.6 apart in L2). Inputs other than 150x150 are resized (bilinear, antialiased): give it crops
    aligned like `faces.align` / dlib's `get_face_chip` for descriptors that mean anything."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, STEM_CHANNELS, 7, 2, 0)
        self.stem_affine = Affine(STEM_CHANNELS)
        blocks = []
        in_channels = STEM_CHANNELS
        for channels, count, downsample in LEVELS:
            for index in range(count):
                blocks.append(ResidualBlock(in_channels, channels, downsample and index == 0))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, EMBEDDING_DIM, bias=False)
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                   align_corners=False)
        x = (images * 255.0 - self.mean) / PIXEL_SCALE
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    @classmethod
    def from_dlib(cls, path: str | Path) -> DlibResNet:
        """Build the module with the weights of dlib's `.dat` file (strict: every tensor must fit)."""
        layers = read_dlib_layers(Path(path).read_bytes())
        convs = [layer for layer in layers if layer.kind == "con"]
        affines = [layer for layer in layers if layer.kind == "affine"]
        fcs = [layer for layer in layers if layer.kind == "fc"]
        model = cls()
        targets = [(model.stem, model.stem_affine)] + [
            pair for block in model.blocks for pair in ((block.conv1, block.affine1), (block.conv2, block.affine2))
        ]
        if (len(convs), len(affines), len(fcs)) != (len(targets), len(targets), 1):
            raise ModelError(f"{path}: {len(convs)} convolutions, {len(affines)} affine and {len(fcs)} fc layers; "
                             f"dlib's face ResNet has {len(targets)}, {len(targets)} and 1")
        with torch.no_grad():
            for (conv, affine), conv_record, affine_record in zip(targets, convs, affines, strict=True):
                _copy(conv.weight, conv_record.weight, path)
                _copy(conv.bias, conv_record.bias, path)
                _copy(affine.weight, affine_record.weight, path)
                _copy(affine.bias, affine_record.bias, path)
            _copy(model.fc.weight, fcs[0].weight.T, path)  # dlib stores (inputs, outputs)
        return model.eval()


def _copy(target: torch.Tensor, source: np.ndarray, path: str | Path) -> None:
    if tuple(target.shape) != source.shape:
        raise ModelError(f"{path}: a tensor of shape {source.shape} where dlib's face ResNet has "
                         f"{tuple(target.shape)}")
    target.copy_(torch.from_numpy(np.ascontiguousarray(source)))


# ---------------------------------------------------------------------------------------------------
# dlib's serialization format, the parts this model uses

@dataclass
class DlibLayer:
    kind: str  # "con", "affine" or "fc"
    weight: np.ndarray  # con (N, K, r, c); affine gamma (C,); fc (inputs, outputs)
    bias: np.ndarray | None  # con (N,); affine beta (C,); fc None (fc_no_bias)
    stride: int = 1
    padding: int = 0


# A layer record starts with its version string, serialized as (length, bytes).
_LAYER_VERSION = re.compile(rb"\x01\x05(con_[456])|\x01\x07(affine_)|\x01\x08(affine_2)|\x01\x04(fc_[23])")


class _Reader:
    """Sequential reader of dlib's serialize.h primitives."""

    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data = data
        self.position = position

    def integer(self) -> int:
        """Control byte (bit 7: negative, low nibble: byte count), then that many little-endian bytes."""
        control = self.data[self.position]
        size = control & 0x0F
        if size == 0 or size > 8 or self.position + 1 + size > len(self.data):
            raise ModelError(f"bad integer at byte {self.position}")
        value = int.from_bytes(self.data[self.position + 1:self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if control & 0x80 else value

    def real(self) -> float:
        """float_details: mantissa * 2 ** exponent (inf/nan exponents are not used by this model)."""
        mantissa, exponent = self.integer(), self.integer()
        return math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        char = self.data[self.position:self.position + 1]
        self.position += 1
        if char not in (b"0", b"1"):
            raise ModelError(f"bad bool at byte {self.position - 1}")
        return char == b"1"

    def tensor(self) -> np.ndarray:
        """resizable_tensor version 2: num_samples, k, nr, nc, then float32 little-endian."""
        if self.integer() != 2:
            raise ModelError(f"unknown tensor version at byte {self.position}")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        end = self.position + 4 * count
        if end > len(self.data):
            raise ModelError("file ends inside a tensor (truncated?)")
        values = np.frombuffer(self.data, "<f4", count, self.position).reshape(shape)
        self.position = end
        return values.astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        if self.integer() != 1:
            raise ModelError(f"unknown alias_tensor version at byte {self.position}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def read_dlib_layers(data: bytes) -> list[DlibLayer]:
    """The convolution, affine and fc layers of a serialized dlib network, input side first (dlib writes
    a layer's sub-network before the layer itself)."""
    layers: list[DlibLayer] = []
    position = 0
    while (match := _LAYER_VERSION.search(data, position)) is not None:
        version = next(group for group in match.groups() if group).decode()
        reader = _Reader(data, match.end())
        try:
            if version.startswith("con_"):
                layers.append(_read_con(reader, version))
            elif version.startswith("affine_"):
                layers.append(_read_affine(reader, version))
            else:
                layers.append(_read_fc(reader, version))
        except (ModelError, IndexError, ValueError) as error:
            raise ModelError(f"not a dlib network file, or a damaged one ({version} at byte {match.start()}: "
                             f"{error})") from error
        position = reader.position
    return layers


def _read_con(reader: _Reader, version: str) -> DlibLayer:
    params = reader.tensor().reshape(-1)
    filters, rows, cols, stride_y, stride_x = (reader.integer() for _ in range(5))
    padding_y, _padding_x = reader.integer(), reader.integer()
    filter_shape, _bias_shape = reader.alias(), reader.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.real()
    use_bias = reader.boolean() if version in ("con_5", "con_6") else True
    if version == "con_6":
        reader.boolean()  # use_relu (a fused relu; not in this model)
    in_channels = filter_shape[1]
    weight_count = filters * in_channels * rows * cols
    if filter_shape != (filters, in_channels, rows, cols) or params.size != weight_count + filters * use_bias:
        raise ModelError(f"inconsistent convolution: {params.size} values for filters {filter_shape}")
    if stride_y != stride_x:
        raise ModelError("anisotropic strides are not supported")
    bias = params[weight_count:] if use_bias else np.zeros(filters, np.float32)
    return DlibLayer("con", params[:weight_count].reshape(filter_shape), bias, stride_y, padding_y)


def _read_affine(reader: _Reader, version: str) -> DlibLayer:
    params = reader.tensor().reshape(-1)
    gamma_shape, beta_shape = reader.alias(), reader.alias()
    reader.integer()  # mode: convolutional (per channel) in this model
    if version == "affine_2" and reader.boolean():
        raise ModelError("disabled affine layers are not supported")
    channels = math.prod(gamma_shape)
    if math.prod(beta_shape) != channels or params.size != 2 * channels:
        raise ModelError("inconsistent affine layer")
    return DlibLayer("affine", params[:channels], params[channels:])


def _read_fc(reader: _Reader, version: str) -> DlibLayer:
    outputs, inputs = reader.integer(), reader.integer()
    params = reader.tensor().reshape(-1)
    weight_shape, _bias_shape = reader.alias(), reader.alias()
    bias_mode = reader.integer()
    for _ in range(4):
        reader.real()
    if version == "fc_3":
        reader.boolean()  # use_bias, irrelevant in FC_NO_BIAS mode
    if bias_mode != 1:  # FC_NO_BIAS == 1 in dlib's fc_bias_mode
        raise ModelError("only fc_no_bias layers are supported")
    if weight_shape[:2] != (inputs, outputs) or params.size != inputs * outputs:
        raise ModelError(f"inconsistent fc layer: {params.size} values for {inputs}x{outputs}")
    return DlibLayer("fc", params.reshape(inputs, outputs), None)
