"""The PyTorch port of dlib's face ResNet against dlib itself, on real faces; its weight reader on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import speech2face as s2f
from speech2face import faces
from speech2face.faces.dlib_resnet import DlibResNet, add_zero_padded, read_dlib_layers
from speech2face.faces.weights import dlib_model_path


@pytest.fixture(scope="module")
def real_crops(photos: dict[str, np.ndarray], carphone_frames: list[np.ndarray]) -> np.ndarray:
    """150x150 aligned crops of every portrait and of the talking-head video's frames."""
    images = list(photos.values()) + carphone_frames[::3]
    crops = []
    for image in images:
        boxes = faces.detect(image)
        if boxes:
            crops.append(faces.align(image, faces.landmarks(image, boxes[0]), size=150).image)
    assert len(crops) >= 10
    return np.stack(crops)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_torch_port_matches_dlib_on_real_faces(real_crops: np.ndarray) -> None:
    reference = faces.get_encoder("dlib").embed(real_crops)
    ported = faces.get_encoder("dlib-torch", device="cpu").embed(real_crops)
    assert cosine(reference, ported).min() >= 0.999
    assert np.abs(reference - ported).max() < 1e-3  # dlib's same-person threshold is 0.6


def test_the_module_is_differentiable_on_float_images(real_crops: np.ndarray) -> None:
    encoder = faces.get_encoder("dlib-torch", device="cpu")
    module = encoder.module
    assert isinstance(module, DlibResNet)
    images = torch.from_numpy(real_crops[:2]).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    out = module(images)
    out.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    np.testing.assert_allclose(out.detach().numpy(), encoder.embed(real_crops[:2]), atol=1e-4)
    # a 224 crop (the decoder's size) is resized inside the module; descriptors stay put
    big = torch.nn.functional.interpolate(images.detach(), size=224, mode="bilinear", align_corners=False)
    assert torch.linalg.vector_norm(module(big) - out.detach(), dim=1).max() < 0.15


def test_weight_reader_finds_every_layer() -> None:
    layers = read_dlib_layers(dlib_model_path("resnet").read_bytes())
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    assert layers[0].weight.shape == (32, 3, 7, 7) and layers[0].stride == 2 and layers[0].padding == 0
    assert layers[-1].weight.shape == (256, 128)
    total = sum(layer.weight.size + (0 if layer.bias is None else layer.bias.size) for layer in layers)
    assert total == sum(p.numel() for p in DlibResNet().parameters())


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_weight_files_are_a_clear_error(tmp_path: Path, damage: str) -> None:
    data = dlib_model_path("resnet").read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": np.random.default_rng(0).bytes(10_000),
               "empty": b""}[damage]
    path = tmp_path / "model.dat"
    path.write_bytes(damaged)
    with pytest.raises(s2f.ModelError):
        DlibResNet.from_dlib(path)


def test_zero_padded_add_matches_dlib_semantics() -> None:
    a = torch.ones(1, 2, 4, 4)
    b = torch.full((1, 3, 3, 3), 2.0)
    total = add_zero_padded(a, b)
    assert total.shape == (1, 3, 4, 4)
    assert total[0, 0, 0, 0] == 3 and total[0, 0, 3, 3] == 1 and total[0, 2, 0, 0] == 2 and total[0, 2, 3, 3] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_port_on_cuda_matches_cpu(real_crops: np.ndarray) -> None:
    on_cpu = faces.get_encoder("dlib-torch", device="cpu").embed(real_crops)
    on_gpu = faces.get_encoder("dlib-torch", device="cuda").embed(real_crops)
    assert cosine(on_cpu, on_gpu).min() >= 0.999
