"""ONNX export checked against torch with onnxruntime; the tar export round-trips through from_pretrained."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face import fit_length, load_audio, spectrogram
from speech2face.cli import main
from speech2face.export import SpectrogramConv
from speech2face.models.warp import solve_by_elimination, tps_fit
from speech2face.pipeline import Speech2Face


def test_the_convolutional_spectrogram_equals_the_fft_one() -> None:
    wave = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 96_000)).astype(np.float32))
    # |x|^0.3 is steep near 0, so float32 rounding differences of tiny bins grow there
    np.testing.assert_allclose(SpectrogramConv()(wave).numpy(), spectrogram(wave).numpy(), atol=1e-3)


def test_elimination_solves_the_spline_system_like_linalg(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    control = torch.rand(2, 84, 2, dtype=torch.float64)
    values = control + 0.01 * torch.randn_like(control)
    by_linalg = tps_fit(control, values)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    np.testing.assert_allclose(tps_fit(control, values).numpy(), by_linalg.numpy(), atol=1e-8)
    a, b = torch.randn(3, 5, 5, dtype=torch.float64), torch.randn(3, 5, 2, dtype=torch.float64)
    np.testing.assert_allclose(solve_by_elimination(a, b).numpy(), torch.linalg.solve(a, b).numpy(), atol=1e-9)


@pytest.mark.parametrize("backbone", ["tiny_model", "speaker_model"])  # the paper's CNN; the speaker encoder
def test_onnx_runtime_matches_torch(backbone: str, spoken: dict[str, Path], tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    ort = pytest.importorskip("onnxruntime")
    folder = request.getfixturevalue(backbone)
    out = tmp_path / "model.onnx"
    assert main(["export", "--model", str(folder), "--format", "onnx", "--out", str(out)]) == 0
    model = Speech2Face.from_pretrained(folder, device="cpu")
    waves = np.stack([fit_length(load_audio(spoken["short"])), fit_length(load_audio(spoken["long"]))])
    image, landmarks, feature = ort.InferenceSession(str(out)).run(None, {"wave": waves})
    expected = model.features([w[None] for w in waves])
    np.testing.assert_allclose(feature, expected, rtol=1e-3, atol=1e-4)
    with torch.no_grad():
        decoded = model.decoder(torch.from_numpy(expected))
    np.testing.assert_allclose(landmarks, decoded.landmarks.numpy(), atol=1e-4)
    assert np.abs(image - decoded.image.numpy()).max() < 2e-3  # the solve differs in float32 rounding


def test_tar_export_round_trips(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "tiny.tar.gz"
    assert main(["export", "--model", str(tiny_model), "--format", "tar", "--out", str(archive)]) == 0
    assert "sha256" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"speech2face.json", "voice/model.safetensors", "decoder/config.json"} <= names
