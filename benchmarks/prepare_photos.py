"""`prepare --images` speed: photos per CPU second on one core (torch limited to 1 thread), end to end through
`process_shard` (read, detect, landmarks, align, embed, judge, write), against a straightforward pipeline run
in the same process on the same photos (each photo read, detected with dlib's default upsampling, embedded and
judged alone). Target: >= 20 photos/s per core on CelebA's 178x218 photos.

    python benchmarks/prepare_photos.py [--photos 200] [--collection celeba-999]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speech2face import faces
from speech2face.data import PrepareSettings
from speech2face.data.choose import face_from_box
from speech2face.data.photos import PHOTO_MAX_YAW, judge_or_none, read_photo, read_photos
from speech2face.data.prepare import ShardJob, make_encoder, process_shard


def straightforward(paths: list[str], encoder: object, judge: object) -> int:
    """The baseline: one photo at a time, full detection, batch-1 embedding and judging."""
    made = 0
    for path in paths:
        image = read_photo(path)
        boxes = faces.detect(image)
        if not boxes:
            continue
        found = face_from_box(image, boxes[0], 0.0, PHOTO_MAX_YAW)
        if isinstance(found, str):
            continue
        encoder.embed(found.crop.image[None])  # type: ignore[attr-defined]
        judge(found.crop.image[None])  # type: ignore[operator]
        made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--collection", default="celeba-999")
    args = parser.parse_args()
    torch.set_num_threads(1)
    photos = read_photos(args.collection)[: args.photos]
    settings = PrepareSettings()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        (out / "shards").mkdir()
        process_shard(ShardJob("warmup-000-00000", tuple(photos[:8])), settings, out)  # models loaded, caches warm
        start = time.process_time()
        stats = process_shard(ShardJob("train-000-00000", tuple(photos)), settings, out)
        ours = time.process_time() - start
    encoder, judge = make_encoder(settings), judge_or_none()
    start = time.process_time()
    made = straightforward([p.source for p in photos], encoder, judge)
    baseline = time.process_time() - start
    size = np.asarray(read_photo(photos[0].source)).shape
    print(f"{len(photos)} photos of {args.collection} ({size[1]}x{size[0]}), 1 thread, CPU seconds:")
    print(f"  prepare (process_shard):  {ours:6.2f} s  {len(photos) / ours:6.1f} photos/s per core  "
          f"({stats['samples']} samples, failed {stats['failed']})")
    print(f"  straightforward baseline: {baseline:6.2f} s  {len(photos) / baseline:6.1f} photos/s per core  "
          f"({made} samples)")
    print(f"speed-up over the baseline: {baseline / ours:.2f}x; goal >= 20 photos/s per core: "
          f"{'met' if len(photos) / ours >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
