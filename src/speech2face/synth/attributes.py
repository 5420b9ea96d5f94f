"""The synthetic world's ground truth: hidden attributes, and the ONE place that maps them to a face and a voice.

Every identity draws three hidden attributes, standard normal and clipped to [-2, 2]:

    masculinity   drives the base portrait, jaw and nose width (face) and pitch, voice variant, formants (voice)
    age           drives nose width (face) and pitch, speaking rate (voice)
    size          drives face width and height (face) and formant scale = vocal-tract length (voice)

The face follows the attributes exactly (plus its own per-identity noise). The voice follows
`strength * attribute + sqrt(1 - strength^2) * independent noise`, so each voice driver stays
standard normal: strength 1 -> the voice is a function of the face's attributes (plus small noise);
strength 0 -> the voice is independent of the face (a control in which nothing can be learned).

All random draws come from generators keyed by (seed, identity index, purpose): the same seed gives the
same world, and the voice's independent noise is a separate stream from the face's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

ATTRIBUTES = ("masculinity", "age", "size")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True)
class FaceShape:
    """Relative craniofacial factors (1 = the base portrait) applied by the landmark-driven warp."""

    face_width: float
    face_height: float
    jaw_width: float
    nose_width: float
    nose_length: float  # eyes to nose tip; the mouth moves with the nose
    eye_spacing: float
    mouth_width: float


@dataclass(frozen=True)
class Look:
    """Appearance that carries no attribute: skin tone, light, framing."""

    skin_gain: tuple[float, float, float]  # RGB gains on the face
    light_slope: float  # brightness gradient left -> right, -0.3..0.3
    zoom: float  # face width / frame width
    base: int  # index of the base portrait


@dataclass(frozen=True)
class Voice:
    """espeak-ng settings of a speaker: a variant's timbre with our own pitch (Hz), formant scale and rate."""

    variant: str
    pitch_hz: float  # espeak's base pitch; the voice's median F0 sits a little above it
    pitch_range_hz: float
    formant_scale: float  # all formant frequencies x this (shorter vocal tract -> higher)
    rate_wpm: int


@dataclass(frozen=True)
class Identity:
    speaker_id: str
    index: int
    attributes: dict[str, float]
    shape: FaceShape
    look: Look
    voice: Voice

    def row(self) -> dict[str, object]:
        """A flat dict for attributes.csv."""
        row: dict[str, object] = {"speaker_id": self.speaker_id, "index": self.index}
        row.update({k: round(v, 4) for k, v in self.attributes.items()})
        row.update({k: round(v, 4) for k, v in asdict(self.shape).items()})
        row.update({"base": self.look.base, "zoom": round(self.look.zoom, 4),
                    "light_slope": round(self.look.light_slope, 4),
                    "skin_gain": " ".join(f"{g:.3f}" for g in self.look.skin_gain)})
        row.update({f"voice_{k}": (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self.voice).items()})
        return row


def rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator of one purpose: keyed, so that adding draws elsewhere changes nothing here."""
    return np.random.default_rng([seed, *keys])


FACE, LOOK, VOICE = 1, 2, 3  # purposes


def face_shape(attributes: dict[str, float], noise: np.random.Generator, face_noise: float = 1.0) -> FaceShape:
    m, a, s = (attributes[k] for k in ATTRIBUTES)
    n = face_noise * np.clip(noise.normal(size=7), -2.5, 2.5)
    return FaceShape(
        face_width=1 + 0.07 * s + 0.02 * m + 0.035 * n[0],
        face_height=1 + 0.05 * s + 0.035 * n[1],
        jaw_width=1 + 0.08 * m + 0.04 * n[2],
        nose_width=1 + 0.08 * m + 0.04 * a + 0.05 * n[3],
        nose_length=1 + 0.03 * a + 0.05 * n[4],
        eye_spacing=1 + 0.06 * n[5],
        mouth_width=1 + 0.08 * n[6],
    )


def voice(attributes: dict[str, float], strength: float, noise: np.random.Generator) -> Voice:
    """Voice settings from the attributes; see the module docstring for `strength`."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    independent = noise.normal(size=len(ATTRIBUTES))
    other = math.sqrt(1.0 - strength**2)
    m, a, s = (strength * attributes[k] + other * z for k, z in zip(ATTRIBUTES, independent, strict=True))
    jitter = noise.normal(size=4)
    variants = MALE_VARIANTS if m > 0 else FEMALE_VARIANTS
    return Voice(
        variant=variants[int(noise.integers(len(variants)))],
        # ~180 Hz at m = -1, ~105 Hz at m = +1 (log-linear, as pitch is perceived); age lowers it a little
        pitch_hz=float(np.clip(140 * math.exp(-0.27 * m - 0.05 * a + 0.03 * jitter[0]), 70, 260)),
        pitch_range_hz=float(np.clip(45 + 8 * jitter[1], 25, 70)),
        formant_scale=float(np.clip(1 - 0.07 * s - 0.03 * m + 0.01 * jitter[2], 0.8, 1.2)),
        rate_wpm=int(np.clip(round(165 - 20 * a + 8 * jitter[3]), 110, 220)),
    )


def sample_identity(seed: int, index: int, strength: float, num_bases: int, face_noise: float = 1.0) -> Identity:
    """Identity `index` of the world `seed`. `face_noise` scales the face's variation that no attribute
    explains (shape noise, skin tone, light): 1 as documented, lower for a world that is easier to learn."""
    face_rng, look_rng, voice_rng = (rng(seed, index, purpose) for purpose in (FACE, LOOK, VOICE))
    attributes = {k: float(np.clip(v, -2, 2)) for k, v in zip(ATTRIBUTES, face_rng.normal(size=3), strict=True)}
    tone, warmth = face_noise * np.clip(look_rng.normal(0, [0.15, 0.05]), [-0.35, -0.1], [0.35, 0.1])
    look = Look(
        skin_gain=(float(np.exp(tone + warmth)), float(np.exp(tone)), float(np.exp(tone - warmth))),
        light_slope=float(face_noise * look_rng.uniform(-0.3, 0.3)),
        zoom=float(look_rng.uniform(0.34, 0.44)),
        # the base portrait follows masculinity's quantile (a strong, face-only cue the voice can reach
        # through pitch); with strength 0 the voice still knows nothing of it
        base=min(num_bases - 1, int(num_bases * 0.5 * (1 + math.erf(attributes["masculinity"] / math.sqrt(2))))),
    )
    return Identity(
        speaker_id=f"syn{index:05d}",
        index=index,
        attributes=attributes,
        shape=face_shape(attributes, face_rng, face_noise),
        look=look,
        voice=voice(attributes, strength, voice_rng),
    )
