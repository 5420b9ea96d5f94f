"""A synthetic talking-face world in which a voice and a face share known hidden attributes.

    from speech2face.synth import WorldSettings, make_world
    make_world("world", WorldSettings(identities=100, clips=4, seed=0, strength=1.0))

`attributes.py` holds the whole attribute -> face / voice mapping; `portraits.py` the faces, `speech.py`
the voices, `video.py` the mp4 writer, `world.py` the files. Everything the world shows is synthetic
in its pairing and says so (world.json).
"""

from .attributes import ATTRIBUTES, FaceShape, Identity, Look, Voice, sample_identity
from .world import NOTE, SPEAKER_PATTERN, WORLD_FILE, WorldSettings, make_world

__all__ = ["ATTRIBUTES", "NOTE", "SPEAKER_PATTERN", "WORLD_FILE", "FaceShape", "Identity", "Look", "Voice",
           "WorldSettings", "make_world", "sample_identity"]
