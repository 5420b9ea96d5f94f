"""The synthetic world's ground truth: hidden attributes, and the ONE place that maps them to a face and a voice.

Every identity draws three hidden attributes, standard normal and clipped to [-2, 2]:

    masculinity   its sign is the identity's sex (balanced); the face morphs between real portraits of
                  that sex, jaw and nose width follow it; the voice's sex, pitch (F0) and formants follow it
    age           the face moves from the younger to the older portraits of its sex (nose too); the voice
                  gets slower, men's F0 a little higher and women's a little lower
    size          face width and height; vocal-tract length (formant scale) within the voice's sex
    nose          (photo worlds only: their faces are real, so this is measured, not drawn) nose width; the
                  voice's pitch range (a livelier intonation)

The face follows the attributes exactly (plus its own per-identity noise). The voice follows
`strength * attribute + sqrt(1 - strength^2) * independent noise`, so each voice driver stays
standard normal: strength 1 -> the voice is a function of the face's attributes (plus small noise);
strength 0 -> the voice is independent of the face (a control in which nothing can be learned). Which
recorded speaker lends the voice its utterances is always drawn independently of the face.

All random draws come from generators keyed by (seed, identity index, purpose): the same seed gives the
same world, and the voice's independent noise is a separate stream from the face's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

ATTRIBUTES = ("masculinity", "age", "size")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
SEXES = ("female", "male")
OLD_AGE = 60  # portraits photographed at this age or later are the "old" end of their sex's morph
# Adult voices (Titze 1994; Hillenbrand et al. 1995): median F0 of men ~85-180 Hz, women ~165-255 Hz;
# women's formants ~15-20 % higher (a shorter vocal tract). Formant scale 1 = an adult man's.
F0_CENTRE_HZ = {"male": 120.0, "female": 205.0}
F0_LIMITS_HZ = {"male": (85.0, 180.0), "female": (165.0, 255.0)}
FORMANT_SCALE = {"male": 1.0, "female": 1.17}


@dataclass(frozen=True)
class PortraitInfo:
    """What the mapping needs to know of a base portrait."""

    name: str
    sex: str  # "female" or "male": what the judge sees (docs/synth.md)
    age: float  # years when photographed (approximate)
    max_weight: float = 1.0  # the most this portrait may weigh in a morph (see synth/portraits.py)


@dataclass(frozen=True)
class FaceShape:
    """Relative craniofacial factors (1 = the morphed portrait) applied by the landmark-driven warp."""

    face_width: float
    face_height: float
    jaw_width: float
    nose_width: float
    nose_length: float  # eyes to nose tip; the mouth moves with the nose
    eye_spacing: float
    mouth_width: float


@dataclass(frozen=True)
class Look:
    """The morph of real portraits, and appearance that carries no attribute: skin tone, light, framing."""

    skin_gain: tuple[float, float, float]  # RGB gains on the face
    light_slope: float  # brightness gradient left -> right, -0.3..0.3
    zoom: float  # face width / frame width
    mix: tuple[tuple[str, float], ...]  # (portrait name, weight) pairs, weights sum to 1


@dataclass(frozen=True)
class Voice:
    """Targets of a voice: what Praat's "Change gender" makes of a recorded speaker (or espeak-ng's settings)."""

    sex: str
    pitch_hz: float  # median F0
    pitch_range: float  # factor on the recorded speaker's pitch range
    formant_scale: float  # vocal-tract scale: 1 an adult man, ~1.17 a woman; shorter tract -> higher
    rate: float  # speaking rate factor: 1 the recorded speaker's own
    source: float  # in [0, 1): which recorded speaker (`recorded.pick_source`)
    variant: str  # espeak-ng timbre (m1-m7, f1-f5) for --voices espeak

    @property
    def rate_wpm(self) -> int:
        """espeak-ng's words per minute."""
        return round(165 * self.rate)


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
        row.update({"sex": sex_of(self.attributes["masculinity"]),
                    "mix": " ".join(f"{name}:{weight:.3f}" for name, weight in self.look.mix),
                    "zoom": round(self.look.zoom, 4),
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


def sex_of(masculinity: float) -> str:
    return "male" if masculinity > 0 else "female"


def portrait_mix(portraits: Sequence[PortraitInfo], attributes: dict[str, float], noise: np.random.Generator,
                 face_noise: float = 1.0) -> tuple[tuple[str, float], ...]:
    """Weights of the identity's morph: portraits of its sex only; age moves weight from the younger to the
    older ones (up to the old portraits' `max_weight`); within each end the split is drawn (face noise)."""
    sex = sex_of(attributes["masculinity"])
    group = [p for p in portraits if p.sex == sex]
    if not group:
        raise ValueError(f"no {sex} base portrait")
    old = [p for p in group if p.age >= OLD_AGE]
    young = [p for p in group if p.age < OLD_AGE]
    lateness = 0.5 * (1 + math.erf((attributes["age"] + 0.3 * face_noise * noise.normal()) / math.sqrt(2)))
    old_share = 1.0 if not young else 0.0 if not old else lateness * min(p.max_weight for p in old)
    concentration = 2.0 / max(face_noise, 0.05)  # low face noise -> near-equal splits
    mix = []
    for members, share in ((young, 1 - old_share), (old, old_share)):
        if members and share > 0:
            split = noise.dirichlet([concentration] * len(members)) if len(members) > 1 else np.ones(1)
            mix += [(p.name, float(share * w)) for p, w in zip(members, split, strict=True)]
    return tuple(mix)


@dataclass(frozen=True)
class VoiceEffects:
    """How strongly each attribute moves the voice (log-scale coefficients), and the voice's own spread (jitter).
    Worlds of portraits use `PORTRAIT_EFFECTS`; worlds of real photos `PHOTO_EFFECTS`: their attributes are measured
    on real faces (a real face's jaw or nose says less about the rest of it than a warp along that axis), so each
    moves the voice further and the voice's own spread is smaller."""

    f0_masculinity: float = 0.10  # within a sex: more masculine -> lower
    f0_age: float = 0.04  # older men higher, older women lower
    f0_jitter: float = 0.08
    formant_size: float = 0.05  # larger -> longer vocal tract -> lower formants
    formant_jitter: float = 0.015
    rate_age: float = 0.08  # older -> slower
    rate_jitter: float = 0.04
    range_nose: float = 0.0  # photo worlds: a wider nose -> a livelier intonation (pitch range)
    range_jitter: float = 0.15


PORTRAIT_EFFECTS = VoiceEffects()
PHOTO_EFFECTS = VoiceEffects(f0_age=0.06, f0_jitter=0.05, formant_size=0.08, rate_age=0.12, rate_jitter=0.03,
                             range_nose=0.25, range_jitter=0.06)


def voice(attributes: dict[str, float], strength: float, noise: np.random.Generator,
          effects: VoiceEffects = PORTRAIT_EFFECTS) -> Voice:
    """Voice targets from the attributes; see the module docstring for `strength`. A "nose" attribute (photo
    worlds) sets the pitch range; its independent draw comes last, so worlds without one keep their voices."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    independent = noise.normal(size=len(ATTRIBUTES))
    other = math.sqrt(1.0 - strength**2)
    m, a, s = (strength * attributes[k] + other * z for k, z in zip(ATTRIBUTES, independent, strict=True))
    jitter = np.clip(noise.normal(size=4), -2.5, 2.5)
    sex = sex_of(m)
    typical = 0.8 if sex == "male" else -0.8  # the mean masculinity of the sex's half of N(0, 1)
    aging = effects.f0_age * a if sex == "male" else -effects.f0_age * a
    low, high = F0_LIMITS_HZ[sex]
    # portraits: 95 % of men ~98-150 Hz, of women ~165-250 Hz (a wider spread, 0.15, taught the quick demo less:
    # sex agreement 0.91 instead of 0.93-0.98, and no better on held-out real voices)
    within = -effects.f0_masculinity * (m - typical) + aging
    pitch = F0_CENTRE_HZ[sex] * math.exp(within + effects.f0_jitter * jitter[0])
    variants = MALE_VARIANTS if sex == "male" else FEMALE_VARIANTS
    source = float(noise.uniform())
    variant = variants[int(noise.integers(len(variants)))]
    nose = strength * attributes["nose"] + other * noise.normal() if "nose" in attributes else 0.0
    return Voice(
        sex=sex,
        pitch_hz=float(np.clip(pitch, low, high)),
        pitch_range=float(np.exp(effects.range_nose * nose + effects.range_jitter * jitter[1])),
        formant_scale=float(FORMANT_SCALE[sex]
                            * math.exp(-effects.formant_size * s + effects.formant_jitter * jitter[2])),
        rate=float(np.clip(math.exp(-effects.rate_age * a + effects.rate_jitter * jitter[3]), 0.75, 1.3)),
        source=source,
        variant=variant,
    )


def sample_identity(seed: int, index: int, strength: float, portraits: Sequence[PortraitInfo],
                    face_noise: float = 1.0) -> Identity:
    """Identity `index` of the world `seed`. `face_noise` scales the face's variation that no attribute
    explains (shape noise, the split of a morph, skin tone, light): 1 as documented, lower for a world that
    is easier to learn."""
    face_rng, look_rng, voice_rng = (rng(seed, index, purpose) for purpose in (FACE, LOOK, VOICE))
    attributes = {k: float(np.clip(v, -2, 2)) for k, v in zip(ATTRIBUTES, face_rng.normal(size=3), strict=True)}
    tone, warmth = face_noise * np.clip(look_rng.normal(0, [0.15, 0.05]), [-0.35, -0.1], [0.35, 0.1])
    look = Look(
        skin_gain=(float(np.exp(tone + warmth)), float(np.exp(tone)), float(np.exp(tone - warmth))),
        light_slope=float(face_noise * look_rng.uniform(-0.3, 0.3)),
        zoom=float(look_rng.uniform(0.34, 0.44)),
        mix=portrait_mix(portraits, attributes, look_rng, face_noise),
    )
    return Identity(
        speaker_id=f"syn{index:05d}",
        index=index,
        attributes=attributes,
        shape=face_shape(attributes, face_rng, face_noise),
        look=look,
        voice=voice(attributes, strength, voice_rng),
    )
