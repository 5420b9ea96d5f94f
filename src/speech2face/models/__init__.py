"""Models with a config dataclass and a save_pretrained / from_pretrained pair."""

from .face_decoder import DecodedFace, FaceDecoder, FaceDecoderConfig
from .pretrained import PretrainedModel
from .voice_encoder import VoiceEncoder, VoiceEncoderConfig

__all__ = ["DecodedFace", "FaceDecoder", "FaceDecoderConfig", "PretrainedModel", "VoiceEncoder",
           "VoiceEncoderConfig"]
