"""Data: manifests of talking-face datasets, `prepare` into webdataset shards, speaker-disjoint splits.

    segments = manifests.read_avspeech("avspeech.csv", "videos/")
    prepare(segments, "shards/", PrepareSettings(), workers=2)
    for sample in read_shard("shards/shards/train-000-00000.tar"): ...
"""

from . import manifests
from .manifests import Segment
from .prepare import PrepareSettings, prepare
from .shards import read_shard
from .splits import split_of

__all__ = ["PrepareSettings", "Segment", "manifests", "prepare", "read_shard", "split_of"]
