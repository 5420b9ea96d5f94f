"""Long recordings: the peak memory and speed of `s2f predict` on a made conversation of two real recorded speakers
(10 minutes, 1 hour, 3 hours) and on 3 hours of silence, each in a process of its own; what `s2f prepare` pays for
the audio of one 10 s segment near the end of each conversation (`load_audio(offset=..., duration=10)`); and
`s2f prepare --folder` on a talking-face video as long as the conversation (`--videos`: a real CelebA face, still,
at 2 frames a second, 512 px, H.264 + AAC in MP4), which cuts the whole file into windows of speech.

    python benchmarks/long_recordings.py [--lengths 10m 1h 3h] [--videos 10m 1h] [--model demo] [--src OTHER/src]

The conversation: Allison (asterisk-core-sounds-en-g722) and the big fish (fillets-ng-data-cs), real recorded
speakers of the synthetic world's sources, taking turns of 4-12 s with short pauses, written to FLAC block by
block (16 kHz); the silence: a FLAC of digital zeros. Peak memory is the child's maximum resident set
(getrusage); speed is the recording's length over the wall time of the whole command (start-up included).
`--src` runs another tree's package (a git worktree's src/) for a before/after table in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from speech2face.synth import recorded
from speech2face.voice.audio import SAMPLE_RATE

LENGTHS = {"10m": 600, "1h": 3600, "3h": 10_800}
SPEAKERS = ("allison", "fillets-big-fish")
PAUSE_SECONDS = 0.6


def conversation(path: Path, seconds: float, seed: int = 0) -> None:
    """Two real speakers taking turns until `seconds`, written to FLAC a turn at a time."""
    by_name = {s.name: s for s in recorded.SOURCES}
    turns = [recorded.held_out_recordings(by_name[name], 12.0, 40, seed=seed) for name in SPEAKERS]
    rng = np.random.default_rng(seed)
    written, index = 0, 0
    pause = np.zeros(round(PAUSE_SECONDS * SAMPLE_RATE), np.float32)
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as out:
        while written < seconds * SAMPLE_RATE:
            pool = turns[index % 2]
            wave = pool[int(rng.integers(len(pool)))]
            piece = wave[:round(rng.uniform(4, 12) * SAMPLE_RATE)]
            out.write(np.concatenate([piece, pause]))
            written += len(piece) + len(pause)
            index += 1


def talking_face(path: Path, audio: Path, seconds: float) -> None:
    """A video of one still real face (000002.jpg of the packaged CelebA collection) speaking `audio`."""
    from speech2face.data.photos import collection_folder

    photo = collection_folder("celeba-999") / "000002.jpg"  # a frontal face (000001 is turned)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-framerate", "2", "-i", str(photo), "-i",
                    str(audio), "-vf", "scale=512:-2", "-c:v", "libx264", "-tune", "stillimage", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-t", str(seconds), str(path)], check=True)


def silence(path: Path, seconds: float) -> None:
    block = np.zeros(60 * SAMPLE_RATE, np.int16)
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as out:
        for _ in range(int(seconds // 60)):
            out.write(block)


# The command runs under a small, fresh interpreter that reports its peak resident set (KB) on stderr: forked from
# this process, it would count this process's memory too (Linux keeps a forked mm's high-water mark at exec).
PEAK_OF = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:]); "
           "_, status, use = os.wait4(child.pid, 0); "
           "print(f'PEAK_KB {use.ru_maxrss}', file=sys.stderr); sys.exit(os.waitstatus_to_exitcode(status))")


def run(command: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, peak RSS in MB (the command's own maximum resident set) and the last lines of its
    output."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_OF, *command], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = (done.stdout + done.stderr).strip().splitlines()
    peak = next((int(line.split()[1]) for line in reversed(lines) if line.startswith("PEAK_KB")), 0) / 1024
    said = " | ".join(line for line in lines if not line.startswith("PEAK_KB"))[-300:]
    return done.returncode, wall, peak, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", default=list(LENGTHS), choices=list(LENGTHS))
    parser.add_argument("--model", default="demo")
    parser.add_argument("--src", action="append", default=[], help="another tree's src/ to run as well")
    parser.add_argument("--no-silence", dest="silence", action="store_false")
    parser.add_argument("--videos", nargs="*", default=["10m", "1h"], choices=list(LENGTHS),
                        help="lengths of the talking-face videos for s2f prepare --folder (none: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="s2f-long-") as folder:
        cases = []
        for name in args.lengths:
            path = Path(folder) / f"conversation-{name}.flac"
            conversation(path, LENGTHS[name])
            cases.append((f"conversation {name}", path, LENGTHS[name]))
        if args.silence:
            path = Path(folder) / "silence-3h.flac"
            silence(path, LENGTHS["3h"])
            cases.append(("silence 3h", path, LENGTHS["3h"]))
        trees = [("this tree", None), *((source, source) for source in args.src)]
        print(f"{'recording':<18}{'tree':<28}{'exit':>5}{'peak RSS MB':>13}{'x real time':>13}  answer")
        segment = ("import sys, time; from speech2face import load_audio; start = time.perf_counter(); "
                   "wave = load_audio(sys.argv[1], offset=float(sys.argv[2]), duration=10.0); "
                   "print(f'{len(wave) / 16000:.1f} s cut in {time.perf_counter() - start:.2f} s')")
        videos = []
        for name in args.videos:
            audio = Path(folder) / f"conversation-{name}.flac"
            if not audio.exists():
                conversation(audio, LENGTHS[name])
            (Path(folder) / f"video-{name}").mkdir()
            talking_face(Path(folder) / f"video-{name}" / f"talk_{name}.mp4", audio, soundfile.info(audio).duration)
            videos.append((f"prepare {name}", Path(folder) / f"video-{name}", LENGTHS[name]))
        for label, path, seconds in videos:
            for index, (tree, source) in enumerate(trees):
                env = dict(os.environ)
                if source:
                    env["PYTHONPATH"] = str(Path(source).resolve())
                code, wall, peak, said = run([sys.executable, "-m", "speech2face", "prepare", "--folder", str(path),
                                              "--out", str(Path(folder) / f"shards-{label[-3:].strip()}-{index}"),
                                              "--workers", "1", "-q"], env)
                print(f"{label:<18}{tree[-27:]:<28}{code:>5}{peak:>13.0f}{seconds / wall:>13.1f}  {said[-150:]}",
                      flush=True)
        for label, path, seconds in cases:
            for tree, source in trees:
                env = dict(os.environ)
                if source:
                    env["PYTHONPATH"] = str(Path(source).resolve())
                code, wall, peak, said = run([sys.executable, "-m", "speech2face", "predict", str(path), "--model",
                                              args.model, "-o", str(Path(folder) / "faces"), "-q"], env)
                print(f"{label:<18}{tree[-27:]:<28}{code:>5}{peak:>13.0f}{seconds / wall:>13.0f}  {said[:150]}",
                      flush=True)
                if label.startswith("conversation"):
                    code, wall, peak, said = run([sys.executable, "-c", segment, str(path), str(seconds - 70)], env)
                    print(f"{'  10 s near end':<18}{tree[-27:]:<28}{code:>5}{peak:>13.0f}{'':>13}  {said[-60:]}",
                          flush=True)


if __name__ == "__main__":
    main()
