"""`prepare` on the same cores with the local engine (a process pool, the baseline) and with Ray (a local
instance, one task per shard): wall-clock seconds, x real time, and Ray's overhead on one machine.

    python benchmarks/prepare_engines.py [--identities 16] [--clips 2] [--shard-size 4] [--cpus 2]

Ray's start-up (ray.init of a local instance) is timed apart from the run: on a cluster it is paid once by
`ray start`, not by each job. Both runs must write the same shards (checked).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from speech2face.data import PrepareSettings, manifests, prepare
from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world


def shard_listing(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "shards").iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    settings = PrepareSettings(shard_size=args.shard_size)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        world = make_world(root / "world", WorldSettings(args.identities, args.clips, seed=1), workers=args.cpus,
                           progress=False)
        segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
        video = sum(s.end - s.start for s in segments)
        print(f"{len(segments)} segments, {video:.0f} s of video, shards of {args.shard_size}, {args.cpus} CPUs")

        began = time.perf_counter()
        prepare(segments, root / "local", settings, workers=args.cpus, progress=False)
        local = time.perf_counter() - began
        print(f"local engine ({args.cpus} processes): {local:6.1f} s  {video / local:5.1f}x real time")

        began = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
        start_up = time.perf_counter() - began
        began = time.perf_counter()
        prepare(segments, root / "ray", settings, engine="ray", progress=False)
        on_ray = time.perf_counter() - began
        ray.shutdown()
        print(f"ray engine ({args.cpus} CPUs):       {on_ray:6.1f} s  {video / on_ray:5.1f}x real time "
              f"(+ {start_up:.1f} s to start the local instance)")
        assert shard_listing(root / "ray") == shard_listing(root / "local"), "the engines wrote different shards"
        print(f"Ray's overhead on one machine: {100 * (on_ray / local - 1):+.0f} % of the local engine's time "
              f"({100 * ((on_ray + start_up) / local - 1):+.0f} % with start-up); the same shards")


if __name__ == "__main__":
    main()
