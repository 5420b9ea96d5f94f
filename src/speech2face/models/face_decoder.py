"""The face decoder (Cole et al. 2017, as Speech2Face uses it): face feature -> a canonical frontal face.

    feature (B, D) -> fc1 (D -> code_dim, the "first layer" the voice-encoder loss reads) -> ReLU = code
    code -> landmark head (MLP) -> 68 landmarks, as offsets from the mean face's landmarks
    code -> texture head: FC -> (base, S/16, S/16) -> 4 x [ConvTranspose 5x5 stride 2, ReLU], channels
            max(base / 2^i, min_channels) -> 1x1 conv -> sigmoid = texture (B, 3, S, S) in the MEAN geometry
    image = the texture warped by a thin-plate spline from the mean landmarks onto the predicted ones
            (`warp.warp_image`, border fixed), differentiable to both heads.

Landmarks are in normalised crop coordinates: (x, y) in [0, 1], a pixel's centre at (col + 0.5) / S.
The mean landmarks are a buffer set from the training data (`set_mean_landmarks`) and saved with the
weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .pretrained import DataclassConfig, PretrainedModel
from .warp import warp_image

UPSAMPLINGS = 4  # S/16 -> S


@dataclass(frozen=True)
class FaceDecoderConfig(DataclassConfig):
    feature_dim: int = 4096
    code_dim: int = 1000
    landmark_hidden: int = 512
    image_size: int = 224
    base_channels: int = 256
    min_channels: int = 32
    num_landmarks: int = 68

    def __post_init__(self) -> None:
        if self.image_size % 16 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 16, at least 32; got {self.image_size}")
        if min(self.feature_dim, self.code_dim, self.landmark_hidden, self.base_channels, self.min_channels) < 1:
            raise ValueError("widths must be positive")

    @classmethod
    def paper(cls, feature_dim: int = 4096) -> FaceDecoderConfig:
        """The paper's decoder: 224 px, 14x14x256 start, a 1000-d first layer."""
        return cls(feature_dim=feature_dim)

    @classmethod
    def small(cls, feature_dim: int = 128) -> FaceDecoderConfig:
        """For CPU work: 64 px, narrower texture head, same code."""
        return cls(feature_dim=feature_dim, image_size=64, base_channels=128, landmark_hidden=256)

    @classmethod
    def medium(cls, feature_dim: int = 128) -> FaceDecoderConfig:
        """128 px, trained on face photos on a CPU in well under an hour (docs/face_decoder.md)."""
        return cls(feature_dim=feature_dim, image_size=128, base_channels=256, landmark_hidden=256)

    @classmethod
    def named(cls, name: str, feature_dim: int) -> FaceDecoderConfig:
        presets = {"paper": cls.paper, "medium": cls.medium, "small": cls.small}
        if name not in presets:
            raise ValueError(f"unknown face decoder config {name!r}; choose from {', '.join(presets)}")
        return presets[name](feature_dim)


@dataclass
class DecodedFace:
    image: torch.Tensor  # (B, 3, S, S) in [0, 1]
    landmarks: torch.Tensor  # (B, 68, 2) normalised
    texture: torch.Tensor  # (B, 3, S, S), the face in the mean geometry


class FaceDecoder(PretrainedModel):
    """Face feature (B, feature_dim) -> DecodedFace."""

    config_class = FaceDecoderConfig
    model_type = "face_decoder"

    def __init__(self, config: FaceDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.fc1 = nn.Linear(config.feature_dim, config.code_dim)
        self.landmark_head = nn.Sequential(
            nn.Linear(config.code_dim, config.landmark_hidden), nn.ReLU(inplace=True),
            nn.Linear(config.landmark_hidden, config.num_landmarks * 2))
        nn.init.zeros_(self.landmark_head[-1].weight)  # start at the mean face
        nn.init.zeros_(self.landmark_head[-1].bias)
        start = config.image_size // 2**UPSAMPLINGS
        self.texture_fc = nn.Linear(config.code_dim, config.base_channels * start * start)
        layers: list[nn.Module] = []
        channels = config.base_channels
        for index in range(1, UPSAMPLINGS + 1):
            out = max(config.base_channels // 2**index, config.min_channels)
            layers += [nn.ConvTranspose2d(channels, out, 5, stride=2, padding=2, output_padding=1),
                       nn.ReLU(inplace=True)]
            channels = out
        self.upsample = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(channels, 3, 1)
        self.register_buffer("mean_landmarks", torch.full((config.num_landmarks, 2), 0.5))

    def set_mean_landmarks(self, landmarks: torch.Tensor) -> None:
        """(68, 2) normalised: the geometry the texture is drawn in (the training faces' mean)."""
        self.mean_landmarks.copy_(landmarks.to(self.mean_landmarks))

    def first_layer(self, features: torch.Tensor) -> torch.Tensor:
        """f_dec of the voice-encoder loss (Oh et al., Sec. 3.3): fc1 before its ReLU, (B, code_dim)."""
        return self.fc1(features)

    @torch.no_grad()
    def draw(self, features: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, D) -> images (N, 3, S, S) and landmarks (N, 68, 2), float32 on the model's device, drawn
        in eval mode `batch` at a time (the mode the model was in is restored)."""
        was_training = self.training
        self.eval()
        device = self.mean_landmarks.device
        images, points = [], []
        for chunk in features.split(batch):
            decoded = self(chunk.to(device))
            images.append(decoded.image.float())
            points.append(decoded.landmarks.float())
        self.train(was_training)
        return torch.cat(images), torch.cat(points)

    def forward(self, features: torch.Tensor) -> DecodedFace:
        code = torch.relu(self.first_layer(features))
        batch = features.shape[0]
        mean = self.mean_landmarks.expand(batch, -1, -1)
        landmarks = mean + self.landmark_head(code).view(batch, -1, 2)
        start = self.config.image_size // 2**UPSAMPLINGS
        x = torch.relu(self.texture_fc(code)).view(batch, self.config.base_channels, start, start)
        texture = torch.sigmoid(self.to_rgb(self.upsample(x)))
        with torch.autocast(texture.device.type, enabled=False):  # the spline solve needs float32
            image = warp_image(texture.float(), mean.float(), landmarks.float())
        return DecodedFace(image=image, landmarks=landmarks, texture=texture)
