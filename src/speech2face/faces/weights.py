"""Where the offline face models live: the `face_recognition_models` package's `models/` folder,
found with importlib (that package's own __init__ imports pkg_resources, which recent setuptools lacks).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..package_data import package_file

DLIB_MODELS = {
    "hog": None,  # built into dlib
    "mmod": "mmod_human_face_detector.dat",
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
}
INSTALL_HINT = "install the face extras: pip install 'speech2face[data]'"


def require_dlib() -> object:
    try:
        import dlib
    except ImportError as error:
        raise ModelError(f"dlib is not installed; {INSTALL_HINT}") from error
    return dlib


def dlib_model_path(name: str) -> Path:
    """The file of one of dlib's pretrained models (see DLIB_MODELS), or a clear ModelError."""
    filename = DLIB_MODELS[name]
    if filename is None:
        raise ValueError(f"{name} has no model file")
    return package_file("face_recognition_models", "models", filename, distribution="face_recognition_models",
                        install_hint=INSTALL_HINT)
