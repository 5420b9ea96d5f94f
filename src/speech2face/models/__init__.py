"""Models with a config dataclass and a save_pretrained / from_pretrained pair."""

from __future__ import annotations

import os

import torch

from .face_decoder import DecodedFace, FaceDecoder, FaceDecoderConfig
from .pretrained import PretrainedModel, read_header
from .speaker_voice import SpeakerVoiceConfig, SpeakerVoiceEncoder
from .voice_encoder import VoiceEncoder, VoiceEncoderConfig

VOICE_BACKBONES = ("paper", "speaker")  # s2f train --voice-backbone: the paper's CNN, or a pretrained speaker encoder
_VOICE_MODELS: dict[str, type[PretrainedModel]] = {VoiceEncoder.model_type: VoiceEncoder,
                                                   SpeakerVoiceEncoder.model_type: SpeakerVoiceEncoder}


def new_voice_encoder(backbone: str, size: str, output_dim: int, finetune: bool = False) -> PretrainedModel:
    """An untrained voice model: the paper's CNN of size `size`, or the pretrained speaker encoder + a head."""
    if backbone == "paper":
        if finetune:
            raise ValueError("--finetune-backbone needs --voice-backbone speaker (the paper's CNN learns from scratch)")
        return VoiceEncoder(VoiceEncoderConfig.named(size, output_dim))
    if backbone == "speaker":
        return SpeakerVoiceEncoder.from_speaker_encoder(SpeakerVoiceConfig(output_dim=output_dim, finetune=finetune))
    raise ValueError(f"--voice-backbone must be {' or '.join(VOICE_BACKBONES)}; got {backbone!r}")


def load_voice_encoder(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> PretrainedModel:
    """Whichever voice model a folder holds (its config.json names the type), loaded strictly."""
    header = read_header(directory)
    kind = header.get("model_type") if isinstance(header, dict) else None
    return _VOICE_MODELS.get(str(kind), VoiceEncoder).from_pretrained(directory, map_location)


__all__ = ["VOICE_BACKBONES", "DecodedFace", "FaceDecoder", "FaceDecoderConfig", "PretrainedModel",
           "SpeakerVoiceConfig", "SpeakerVoiceEncoder", "VoiceEncoder", "VoiceEncoderConfig", "load_voice_encoder",
           "new_voice_encoder"]
