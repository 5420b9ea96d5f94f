"""The face decoder: its differentiable warp, the model, its losses, and training on real shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import speech2face as s2f
from speech2face.cli import main
from speech2face.losses import decoder_losses, unwarp_to_mean
from speech2face.models.face_decoder import DecodedFace, FaceDecoder, FaceDecoderConfig
from speech2face.models.warp import border_points, warp_image
from speech2face.train import DecoderTraining, train_decoder
from speech2face.train.decoder import cosine


def blob(size: int, centre: tuple[float, float], sigma: float = 2.0) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    cx, cy = centre[0] * size - 0.5, centre[1] * size - 0.5
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))[None, None]


def centroid(image: torch.Tensor) -> np.ndarray:
    size = image.shape[-1]
    y, x = torch.meshgrid(torch.arange(size, dtype=image.dtype), torch.arange(size, dtype=image.dtype),
                          indexing="ij")
    w = image[0, 0] / image[0, 0].sum()
    return np.array([float((w * x).sum() + 0.5) / size, float((w * y).sum() + 0.5) / size])


def test_identity_landmarks_give_the_identity_warp() -> None:
    image = torch.rand(2, 3, 64, 64)
    points = torch.rand(2, 20, 2) * 0.6 + 0.2
    assert (warp_image(image, points, points) - image).abs().max() < 1e-3


@pytest.mark.parametrize("size", [64, 160])  # 160: the spline is evaluated coarsely and interpolated
def test_the_warp_moves_a_known_pattern_to_a_known_place(size: int) -> None:
    source, target = torch.tensor([[[0.4, 0.5]]], dtype=torch.float64), torch.tensor([[[0.55, 0.42]]],
                                                                                      dtype=torch.float64)
    moved = warp_image(blob(size, (0.4, 0.5), sigma=size / 40), source, target)
    assert np.abs(centroid(moved) - target[0, 0].numpy()).max() < 1.5 / size
    corner = blob(size, (0.1, 0.1), sigma=size / 40)  # far from the moved point, by the fixed border
    assert np.abs(centroid(warp_image(corner, source, target)) - [0.1, 0.1]).max() < 1.5 / size


def test_the_warp_is_differentiable_to_image_and_points() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    source = (torch.rand(1, 3, 2, dtype=torch.float64) * 0.5 + 0.25).requires_grad_(True)
    target = (source.detach() + 0.05 * torch.randn(1, 3, 2, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(warp_image, (image, source, target), eps=1e-6, atol=1e-4)
    assert border_points().shape == (16, 2)


def test_decoder_shapes_and_start_at_the_mean_face() -> None:
    config = FaceDecoderConfig.small(feature_dim=128)
    decoder = FaceDecoder(config)
    mean = torch.rand(68, 2) * 0.5 + 0.25
    decoder.set_mean_landmarks(mean)
    out = decoder(torch.randn(3, 128))
    assert out.image.shape == (3, 3, 64, 64) and out.texture.shape == (3, 3, 64, 64)
    assert out.landmarks.shape == (3, 68, 2) and torch.allclose(out.landmarks, mean.expand(3, -1, -1))
    assert out.image.min() >= 0 and out.image.max() <= 1
    assert decoder.first_layer(torch.randn(2, 128)).shape == (2, 1000)
    assert FaceDecoder(FaceDecoderConfig.paper()).texture_fc.out_features == 14 * 14 * 256
    with pytest.raises(ValueError, match="multiple of 16"):
        FaceDecoderConfig(image_size=100)


def test_save_and_load_keep_the_mean_face(tmp_path: Path) -> None:
    decoder = FaceDecoder(FaceDecoderConfig.small(feature_dim=16))
    decoder.set_mean_landmarks(torch.rand(68, 2))
    decoder.save_pretrained(tmp_path)
    again = FaceDecoder.from_pretrained(tmp_path)
    features = torch.randn(2, 16)
    assert torch.equal(again.mean_landmarks, decoder.mean_landmarks)
    assert torch.allclose(again(features).image, decoder(features).image)


def test_losses_are_zero_for_a_perfect_decode() -> None:
    torch.manual_seed(0)
    faces = torch.rand(2, 3, 64, 64)
    mean = torch.rand(68, 2) * 0.5 + 0.25
    landmarks = mean + 0.01 * torch.randn(2, 68, 2)
    texture = unwarp_to_mean(faces, landmarks, mean)
    perfect = DecodedFace(image=faces, landmarks=landmarks, texture=texture)
    losses = decoder_losses(perfect, faces, landmarks, mean, embed=lambda x: x.flatten(1))
    assert all(float(value) < 1e-6 for value in losses.values())
    shifted = DecodedFace(image=faces.flip(0), landmarks=landmarks + 0.1, texture=texture.flip(0))
    worse = decoder_losses(shifted, faces, landmarks, mean, embed=lambda x: x.flatten(1))
    assert abs(float(worse["landmarks"]) - 0.01) < 1e-6 and all(float(v) > 1e-3 for v in worse.values())


def test_training_on_shards_learns_and_resumes(prepared: Path, tmp_path: Path) -> None:
    settings = DecoderTraining(steps=40, batch_size=8, log_every=10, checkpoint_every=20, eval_every=40, flip=0.0)
    result = train_decoder(prepared, tmp_path / "run", settings, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert losses[-1] < 0.85 * losses[0], losses  # in 40 steps with the learning rate decaying to 1 %
    held = result["held_out"]
    assert held["faces"]["speakers"] >= 2
    for name in ("decoder", "mean_face"):
        assert {"landmark_error_iod_pct", "pixel_l1", "identity_cosine", "R@1", "chance_R@1"} <= set(held[name])
    assert all(np.isfinite(v) for row in (held["decoder"], held["mean_face"]) for v in row.values())
    assert (tmp_path / "run" / "samples" / "step_000040.png").is_file()
    decoder = FaceDecoder.from_pretrained(tmp_path / "run")
    assert decoder.config.feature_dim == 128

    longer = DecoderTraining(steps=50, batch_size=8, log_every=10, checkpoint_every=20, eval_every=50, flip=0.0)
    train_decoder(prepared, tmp_path / "run", longer, resume=True, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row] == [10, 20, 30, 40, 50]  # continued, not restarted
    rates = [row["lr"] for row in rows if "loss" in row]  # after resuming: the cosine of the LONGER run
    assert rates == pytest.approx([1e-3 * cosine(step, 40) for step in (10, 20, 30, 40)] + [1e-3 * cosine(50, 50)],
                                  rel=1e-6)
    with pytest.raises(s2f.DataError, match="already holds a trained decoder"):
        train_decoder(prepared, tmp_path / "run", settings, progress=False)


def test_cli(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-decoder", "--data", str(prepared), "--out", str(tmp_path / "r"), "--steps", "4",
                 "--batch-size", "4", "--eval-every", "4", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "mean_face" in printed and "R@1" in printed
    assert main(["train-decoder", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "error" in capsys.readouterr().err
