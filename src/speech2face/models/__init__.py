"""Models with a config dataclass and a save_pretrained / from_pretrained pair."""

from .pretrained import PretrainedModel
from .voice_encoder import VoiceEncoder, VoiceEncoderConfig

__all__ = ["PretrainedModel", "VoiceEncoder", "VoiceEncoderConfig"]
