"""ShardStream: every sample once per epoch across ranks and workers; damaged samples skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from speech2face.data.dataset import ShardStream, shard_paths
from speech2face.data.shards import Sample, write_shard


def make_shards(folder: Path, shards: int, per_shard: int, damaged: str | None = None) -> list[Path]:
    paths = []
    for s in range(shards):
        samples = []
        for i in range(per_shard):
            key = f"s{s}-{i}"
            jpeg = b"not a jpeg" if key == damaged else _jpeg()
            samples.append(Sample(key, b"flac", jpeg, np.zeros((68, 2)), np.full(4, s * 100 + i), {"speaker": key}))
        path = folder / f"train-000-{s:05d}.tar"
        write_shard(path, samples)
        paths.append(path)
    return paths


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="JPEG")
    return buffer.getvalue()


def keys(stream: ShardStream) -> list[str]:
    return [item for item in stream]


@pytest.mark.parametrize("shards", [1, 6])  # fewer shards than splits: by sample; more: by shard
def test_ranks_together_see_every_sample_once(tmp_path: Path, shards: int) -> None:
    paths = make_shards(tmp_path, shards, 5)
    everything = sorted(keys(ShardStream(paths, lambda s: s["key"], loop=False, shuffle=False)))
    assert len(everything) == shards * 5
    parts = [keys(ShardStream(paths, lambda s: s["key"], loop=False, rank=r, world_size=3, seed=1))
             for r in range(3)]
    assert sorted(k for part in parts for k in part) == everything
    shuffled = keys(ShardStream(paths, lambda s: s["key"], loop=False, seed=1, buffer=4))
    assert sorted(shuffled) == everything
    assert shuffled != everything  # the buffer reorders
    assert shard_paths(tmp_path, "train") == paths


def test_damaged_samples_are_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = make_shards(tmp_path, 2, 3, damaged="s1-1")
    (tmp_path / "train-000-00002.tar").write_bytes(b"garbage, not a tar")
    paths.append(tmp_path / "train-000-00002.tar")
    with caplog.at_level(logging.WARNING):
        seen = keys(ShardStream(paths, lambda s: s["key"], loop=False, shuffle=False))
    assert sorted(seen) == ["s0-0", "s0-1", "s0-2", "s1-0", "s1-2"]
    assert "s1-1" in caplog.text and "train-000-00002.tar" in caplog.text
