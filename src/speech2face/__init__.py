"""speech2face: learn what a person looks like from their voice (Oh et al., CVPR 2019).

The public API; everything else is reached through its submodules (`speech2face.models`, ...).
"""

from .audio import CLIP_FRAMES, CLIP_SAMPLES, SAMPLE_RATE, fit_length, load_audio, spectrogram
from .errors import AudioError, DataError, FaceNotFound, ModelError, Speech2FaceError

__version__ = "0.1.0"

__all__ = [
    "CLIP_FRAMES",
    "CLIP_SAMPLES",
    "SAMPLE_RATE",
    "AudioError",
    "DataError",
    "FaceNotFound",
    "ModelError",
    "Speech2FaceError",
    "__version__",
    "fit_length",
    "load_audio",
    "spectrogram",
]
