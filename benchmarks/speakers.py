"""Speaker-encoder speed: seconds of audio embedded per second of wall time, batched, against Resemblyzer's
own `embed_utterance` (one utterance at a time, librosa mel) in the same process where it is installed.

    python benchmarks/speakers.py [--threads 1] [--device cpu] [--utterances 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from speech2face.synth import recorded
from speech2face.voice import speakers
from timing import seconds_per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the goal is set for one core)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    waves = recorded.held_out_recordings(recorded.HELD_OUT[0], args.seconds, args.utterances)
    audio_seconds = sum(len(w) for w in waves) / 16000
    ours = seconds_per_call(lambda: speakers.embed_windows(waves, device=args.device), 3, 1.0)
    print(f"{len(waves)} utterances, {audio_seconds:.0f} s of audio, {args.threads} thread(s), {args.device}:")
    print(f"  speech2face.voice.speakers.embed_windows  {ours:7.3f} s  {audio_seconds / ours:8.0f}x real time")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from resemblyzer import VoiceEncoder
    except ImportError as error:
        print(f"  resemblyzer's own code is not importable ({error}): no baseline")
        return
    original = VoiceEncoder(device=args.device, verbose=False)
    prepared = [speakers.raise_quiet(torch.from_numpy(w)[None])[0].numpy() for w in waves]
    theirs = seconds_per_call(lambda: [original.embed_utterance(w) for w in prepared], 3, 1.0)
    print(f"  resemblyzer embed_utterance (loop)  {theirs:7.3f} s  {audio_seconds / theirs:8.0f}x real time")
    print(f"  ratio: {theirs / ours:.2f}x resemblyzer's speed")
    agreement = (speakers.embed_windows(waves, device=args.device)
                 * np.stack([original.embed_utterance(w) for w in prepared])).sum(axis=1).min()
    print(f"  smallest cosine between the two: {agreement:.6f}")


if __name__ == "__main__":
    main()
