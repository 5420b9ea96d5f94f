"""Who speaks when: the stopping rule's calibration, how often one real speaker stays one, made conversations of two
real speakers and a real two-speaker recording told apart, and speed.

    python benchmarks/diarize.py [--recordings 4] [--seconds 20]      # the measurement
    python benchmarks/diarize.py --calibrate                          # the stopping rule's sweep

Calibration (`--calibrate`) looks only at the synthetic world's 17 source speakers (recorded and synthesised; never
Carlo or Menardi), 3 recordings of 20 s each (seed 1): one speaker stays one, and each pair of two different
speakers (one recording each, back to back) stays two, for a sweep of the clustering's THRESHOLD (average-linkage
cosine distance) and of a second rule tried after it: clusters whose mean vectors lie closer than a distance are
one speaker.

The measurement uses other recordings (seed 3): the 6 recorded sources and the 2 held-out speakers, `--recordings`
each; conversations made of two real speakers taking turns (`examples.conversation`: a man and a woman, Carlo and
Menardi; two women, Menardi and Allison; two men, Carlo and the big fish) scored by the share of speech time given
to the right speaker (the reference: where each turn's own recording holds speech); and pyannote.audio's real
two-speaker sample (fetched with pip like the tests' photos; its .rttm gives the reference turns).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from speech2face import load_audio
from speech2face.examples import TURN_GAP_SECONDS, conversation
from speech2face.synth import recorded
from speech2face.voice import speakers as speaker_encoder
from speech2face.voice.activity import SpeechDetector, merge
from speech2face.voice.audio import SAMPLE_RATE
from speech2face.voice.diarize import (
    THRESHOLD,
    Speaker,
    cluster,
    diarize,
    fold_small,
    owned_spans,
    speech_time_accuracy,
    windows_in,
)

SAMPLE = "pyannote/audio/sample/sample"
CONVERSATIONS = (("carlo", "menardi"), ("menardi", "allison"), ("carlo", "fillets-big-fish"))


def two_speakers() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "pyannote.audio==4.0.7", "-d", folder], check=True)
        with zipfile.ZipFile(next(Path(folder).glob("pyannote_audio-*.whl"))) as wheel:
            wave = load_audio(wheel.read(f"{SAMPLE}.wav"))
            rows = [r.split() for r in wheel.read(f"{SAMPLE}.rttm").decode().splitlines() if r.strip()]
    return wave, [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def made_conversation(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """`examples.conversation` of two recordings, and its reference turns: where each turn's own recording holds
    speech (the detector on that piece alone, before mixing), so that the pauses between a speaker's joined
    utterances, which no one is speaking, are not scored as speech given to no one."""
    detector = SpeechDetector("cpu")
    halves = np.array_split(first, 2), np.array_split(second, 2)
    turns, start = [], 0.0
    for piece, name in ((halves[0][0], "a"), (halves[1][0], "b"), (halves[0][1], "a"), (halves[1][1], "b")):
        turns += [(start + a, start + b, name) for a, b in detector(piece).regions]
        start += len(piece) / SAMPLE_RATE + TURN_GAP_SECONDS
    return conversation(first, second), turns


def calibrate() -> None:
    detector = SpeechDetector("cpu")

    def windows(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        activity = detector(wave)
        spans = windows_in(activity.regions)
        pieces = [wave[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)] for a, b in spans]
        owned = np.array([activity.speech_in(a, b) for a, b in owned_spans(spans)])
        return speaker_encoder.embed_windows(pieces, device="cpu"), owned

    recordings = {s.name: [windows(w) for w in recorded.held_out_recordings(s, 20.0, 3, seed=1)]
                  for s in recorded.SOURCES}
    sex = {s.name: s.sex for s in recorded.SOURCES}
    singles = [r for rs in recordings.values() for r in rs]
    pairs = [((a, b), tuple(np.concatenate(x) for x in zip(ra[0], rb[0], strict=True)))
             for (a, ra), (b, rb) in itertools.combinations(recordings.items(), 2)]

    print(f"calibration: {len(singles)} single-speaker recordings and {len(pairs)} pairs of the 17 source speakers")
    rules = [(f"THRESHOLD {t:.3f}", t, 0.0) for t in np.arange(0.25, 0.451, 0.025)]
    rules += [(f"THRESHOLD {THRESHOLD} + mean vectors closer than {d:.3f}", THRESHOLD, d) for d in (0.1, 0.15, 0.2)]
    for name, threshold, distance in rules:
        def count(vectors: np.ndarray, seconds: np.ndarray, threshold: float = threshold,
                  distance: float = distance) -> int:
            labels = fold_small(cluster(vectors, None, threshold), vectors, seconds)
            return len(np.unique(merge_close_prints(labels, vectors, distance)))

        one = sum(count(v, s) == 1 for v, s in singles)
        two = [(names, count(v, s) == 2) for names, (v, s) in pairs]
        same_sex = [ok for (a, b), ok in two if sex[a] == sex[b]]
        print(f"  {name}: one speaker kept one in {one}/{len(singles)}; two told apart in "
              f"{sum(ok for _, ok in two)}/{len(two)} (same sex {sum(same_sex)}/{len(same_sex)})"
              + ("   <- in use" if threshold == THRESHOLD and distance == 0 else ""))


def merge_close_prints(labels: np.ndarray, vectors: np.ndarray, distance: float) -> np.ndarray:
    """The second rule tried: join clusters whose mean vectors are closer than `distance` (cosine), closest first."""
    labels = labels.copy()
    while len(present := np.unique(labels)) > 1:
        prints = np.stack([vectors[labels == c].mean(axis=0) for c in present])
        prints /= np.linalg.norm(prints, axis=1, keepdims=True)
        apart = 1.0 - prints @ prints.T
        np.fill_diagonal(apart, np.inf)
        first, second = np.unravel_index(int(np.argmin(apart)), apart.shape)
        if apart[first, second] >= distance:
            break
        labels[labels == present[second]] = present[first]
    return labels


def reference_distance(wave: np.ndarray, reference: list[tuple[float, float, str]]) -> float:
    """The mean cosine distance between the windows of a recording's two reference speakers (windows in one
    speaker's turn only)."""
    activity = SpeechDetector("cpu")(wave)
    spans = windows_in(activity.regions)
    owner = [{name for a, b, name in reference if a <= start and end <= b} for start, end in spans]
    vectors = speaker_encoder.embed_windows([wave[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)] for a, b in spans],
                                            device="cpu")
    first, second = sorted({name for _, _, name in reference})
    pick = [np.array([names == {name} for names in owner]) for name in (first, second)]
    return float(1.0 - (vectors[pick[0]] @ vectors[pick[1]].T).mean())


