"""Weights found inside installed packages: one helper, one-line errors that say what to install."""

from __future__ import annotations

import pytest

from speech2face import ModelError
from speech2face.package_data import package_file


def test_a_file_of_an_installed_package_is_found() -> None:
    path = package_file("silero_vad", "data", "silero_vad_16k.safetensors", distribution="silero-vad",
                        install_hint="pip install silero-vad")
    assert path.is_file() and path.parent.name == "data"
    assert package_file("speech2face", "synth", "photos", distribution="speech2face", install_hint="-").is_dir()


def test_a_missing_package_or_file_is_one_line() -> None:
    with pytest.raises(ModelError, match=r"^no-such-dist is not installed; pip install no-such-dist$"):
        package_file("no_such_package_here", "x.bin", distribution="no-such-dist",
                     install_hint="pip install no-such-dist")
    with pytest.raises(ModelError, match="missing from the silero-vad package; reinstall it"):
        package_file("silero_vad", "data", "absent.onnx", distribution="silero-vad", install_hint="-")
