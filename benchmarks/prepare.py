"""`prepare` speed on generated talking-face videos: seconds of video per CPU second on one core
(torch limited to 1 thread), end to end, and where the time goes by stage (decode, detect, landmarks,
align, embed, write), against real time (1x). Target: >= 20x real time per core with HOG at the default
frame sampling (3 frames per 6 s window).

    python benchmarks/prepare.py [--identities 24] [--clips 2] [--frames 3] [--heights 256 360 720] [--keyint 50]

Heights other than the world's 256 px are the same clips re-encoded (H.264, 25 fps, AAC copied) to 16:9
frames of that height, the face scaled with the frame and centred in it, as real downloads are, with a
keyframe every `--keyint` frames (50 = 2 s, as streaming encoders set; x264's own default is 250).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

import speech2face as s2f
from speech2face import faces
from speech2face.data import PrepareSettings, manifests
from speech2face.data.choose import candidate_faces, frame_face
from speech2face.data.media import encode_flac, read_frames
from speech2face.data.prepare import ShardJob, make_encoder, process_shard
from speech2face.data.segment import _frame_times, windows
from speech2face.data.shards import Sample, jpeg_bytes, write_shard
from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=24)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--heights", type=int, nargs="+", default=[256], help="frame heights to measure")
    parser.add_argument("--keyint", type=int, default=50, help="frames between keyframes of the re-encoded clips")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as folder:
        world = make_world(Path(folder) / "world", WorldSettings(args.identities, args.clips, seed=1), workers=2,
                           progress=False)
        for height in args.heights:
            videos = world / "videos" if height == 256 else reencode(world / "videos", Path(folder) / f"{height}p",
                                                                      height, args.keyint)
            segments = manifests.read_avspeech(world / "avspeech.csv", videos, SPEAKER_PATTERN)
            measure(segments, PrepareSettings(frames=args.frames), Path(folder) / f"out{height}", height)


def reencode(source: Path, out: Path, height: int, keyint: int) -> Path:
    """Each clip as 16:9 H.264 of `height` px at 25 fps, the square picture scaled to the height and centred."""
    out.mkdir()
    width = round(height * 16 / 9 / 2) * 2
    for clip in sorted(source.glob("*.mp4")):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-vf",
                        f"scale={height}:{height},pad={width}:{height}:(ow-iw)/2:0", "-r", "25", "-c:v", "libx264",
                        "-preset", "veryfast", "-g", str(keyint), "-pix_fmt", "yuv420p", "-c:a", "copy",
                        str(out / clip.name)],
                       check=True)
    return out


def measure(segments: list, settings: PrepareSettings, folder: Path, height: int) -> None:
    """End to end on one core, then by stage."""
    folder.mkdir()
    video_seconds = sum(s.end - s.start for s in segments)
    start = time.process_time()
    stats = process_shard(ShardJob("bench", tuple(segments)), settings, folder / "out")
    cpu = time.process_time() - start
    print(f"{height} px: {len(segments)} segments, {video_seconds:.0f} s of video; {stats['samples']} samples")
    print(f"end to end on one core: {video_seconds / cpu:.1f}x real time "
          f"({video_seconds:.0f} s of video in {cpu:.1f} CPU s; target >= 20x)")

    stages: dict[str, float] = defaultdict(float)
    encoder = make_encoder(settings)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        begin = time.process_time()
        yield
        stages[name] += time.process_time() - begin

    for segment in segments:
        pieces = windows(segment.start, segment.end)
        times = [t for a, b in pieces for t in _frame_times(a, b, settings.frames)]
        with stage("decode video frames"):
            frames = read_frames(segment.source, times)
        with stage("decode audio"):
            wave = s2f.load_audio(segment.source, offset=segment.start, duration=segment.end - segment.start)
        near = (segment.x, segment.y)
        box = None
        for _, image in frames:
            with stage("detect (hog)"):
                boxes = candidate_faces(image, near, hint=box)
            box = faces.pick(boxes, near, image.shape[1::-1])
            with stage("landmarks"):
                points = faces.landmarks(image, box)
            with stage("align"):
                crop = faces.align(image, points, size=224)
        crops = np.stack([crop.image] * len(frames))
        with stage("embed (dlib-torch)"):
            encoder.embed(crops)
        with stage("write: flac + jpeg"):
            sample = Sample(segment.key, encode_flac(wave), jpeg_bytes(crop.image, 95), crop.landmarks,
                            np.zeros(128, np.float32), {})
        with stage("write: tar"):
            write_shard(folder / "one.tar", [sample])
    # the choice rule itself (detect + landmarks + checks), once per frame, to show its overhead
    image = frames[0][1]
    begin = time.process_time()
    for _ in range(10):
        frame_face(image, 0.0, near)
    rule = (time.process_time() - begin) / 10
    total = sum(stages.values())
    print(f"by stage (CPU seconds, share, x real time if the stage ran alone); "
          f"frame_face() = {rule * 1000:.0f} ms/frame")
    for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {name:<22}{seconds:7.2f} s {100 * seconds / total:5.1f} %  {video_seconds / seconds:8.1f}x")


if __name__ == "__main__":
    main()
