"""Does a trained model answer real voices? Held-out real speakers (never sources of any world) -> drawn face ->
the real judge's sex, against the speaker's; beside chance (0.5) and the judge's own agreement with the world's
sex on true faces (benchmarks/world.py: 98 %).

    python benchmarks/real_voices.py [--model demo] [--recordings 10] [--seconds 10] [--device cpu]

Carlo (a man with a high voice, ~185 Hz) and Menardi (a woman, ~180 Hz): pitch alone cannot tell them apart.
Also prints each speaker's median F0 and seconds per recording, and the prediction speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from speech2face import Speech2Face
from speech2face.evaluate.real_voices import judge_real_voices
from speech2face.synth.recorded import HELD_OUT, held_out_recordings, median_f0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--recordings", type=int, default=10, help="per speaker")
    parser.add_argument("--seconds", type=float, default=10.0, help="at least this long, each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = Speech2Face.from_pretrained(args.model, device=args.device)
    print(f"model: {model.card.label}")
    for speaker in HELD_OUT:
        waves = held_out_recordings(speaker, args.seconds, args.recordings, args.seed)
        print(f"  {speaker.name} ({speaker.sex}, {speaker.package}): {len(waves)} recordings of "
              f"{np.mean([len(w) for w in waves]) / 16000:.1f} s, median F0 "
              f"{np.median([median_f0(w) for w in waves]):.0f} Hz")
    start = time.perf_counter()
    found = judge_real_voices(model, args.recordings, args.seconds, args.seed)
    wall = time.perf_counter() - start
    for name, result in found["speakers"].items():
        print(f"{name:>8} ({result['sex']}): the judge calls the drawn face {result['sex']} in "
              f"{result['agreement']:.0%} of {result['recordings']} (p(male) {result['p_male']})")
    print(f"overall: {found['agreement']:.1%} of {found['recordings']} recordings (chance 50%); judge: "
          f"{found['judge']}; {wall:.1f} s with the judge ({found['recordings'] / wall:.1f} recordings/s)")


if __name__ == "__main__":
    main()
