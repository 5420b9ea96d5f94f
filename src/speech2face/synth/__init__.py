"""A synthetic talking-face world in which a voice and a face share known hidden attributes.

    from speech2face.synth import WorldSettings, make_world
    make_world("world", WorldSettings(identities=100, clips=4, seed=0, strength=1.0))

`attributes.py` holds the whole attribute -> face / voice mapping; `portraits.py` the faces (morphs of real
public-domain portraits), `recorded.py` the voices (real recorded speakers transformed by Praat; `speech.py`:
espeak-ng instead), `video.py` the mp4 writer, `world.py` the files. The portraits and recordings are real;
the pairing and the transformations are synthetic, and world.json says which is which.
"""

from .attributes import ATTRIBUTES, FaceShape, Identity, Look, Voice, sample_identity
from .world import NOTE, SPEAKER_PATTERN, WORLD_FILE, WorldSettings, make_world

__all__ = ["ATTRIBUTES", "NOTE", "SPEAKER_PATTERN", "WORLD_FILE", "FaceShape", "Identity", "Look", "Voice",
           "WorldSettings", "make_world", "sample_identity"]
