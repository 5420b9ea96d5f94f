"""Who speaks when: accuracy on a real two-speaker recording, how often one speaker is found in recordings of
one real speaker, and speed (seconds of audio per second, VAD + speaker vectors + clustering).

    python benchmarks/diarize.py [--recordings 4] [--seconds 20] [--threshold 0.3]

The two-speaker recording is pyannote.audio's sample (fetched with pip like the tests' photos; its .rttm
gives the reference turns). Single speakers: the Debian recordings of synth.recorded (Asterisk prompts,
read speech; Fish Fillets dialogue, acted character voices), each recording its utterances joined.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from speech2face import load_audio
from speech2face.synth import recorded
from speech2face.voice.activity import merge
from speech2face.voice.diarize import THRESHOLD, Speaker, diarize, speech_time_accuracy

SAMPLE = "pyannote/audio/sample/sample"


def two_speakers() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "pyannote.audio==4.0.7", "-d", folder], check=True)
        with zipfile.ZipFile(next(Path(folder).glob("pyannote_audio-*.whl"))) as wheel:
            wave = load_audio(wheel.read(f"{SAMPLE}.wav"))
            rows = [r.split() for r in wheel.read(f"{SAMPLE}.rttm").decode().splitlines() if r.strip()]
    return wave, [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=4, help="per single speaker")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args()

    wave, reference = two_speakers()
    start = time.perf_counter()
    found = diarize(wave, threshold=args.threshold, device="cpu")
    wall = time.perf_counter() - start
    seconds = len(wave) / 16000
    everyone = Speaker("all", merge([turn for speaker in found for turn in speaker.turns]), 0.0)
    print(f"two real speakers (pyannote sample, {seconds:.0f} s): {len(found)} found, "
          f"{speech_time_accuracy(found, reference, seconds):.3f} of the speech time attributed right (one "
          f"speaker for all: {speech_time_accuracy([everyone], reference, seconds):.3f}); "
          f"--speakers 2: {speech_time_accuracy(diarize(wave, speakers=2, device='cpu'), reference, seconds):.3f}; "
          f"{seconds / wall:.0f}x real time")
    ones, total = 0, 0
    for speaker in recorded.HELD_OUT + recorded.SOURCES:
        counts = [len(diarize(w, threshold=args.threshold, device="cpu"))
                  for w in recorded.held_out_recordings(speaker, args.seconds, args.recordings, seed=3)]
        ones += counts.count(1)
        total += len(counts)
        print(f"  {speaker.name:>20}: speakers found per recording {counts}")
    print(f"one speaker found in {ones} of {total} single-speaker recordings ({ones / total:.0%})")


if __name__ == "__main__":
    main()
