"""FaceNet in PyTorch against the frozen TensorFlow graph it was read from (run by OpenCV 5's dnn in a
separate process: the project itself pins OpenCV < 5), on real faces; its reader on damaged files."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import speech2face as s2f
from speech2face import faces
from speech2face.faces.facenet import INPUT_SIZE, FaceNet, graph_path

OPENCV5 = "opencv-python-headless==5.0.0.93"
RUN_GRAPH = """
import sys, numpy as np, cv2
assert cv2.__version__.startswith("5"), cv2.__version__
net = cv2.dnn.readNetFromTensorflow(sys.argv[1])
inputs = np.load(sys.argv[2])
outputs = []
for one in inputs:
    net.setInput(one[None])
    outputs.append(net.forward().reshape(-1))
np.save(sys.argv[3], np.stack(outputs))
"""


@pytest.fixture(scope="module")
def opencv5(asset_dir: Path) -> Path:
    """OpenCV 5 unpacked into the test-asset cache (fetched once from PyPI), for a reference run only."""
    root = asset_dir / "opencv5"
    if not (root / "cv2").is_dir():
        wheels = root.parent / "opencv5-wheel"
        result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
                                 ":all:", OPENCV5, "-d", str(wheels)], capture_output=True, text=True)
        found = sorted(wheels.glob("opencv_python_headless-5*.whl"))
        if result.returncode != 0 or not found:
            pytest.fail(f"could not fetch {OPENCV5} from the package registry: {result.stderr}")
        with zipfile.ZipFile(found[0]) as wheel:
            wheel.extractall(root)
    return root


@pytest.fixture(scope="module")
def crops(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical 224 px crops of the real portraits."""
    out = {}
    for name, image in photos.items():
        box = faces.detect(image)[0]
        out[name] = faces.align(image, faces.landmarks(image, box), size=224).image
    return out


@pytest.fixture(scope="module")
def facenet() -> FaceNet:
    return FaceNet.from_graph()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_port_matches_the_graph_run_by_opencv5(facenet: FaceNet, crops: dict[str, np.ndarray], opencv5: Path,
                                               tmp_path: Path) -> None:
    import cv2

    chips = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA) for c in crops.values()])
    images = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ours = facenet(images).numpy()
        whitened = facenet.prewhiten(images).numpy()
    np.save(tmp_path / "in.npy", whitened)
    (tmp_path / "run.py").write_text(RUN_GRAPH)
    run = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(graph_path()), str(tmp_path / "in.npy"),
                          str(tmp_path / "out.npy")], env=os.environ | {"PYTHONPATH": str(opencv5)},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    reference = np.load(tmp_path / "out.npy")
    assert reference.shape == ours.shape == (len(crops), 512)
    assert cosine(ours, reference).min() >= 0.9999
    assert np.abs(ours - reference).max() < 1e-4


def test_same_person_is_nearer_than_different_people(crops: dict[str, np.ndarray]) -> None:
    encoder = faces.get_encoder("facenet", device="cpu")
    assert encoder.dim == 512 and "facenet" in faces.available_encoders()
    names = list(crops)
    embedded = dict(zip(names, encoder.embed(np.stack([crops[n] for n in names])), strict=True))
    obama = ("obama", "obama2", "obama3")
    same = [float(embedded[a] @ embedded[b]) for i, a in enumerate(obama) for b in obama[i + 1:]]
    different = [float(embedded[a] @ embedded[b]) for i, a in enumerate(names) for b in names[i + 1:]
                 if not (a in obama and b in obama)]
    assert min(same) > max(different), (same, different)
    assert np.allclose(np.linalg.norm(list(embedded.values()), axis=1), 1, atol=1e-5)


def test_module_resizes_inside_and_passes_gradients(facenet: FaceNet, crops: dict[str, np.ndarray]) -> None:
    import cv2

    crop = crops["astronaut"]
    large = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    small = torch.from_numpy(cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA))
    small = small.permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        assert cosine(facenet(large).numpy(), facenet(small).numpy())[0] > 0.99  # two resamplings, one face
    image = large.clone().requires_grad_(True)
    facenet(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_damaged_graphs_are_refused_in_one_line(tmp_path: Path) -> None:
    data = graph_path().read_bytes()
    (tmp_path / "truncated.pb").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.pb").write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, np.uint8).tobytes())
    for name in ("truncated.pb", "garbage.pb"):
        with pytest.raises(s2f.ModelError):
            FaceNet.from_graph(tmp_path / name)
    with pytest.raises(s2f.ModelError, match="unreadable"):
        FaceNet.from_graph(tmp_path / "missing.pb")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_facenet_on_cuda_matches_cpu(crops: dict[str, np.ndarray]) -> None:
    batch = np.stack(list(crops.values()))
    on_cpu = faces.get_encoder("facenet", device="cpu").embed(batch)
    on_gpu = faces.get_encoder("facenet", device="cuda").embed(batch)
    assert cosine(on_cpu, on_gpu).min() > 0.999


def test_facenet_is_a_teacher_wherever_an_encoder_is_named(prepared: Path, tmp_path: Path) -> None:
    """The decoder's perceptual loss through FaceNet (gradients reach the decoder through its resize)."""
    from speech2face.train import DecoderTraining, train_decoder

    result = train_decoder(prepared, tmp_path / "decoder", DecoderTraining(steps=2, batch_size=4, eval_every=2,
                                                                          encoder="facenet"), progress=False)
    rows = [line for line in (tmp_path / "decoder" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert rows and '"perceptual"' in rows[-1]
    # judged by FaceNet too: after two steps the decoded faces are noise, so the cosine may be just below 0
    assert -1 <= result["held_out"]["decoder"]["identity_cosine"] <= 1
