"""The face decoder on photos: augmentation with recomputed teacher features, training on photo and video
shards together, and the held-out photo evaluation against its baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face import faces
from speech2face.cli import main
from speech2face.data import read_shard
from speech2face.data.dataset import collate
from speech2face.errors import DataError
from speech2face.evaluate import metrics as m
from speech2face.evaluate.photos import DecoderEvaluationSettings, evaluate_decoder, photo_set
from speech2face.train import DecoderTraining
from speech2face.train.augment import MIRROR, Augmentation, augment_batch, mirror_landmarks, morph_partners
from speech2face.train.decoder import training_item


def photo_batch(photo_shards: Path, count: int = 8) -> dict[str, torch.Tensor]:
    samples = [s for shard in sorted((photo_shards / "shards").glob("train-*.tar")) for s in read_shard(shard)]
    return collate([training_item(sample | {"epoch": 0}, seed=0) for sample in samples[:count]])


def test_the_mirror_swaps_sides_and_matches_the_landmarks_of_a_flipped_real_face(photo_shards: Path) -> None:
    assert (MIRROR[MIRROR] == np.arange(68)).all() and sorted(MIRROR) == list(range(68))
    assert MIRROR[0] == 16 and MIRROR[36] == 45 and MIRROR[30] == 30 and MIRROR[48] == 54
    batch = photo_batch(photo_shards, 4)
    for face, points in zip(batch["face"].numpy(), batch["landmarks"], strict=True):
        flipped = np.ascontiguousarray(face[:, ::-1])
        box = faces.detect(flipped)[0]
        found = (faces.landmarks(flipped, box) + 0.5) / flipped.shape[1]
        expected = mirror_landmarks(points[None])[0].numpy()
        assert np.abs(found - expected).mean() < 0.015  # within ~3 px of 224: the same points, renumbered


def test_augmented_faces_get_the_teachers_feature(photo_shards: Path) -> None:
    teacher = faces.get_encoder("dlib-torch")
    batch = photo_batch(photo_shards)
    same = augment_batch(batch, Augmentation(flip=0, morph=0, colour=0), teacher)
    assert all(torch.equal(a, b) for a, b in zip(same, (batch["face"], batch["landmarks"], batch["feature"]),
                                                 strict=True))
    flipped, points, features = augment_batch(batch, Augmentation(flip=1.0), teacher)
    assert torch.equal(flipped, batch["face"].flip(2))
    assert np.allclose(features.numpy(), teacher.embed(flipped.numpy()), atol=1e-5)
    assert not np.allclose(features.numpy(), batch["feature"].numpy(), atol=1e-3)
    assert torch.allclose(points, mirror_landmarks(batch["landmarks"]))
    jittered, _, features = augment_batch(batch, Augmentation(flip=0, colour=1.0), teacher)
    assert (jittered != batch["face"]).any() and np.allclose(features.numpy(), teacher.embed(jittered.numpy()),
                                                              atol=1e-5)


def test_morphs_blend_two_faces_of_the_same_sex_only(photo_shards: Path) -> None:
    assert list(morph_partners(np.array([1, 0, 1, -1, 0]), np.ones(5, bool))) == [2, 4, 0, -1, 1]
    assert list(morph_partners(np.array([1, 0]), np.ones(2, bool))) == [-1, -1]
    batch = photo_batch(photo_shards)
    teacher = faces.get_encoder("dlib-torch")
    morphed, points, features = augment_batch(batch, Augmentation(flip=0, morph=1.0), teacher)
    partners = morph_partners(batch["male"].numpy(), np.ones(len(points), bool))
    assert (partners >= 0).sum() >= 2  # real photos of both sexes among the first eight
    for index, partner in enumerate(partners):
        if partner < 0:
            assert torch.equal(morphed[index], batch["face"][index])
            continue
        a, b = batch["landmarks"][index], batch["landmarks"][partner]
        mix = ((points[index] - b) / (a - b)).median()  # the blend of the two faces' landmarks
        assert 0.29 < float(mix) < 0.71
        assert np.allclose(features[index].numpy(), teacher.embed(morphed[index][None].numpy())[0], atol=1e-5)


def test_train_decoder_on_photo_and_video_shards_together(photo_shards: Path, prepared: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train-decoder", "--data", str(photo_shards), "--data", str(prepared), "--out", str(out),
                 "--config", "medium", "--steps", "3", "--batch-size", "4", "--eval-every", "3", "--morph", "0.5",
                 "--colour", "0.5", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "decoder" in printed and "mean_face" in printed
    assert json.loads((out / "config.json").read_text())["config"]["image_size"] == 128
    assert json.loads((out / "training.json").read_text())["teacher"] == "dlib-torch"
    held = json.loads((out / "eval.json").read_text())["held_out"]["faces"]
    photo_val = len(photo_set([photo_shards], "val")["identities"])
    assert held["speakers"] > photo_val  # held-out faces from both folders


def test_the_held_out_photo_evaluation_beside_its_baselines(photo_shards: Path, decoder_run: Path,
                                                            tmp_path: Path) -> None:
    metrics = evaluate_decoder(decoder_run, [photo_shards], tmp_path / "report", DecoderEvaluationSettings(pool=100))
    pool = metrics["pool"]
    assert pool == metrics["identities"] >= 4
    mean = metrics["mean_face"]["scorer"]
    assert mean["R@1"] == pytest.approx(1 / pool) and mean["mean_rank"] == pytest.approx((pool + 1) / 2)
    test, train = photo_set([photo_shards], "test"), photo_set([photo_shards], "train", per_identity=None)
    nearest = np.array([np.argmin([np.linalg.norm(f - g) for g in train["features"]]) for f in test["features"]])
    expected = m.landmark_error_iod(train["landmarks"][nearest], test["landmarks"]).mean()
    if metrics["set_aside_likely_seen"] == 0:
        assert metrics["nearest_training_face"]["landmark_error_iod_pct"] == pytest.approx(expected, rel=1e-5)
    for row in ("decoder", "nearest_training_face", "mean_face"):
        judged = metrics[row]["judge"]
        assert 0 <= judged["sex_agreement"] <= 1 and judged["age_mean_abs_difference"] >= 0
    assert (tmp_path / "report" / "gallery.png").stat().st_size > 1000
    assert "nearest_training_face" in (tmp_path / "report" / "report.html").read_text()
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["chance"]["R@1"] == pytest.approx(1 / pool)


def test_training_settings_reject_impossible_probabilities() -> None:
    with pytest.raises(DataError, match="flip"):
        DecoderTraining(flip=1.5)
    assert DecoderTraining().augmentation().any()


def test_training_item_draws_change_per_epoch_not_per_read(photo_shards: Path) -> None:
    sample = next(read_shard(next((photo_shards / "shards").glob("train-*.tar"))))
    first = training_item(sample | {"epoch": 0}, seed=0)["draws"]
    assert np.array_equal(first, training_item(sample | {"epoch": 0}, seed=0)["draws"])
    assert not np.array_equal(first, training_item(sample | {"epoch": 1}, seed=0)["draws"])
