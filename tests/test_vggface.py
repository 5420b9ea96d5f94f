"""VGG-Face: the architecture, and the loader on generated checkpoints (the real weights are not on PyPI)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import speech2face as s2f
from speech2face import faces
from speech2face.faces.vggface import FC7_DIM, NUM_IDENTITIES, WEIGHTS_ENV, VggFace, convert_vggface

# VGG-16 with a 2622-way fc8: 138,357,544 - (4096 + 1) * 1000 + (4096 + 1) * 2622
VGG_FACE_PARAMETERS = 145_002_878


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[VggFace, Path]:
    """A VGG-Face with random weights, saved as the public PyTorch release is (a plain state dict)."""
    torch.manual_seed(0)
    model = VggFace().eval()
    path = tmp_path_factory.mktemp("vggface") / "vgg_face_dag.pth"
    torch.save(model.state_dict(), path)
    return model, path


def faces_batch(count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 224, 224, 3), dtype=np.uint8)


def test_architecture_is_vgg16_with_2622_identities() -> None:
    with torch.device("meta"):
        model = VggFace()
    assert sum(p.numel() for p in model.parameters()) == VGG_FACE_PARAMETERS
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1_1.weight", "conv1_1.bias"] and keys[-2:] == ["fc8.weight", "fc8.bias"]
    assert len([k for k in keys if k.startswith("conv")]) == 26  # 13 convolutions
    assert model.fc6.in_features == 512 * 7 * 7 and model.fc8.out_features == NUM_IDENTITIES


def test_fc7_and_logits_shapes(generated: tuple[VggFace, Path]) -> None:
    model, _ = generated
    with torch.no_grad():
        fc7 = model(torch.rand(2, 3, 224, 224))
        assert fc7.shape == (2, FC7_DIM) and (fc7 >= 0).all()  # after fc7's ReLU
        assert model.logits(fc7).shape == (2, NUM_IDENTITIES)
        assert model(torch.rand(1, 3, 160, 160)).shape == (1, FC7_DIM)  # other sizes are resized


@pytest.mark.parametrize("form", ["pth", "safetensors", "wrapped"])
def test_encoder_loads_a_checkpoint_and_embeds_like_the_module(generated: tuple[VggFace, Path], tmp_path: Path,
                                                              form: str) -> None:
    model, path = generated
    if form == "safetensors":
        path = convert_vggface(path, tmp_path / "vggface.safetensors")
    elif form == "wrapped":  # {"state_dict": ...} as training scripts save it
        torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
        path = tmp_path / "wrapped.pth"
    encoder = faces.get_encoder("vggface", weights=path, device="cpu")
    assert encoder.name == "vggface" and encoder.dim == FC7_DIM
    batch = faces_batch()
    with torch.no_grad():
        expected = model(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(encoder.embed(batch), expected, rtol=1e-4, atol=1e-4)
    assert isinstance(encoder.module, VggFace)


def test_weights_from_the_environment(generated: tuple[VggFace, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(generated[1]))
    assert faces.get_encoder("vggface", device="cpu").embed(faces_batch(1)).shape == (1, FC7_DIM)


def test_without_weights_the_error_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(s2f.ModelError, match=f"vggface needs its weights.*{WEIGHTS_ENV}"):
        faces.get_encoder("vggface")


def test_bad_weight_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(s2f.ModelError, match="no such weights file"):
        faces.get_encoder("vggface", weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(s2f.ModelError, match="unreadable weights"):
        faces.get_encoder("vggface", weights=garbage)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1_1.weight": torch.zeros(64, 3, 5, 5), "extra": torch.zeros(1)}, str(wrong))
    with pytest.raises(s2f.ModelError, match=r"not VGG-Face weights \(.*missing.*unexpected: extra.*wrong shape"):
        faces.get_encoder("vggface", weights=wrong)


class Exploit:
    def __reduce__(self) -> tuple:
        return (print, ("pickle code ran",))


def test_pickles_that_run_code_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"conv1_1.weight": Exploit()}, handle, protocol=2)
    with pytest.raises(s2f.ModelError, match="unreadable weights"):
        faces.get_encoder("vggface", weights=path)
    assert "pickle code ran" not in capsys.readouterr().out
