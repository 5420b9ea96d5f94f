"""A refactor changes no behaviour: the same short pipeline run with two source trees, compared file by file.

    git worktree add /tmp/old <commit>
    python tools/same_behaviour.py /tmp/old/src src --out /tmp/same

Each tree (on PYTHONPATH, through `python -m speech2face`): synth (16 identities, portraits, recorded speakers)
-> prepare (videos and 60 packaged CelebA photos) -> train-decoder, train (the paper's CNN) and train (speaker
encoder fine-tuned), a few steps each with the loss logged every step -> evaluate, evaluate-decoder -> predict with
the shipped demo model (espeak-ng speech, a recorded voice, pyannote's two-speaker sample) and with the trained run.
Compared: every logged loss step for step, the weights, metrics.json, the predictions and the shards byte for byte
(timings and the paths the trees are in aside). Exit 0 when all is identical.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

STEPS = [
    ["synth", "--out", "world", "--identities", "16", "--clips", "1", "--faces", "portraits", "--speakers",
     "recorded", "--seconds", "3", "--workers", "2", "-q"],
    ["prepare", "--avspeech", "world/avspeech.csv", "--videos", "world/videos", "--out", "data", "--val", "0.2",
     "--test", "0.3", "--workers", "2", "-q"],
    ["prepare", "--images", "inputs/photos", "--out", "photos", "--val", "0.1", "--test", "0.2", "--workers", "2",
     "-q"],
    ["train-decoder", "--data", "photos", "--out", "decoder", "--steps", "6", "--batch-size", "4", "--eval-every", "3",
     "--log-every", "1", "--workers", "0", "--shuffle-buffer", "0", "-q"],
    ["train", "--data", "data", "--decoder", "decoder", "--out", "voice", "--steps", "6", "--batch-size", "4",
     "--eval-every", "3", "--log-every", "1", "--workers", "0", "--shuffle-buffer", "0", "-q"],
    ["train", "--data", "data", "--decoder", "decoder", "--out", "speaker", "--voice-backbone", "speaker",
     "--finetune-backbone", "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--log-every", "1",
     "--workers", "0", "--shuffle-buffer", "0", "-q"],
    ["evaluate", "--model", "voice", "--data", "data", "--out", "report", "--labels", "world/attributes.csv",
     "--device", "cpu"],
    ["evaluate-decoder", "--decoder", "decoder", "--data", "photos", "--out", "report-decoder", "--pool", "10",
     "--device", "cpu"],
    ["predict", "inputs/short.wav", "inputs/long.wav", "inputs/june.wav", "inputs/sample.wav", "--model", "demo", "-o",
     "faces", "--device", "cpu", "-q"],
    ["predict", "inputs/short.wav", "inputs/long.wav", "--model", "voice", "-o", "faces-voice", "--device", "cpu",
     "-q"],
]
RUNS = ("decoder", "voice", "speaker")
REPORTS = ("report", "report-decoder")
OUTPUTS = ("faces", "faces-voice", "data/shards", "photos/shards")
PATH_KEYS = {"data", "decoder", "voice", "model", "input"}


def inputs(folder: Path) -> None:
    """The recordings and photos both trees read."""
    from speech2face.data.photos import collection_folder

    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-w", str(folder / "short.wav"), "The quick brown fox jumps over the lazy dog."],
                   check=True)
    subprocess.run(["espeak-ng", "-w", str(folder / "long.wav"), "She sells sea shells by the sea shore, and the "
                    "shells she sells are surely sea shells. " * 2], check=True)
    shutil.copyfile("/usr/share/asterisk/sounds/fr_CA_f_June/hello-world.wav", folder / "june.wav")
    wheel = Path.home() / ".cache/speech2face/test-assets/pyannote_audio-4.0.7-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        (folder / "sample.wav").write_bytes(archive.read("pyannote/audio/sample/sample.wav"))
    (folder / "photos").mkdir(exist_ok=True)
    for photo in sorted(collection_folder("celeba-999").glob("*.jpg"))[:60]:
        shutil.copyfile(photo, folder / "photos" / photo.name)


def run_tree(source: Path, out: Path, shared: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "inputs").symlink_to(shared.resolve())
    environment = os.environ | {"PYTHONPATH": str(source.resolve()), "OMP_NUM_THREADS": "2"}
    for step in STEPS:
        log = out / f"{step[0]}-{STEPS.index(step)}.log"
        with log.open("w") as handle:
            done = subprocess.run([sys.executable, "-m", "speech2face", *step], cwd=out, env=environment,
                                  stdout=handle, stderr=subprocess.STDOUT)
        print(f"{source}: s2f {step[0]} -> exit {done.returncode}", flush=True)


def without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if "second" not in k and "_per_s" not in k and k not in PATH_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".json" and a.name.endswith(("stats.json", "metrics.json")):
        return without_timings(json.loads(a.read_text())) == without_timings(json.loads(b.read_text()))
    return filecmp.cmp(a, b, shallow=False)


def compare(old: Path, new: Path) -> bool:
    ok = True
    for run in RUNS:
        rows = [[without_timings(json.loads(line)) for line in (tree / run / "metrics.jsonl").read_text().splitlines()]
                for tree in (old, new)]
        weights = filecmp.cmp(old / run / "model.safetensors", new / run / "model.safetensors", shallow=False)
        losses = [round(row["loss"], 6) for row in rows[0] if "loss" in row]
        print(f"{run}: {len(rows[0])} logged rows identical: {rows[0] == rows[1]}; weights byte-identical: {weights}; "
              f"losses {losses}")
        ok &= rows[0] == rows[1] and weights
    for report in REPORTS:
        same = same_file(old / report / "metrics.json", new / report / "metrics.json")
        print(f"{report}/metrics.json identical (timings and paths aside): {same}")
        ok &= same
    for folder in OUTPUTS:
        names = sorted(str(p.relative_to(old / folder)) for p in (old / folder).rglob("*") if p.is_file())
        theirs = sorted(str(p.relative_to(new / folder)) for p in (new / folder).rglob("*") if p.is_file())
        different = [n for n in names if n in theirs and not same_file(old / folder / n, new / folder / n)]
        print(f"{folder}: {len(names)} files; names equal: {names == theirs}; different: {different}")
        ok &= names == theirs and not different
    print("ALL IDENTICAL" if ok else "DIFFERENCES")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="the old tree's src/ folder")
    parser.add_argument("new", type=Path, help="the new tree's src/ folder")
    parser.add_argument("--out", type=Path, default=Path("same-behaviour"))
    args = parser.parse_args()
    inputs(args.out / "inputs")
    for name, source in (("old", args.old), ("new", args.new)):
        run_tree(source, args.out / name, args.out / "inputs")
    return 0 if compare(args.out / "old", args.out / "new") else 1


if __name__ == "__main__":
    sys.exit(main())
