"""Synthetic-world speed: clips/s and seconds of video made per second of wall time, end to end with all
workers, and where one worker's time goes (render identity, speech, frames, encode), against real time.

    python benchmarks/synth.py [--identities 20] [--clips 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from speech2face.synth import WorldSettings, make_world, recorded, sample_identity
from speech2face.synth.portraits import frame_transforms, load_bases, render_frames, render_identity
from speech2face.synth.speech import VoiceBank, clip_text
from speech2face.synth.video import padded_length, write_clip
from timing import seconds_per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=20)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voices", choices=("recorded", "espeak"), default="recorded")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        settings = WorldSettings(args.identities, args.clips, voices=args.voices)
        out = make_world(Path(folder) / "w", settings, workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        with (out / "avspeech.csv").open() as handle:
            seconds = sum(float(row[2]) for row in csv.reader(handle))
    clips = args.identities * args.clips
    print(f"{clips} clips ({seconds:.0f} s of video, {args.voices} voices) with {args.workers} workers in "
          f"{wall:.1f} s: {clips / wall:.1f} clips/s, {seconds / wall:.1f}x real time")

    bases = {base.name: base for base in load_bases()}
    identity = sample_identity(0, 0, 1.0, [base.info for base in bases.values()])
    portrait, points = render_identity(bases, identity.shape, identity.look)
    text = clip_text(np.random.default_rng(0))
    speakers = recorded.sources()
    with VoiceBank() as bank, tempfile.TemporaryDirectory() as folder:
        bank.add(identity.speaker_id, identity.voice)
        wave = bank.say(identity.speaker_id, identity.voice, text)
        frames = int(np.ceil(padded_length(len(wave)) / 16000 * 25))
        transforms = frame_transforms(points, portrait.shape[:2], identity.look, frames, 256, np.random.default_rng(0))
        video = render_frames(portrait, transforms, 256)
        stages = {
            "render identity (warp, tone)": seconds_per_call(
                lambda: render_identity(bases, identity.shape, identity.look), 3, 0.3),
            "speech (espeak-ng)": seconds_per_call(lambda: bank.say(identity.speaker_id, identity.voice, text), 3, 0.3),
            "speech (recorded + Praat)": seconds_per_call(
                lambda: recorded.speak(speakers, identity.voice, np.random.default_rng(0)), 3, 0.3),
            "frames": seconds_per_call(lambda: render_frames(portrait, transforms, 256), 3, 0.3),
            "encode mp4": seconds_per_call(lambda: write_clip(Path(folder) / "c.mp4", video, wave), 3, 0.3),
        }
    clip_seconds = len(wave) / 16000
    print(f"one worker, one {clip_seconds:.1f} s clip ({frames} frames of 256 px):")
    for name, value in stages.items():
        print(f"  {name:<30}{value * 1000:8.1f} ms  ({clip_seconds / value:6.1f}x real time)")


if __name__ == "__main__":
    main()
