"""A synthetic talking-face world in which a voice and a face share known attributes.

    from speech2face.synth import WorldSettings, make_world
    make_world("world", WorldSettings(identities=420, clips=1, seed=0, strength=1.0, test=0.25, val=0.05))

`photo_faces.py` makes real photos the faces (attributes read from them); `attributes.py` holds the attribute ->
voice mapping (and the portrait world's faces, `portraits.py`, `--faces portraits`); `recorded.py` the voices (real
speakers, recorded or synthesised from real recordings by `synthesized.py`, transformed by Praat; `speech.py`:
espeak-ng instead), `video.py` the mp4 writer, `world.py` the files. The photos and the speakers are real; the
pairing and the transformations are synthetic, and world.json says which is which.
"""

from ..data.manifests import SPEAKER_PATTERN, WORLD_FILE
from .attributes import ATTRIBUTES, FaceShape, Identity, Look, Voice, sample_identity
from .world import NOTE, WorldSettings, make_world

__all__ = ["ATTRIBUTES", "NOTE", "SPEAKER_PATTERN", "WORLD_FILE", "FaceShape", "Identity", "Look", "Voice",
           "WorldSettings", "make_world", "sample_identity"]