def measure(recordings: int, seconds: float) -> None:
    wave, reference = two_speakers()
    start = time.perf_counter()
    found = diarize(wave, device="cpu")
    wall = time.perf_counter() - start
    length = len(wave) / SAMPLE_RATE
    everyone = Speaker("all", merge([turn for speaker in found for turn in speaker.turns]), 0.0)
    print(f"two real speakers (pyannote sample, {length:.0f} s): {len(found)} found, "
          f"{speech_time_accuracy(found, reference, length):.3f} of the speech time attributed right (one "
          f"speaker for all: {speech_time_accuracy([everyone], reference, length):.3f}); "
          f"--speakers 2: {speech_time_accuracy(diarize(wave, speakers=2, device='cpu'), reference, length):.3f}; "
          f"{length / wall:.0f}x real time; its two speakers' windows are {reference_distance(wave, reference):.3f} "
          f"apart (mean cosine distance; the clustering joins below {THRESHOLD})")
    by_name = {s.name: s for s in (*recorded.SOURCES, *recorded.HELD_OUT)}
    for a, b in CONVERSATIONS:
        first, second = (recorded.held_out_recordings(by_name[n], 10.0, 1, seed=3)[0] for n in (a, b))
        made, turns = made_conversation(first, second)
        found = diarize(made, device="cpu")
        print(f"conversation {a} ({by_name[a].sex}) / {b} ({by_name[b].sex}), {len(made) / SAMPLE_RATE:.0f} s: "
              f"{len(found)} speakers, {speech_time_accuracy(found, turns, len(made) / SAMPLE_RATE):.3f} of the speech "
              "time attributed right")
    ones, total = 0, 0
    for speaker in (*recorded.RECORDED_ONLY, *recorded.HELD_OUT):
        counts = [len(diarize(w, device="cpu"))
                  for w in recorded.held_out_recordings(speaker, seconds, recordings, seed=3)]
        ones += counts.count(1)
        total += len(counts)
        print(f"  {speaker.name:>20}: speakers found per recording {counts}")
    print(f"one speaker found in {ones} of {total} single-speaker recordings ({ones / total:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=4, help="per single speaker")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--calibrate", action="store_true", help="the sweep on the source speakers instead")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
    else:
        measure(args.recordings, args.seconds)


if __name__ == "__main__":
    main()
