"""Does a trained model answer real voices? Held-out real speakers (never sources of any world) -> drawn face ->
the real judge's sex, against the speaker's; men and women apart, beside chance (0.5).

    python benchmarks/real_voices.py [--model demo] [--half measuring|choosing|both] [--recordings 20] [--seconds 10]

Carlo (a man with a high voice, ~185 Hz) and Menardi (a woman, ~180 Hz): pitch alone cannot tell them apart.
Their prompts are split once into a "choosing" half (backbones, settings and models may be chosen on it:
benchmarks/voice_backbones.py) and a "measuring" half that chooses nothing (`synth.recorded.prompt_half`, a fixed
hash of the prompt's name); the figures README and the model cards show are the measuring half's. Goal: >= 90 %
for each sex. Also prints each speaker's median F0 and seconds per recording, and the prediction speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from speech2face import Speech2Face
from speech2face.evaluate.real_voices import REAL_RECORDINGS, REAL_SECONDS, judge_real_voices
from speech2face.synth.recorded import HALVES, HELD_OUT, held_out_recordings, median_f0


def report(model: Speech2Face, half: str, recordings: int, seconds: float, seed: int) -> None:
    print(f"-- the {half} half of the prompts")
    for speaker in HELD_OUT:
        waves = held_out_recordings(speaker, seconds, recordings, seed, half)
        print(f"  {speaker.name} ({speaker.sex}, {speaker.package}): {len(waves)} recordings of "
              f"{np.mean([len(w) for w in waves]) / 16000:.1f} s on average, median F0 "
              f"{np.median([median_f0(w) for w in waves]):.0f} Hz")
    start = time.perf_counter()
    found = judge_real_voices(model, recordings, seconds, seed, half)
    wall = time.perf_counter() - start
    for name, result in found["speakers"].items():
        print(f"{name:>9} ({result['sex']}): the judge calls the drawn face {result['sex']} in "
              f"{result['agreement']:.0%} of {result['recordings']} (goal 90 %; p(male) {result['p_male']})")
    print(f"  overall: {found['agreement']:.1%} of {found['recordings']} recordings (chance 50%); judge: "
          f"{found['judge']}; {wall:.1f} s with the judge ({found['recordings'] / wall:.1f} recordings/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--half", choices=(*HALVES, "both"), default="measuring")
    parser.add_argument("--recordings", type=int, default=REAL_RECORDINGS, help="per speaker")
    parser.add_argument("--seconds", type=float, default=REAL_SECONDS, help="at least this long, each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = Speech2Face.from_pretrained(args.model, device=args.device)
    print(f"model: {model.card.label}")
    for half in HALVES if args.half == "both" else (args.half,):
        report(model, half, args.recordings, args.seconds, args.seed)


if __name__ == "__main__":
    main()
