"""Streaming training data from shards: split across ranks and loader workers, shuffled, fault-tolerant.

    stream = ShardStream(shard_paths("data", "train"), transform, seed=0, rank=rank, world_size=world)
    loader = DataLoader(stream, batch_size=16, num_workers=2)

Each (rank, worker) takes every n-th shard (n = world_size x workers) when there are enough shards, and
every n-th sample of every shard otherwise (or always, with `interleave`: then n processes together see
exactly the sample order one process sees), so no sample is seen twice per epoch. Shard order and a
shuffle buffer are seeded by (seed, epoch). A damaged sample is logged and skipped, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import DataError
from .choose import CROP_SIZE
from .shards import decode_sample, raw_samples

log = logging.getLogger(__name__)


def shard_paths(data: str | Path, split: str | tuple[str, ...]) -> list[Path]:
    """The shards of one or more splits in a prepare output folder (or a folder of shards)."""
    root = Path(data)
    folder = root / "shards" if (root / "shards").is_dir() else root
    splits = (split,) if isinstance(split, str) else split
    paths = sorted(p for name in splits for p in folder.glob(f"{name}-*.tar"))
    if not folder.is_dir():
        raise DataError(f"{data}: no such folder of shards")
    return paths


class ShardStream(IterableDataset):
    """Transformed samples of `shards`; `transform(sample) -> item` may raise DataError/ValueError to skip.
    The sample dict also carries `epoch`, for transforms whose augmentation changes per epoch. `faces=False`
    leaves the face crop undecoded (None), for readers of voices and features only."""

    def __init__(self, shards: list[Path], transform: Callable[[dict[str, Any]], Any], *, shuffle: bool = True,
                 buffer: int = 256, seed: int = 0, loop: bool = True, rank: int = 0, world_size: int = 1,
                 start_epoch: int = 0, interleave: bool = False, faces: bool = True) -> None:
        if not shards:
            raise DataError("no shards to read")
        self.shards, self.transform = list(shards), transform
        self.shuffle, self.buffer, self.seed, self.loop = shuffle, buffer, seed, loop
        self.rank, self.world_size, self.start_epoch = rank, world_size, start_epoch
        self.interleave, self.faces = interleave, faces
        self.skipped = 0

    def _split(self) -> tuple[int, int]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        return self.rank * workers + worker_id, self.world_size * workers

    def _items(self, epoch: int) -> Iterator[Any]:
        index, count = self._split()
        order = list(self.shards)
        if self.shuffle:
            np.random.default_rng([self.seed, epoch]).shuffle(order)  # type: ignore[arg-type]
        by_shard = len(order) >= count and not self.interleave
        mine = order[index::count] if by_shard else order
        position = 0
        for shard in mine:
            try:
                for key, fields in raw_samples(shard):
                    position += 1
                    if not by_shard and (position - 1) % count != index:
                        continue
                    try:
                        yield self.transform(decode_sample(key, fields, self.faces) | {"epoch": epoch})
                    except (DataError, ValueError) as error:
                        self.skipped += 1
                        log.warning("skipped a damaged sample in %s: %s", shard.name, error)
            except DataError as error:
                log.warning("skipped the rest of %s: %s", shard.name, error)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.start_epoch
        while True:
            rng = np.random.default_rng([self.seed, epoch, *self._split()])
            pool: list[Any] = []
            for item in self._items(epoch):
                if not self.shuffle:
                    yield item
                    continue
                pool.append(item)
                if len(pool) >= self.buffer:
                    yield pool.pop(int(rng.integers(len(pool))))
            while pool:
                yield pool.pop(int(rng.integers(len(pool))))
            if not self.loop:
                return
            epoch += 1


def samples_per_speaker(shards: list[Path], per_speaker: int | None = 1, *, faces: bool = True,
                        limit: int | None = None, transform: Callable[[dict[str, Any]], Any] = lambda sample: sample,
                        ) -> Iterator[tuple[str, Any]]:
    """(speaker, transform(sample)) for the first `per_speaker` samples of each speaker (None: all), in
    shard order, at most `limit` in all; samples the transform rejects (DataError, ValueError) are skipped:
    the held-out sets, the evaluation clips, the gallery's faces, the probes' training features."""
    taken: dict[str, int] = {}
    count = 0
    for speaker, item in ShardStream(shards, lambda s: (s["meta"]["speaker"], transform(s)), shuffle=False,
                                     loop=False, faces=faces):
        if per_speaker is not None and taken.get(speaker, 0) >= per_speaker:
            continue
        taken[speaker] = taken.get(speaker, 0) + 1
        yield speaker, item
        count += 1
        if limit is not None and count >= limit:
            return


def face_item(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """A shard sample as the face decoder reads it (training and every evaluation of drawn faces): face (H, W, 3)
    uint8, landmarks normalised to [0, 1] (68, 2), feature (D,); DataError for a crop not of prepare's size."""
    face = sample["face"]
    if face.shape != (CROP_SIZE, CROP_SIZE, 3):
        raise DataError(f"{sample['key']}: face crop {face.shape}, expected {CROP_SIZE}x{CROP_SIZE}")
    return {"face": face, "landmarks": ((sample["landmarks"] + 0.5) / CROP_SIZE).astype(np.float32),
            "feature": sample["feature"].astype(np.float32)}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack same-keyed numpy items into tensors."""
    return {key: torch.as_tensor(np.stack([item[key] for item in items])) for key in items[0]}
