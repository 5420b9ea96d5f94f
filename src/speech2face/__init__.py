"""speech2face: learn what a person looks like from their voice (Oh et al., CVPR 2019).

The public API; everything else is reached through its submodules (`speech2face.models`, ...).
"""

import importlib

from .errors import AudioError, DataError, FaceNotFound, ModelError, Speech2FaceError
from .pipeline import Prediction, Speech2Face
from .voice.audio import CLIP_FRAMES, CLIP_SAMPLES, SAMPLE_RATE, fit_length, load_audio, spectrogram

__version__ = "0.1.0"

# `s2f.faces.detect(...)`, `s2f.evaluate.retrieval(...)` (docs/architecture.md): submodules load on first use, so
# `import speech2face` stays light (no dlib, no OpenCV until a face is needed).
_SUBMODULES = ("data", "evaluate", "faces", "models", "registry", "synth")


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CLIP_FRAMES",
    "CLIP_SAMPLES",
    "SAMPLE_RATE",
    "AudioError",
    "DataError",
    "FaceNotFound",
    "ModelError",
    "Prediction",
    "Speech2Face",
    "Speech2FaceError",
    "__version__",
    "fit_length",
    "load_audio",
    "spectrogram",
]
