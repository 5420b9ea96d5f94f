"""Training: one loop (`loop.fit`: schedule, checkpoints, resume, DDP) serving two objectives, the face
decoder (`decoder.py`, `s2f train-decoder`) and the voice encoder (`voice.py`, `s2f train`)."""

from .decoder import DecoderTraining, train_decoder
from .loop import TrainingSettings
from .voice import VoiceTraining, train_voice

__all__ = ["DecoderTraining", "TrainingSettings", "VoiceTraining", "train_decoder", "train_voice"]
