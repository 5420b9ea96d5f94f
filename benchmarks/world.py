"""How real the synthetic world looks and sounds to models and measures nobody here trained.

    python benchmarks/world.py [--identities 100] [--seed 3] [--face-noise 1] [--voices 24]

Faces: the real age/sex judge (Cydral, `faces.Judge`) on every 10th decoded video frame: agreement with the
world's sex, per frame and per identity (majority of its frames), beside chance (the majority sex's share).
Voices: Praat's median F0 of recorded voices after "Change gender", against their targets, per sex; and the
achieved vocal-tract scale: the shift of the spectral envelope against the same utterances untransformed
(`recorded.formant_shift`), times the recorded speaker's own scale (1 a man, 1.17 a woman).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import av
import numpy as np

from speech2face import faces
from speech2face.synth import WorldSettings, make_world, recorded, sample_identity
from speech2face.synth.attributes import FORMANT_SCALE, SEXES
from speech2face.synth.portraits import BUILTIN


def judge_world(world: Path) -> None:
    with (world / "attributes.csv").open() as handle:
        sex = {row["speaker_id"]: row["sex"] for row in csv.DictReader(handle)}
    judge, frames_right, identities_right = faces.Judge(), [], []
    for video in sorted((world / "videos").glob("*.mp4")):
        with av.open(str(video)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][::10]
        crops = [faces.align(f, faces.landmarks(f, boxes[0]), size=224).image
                 for f in frames if (boxes := faces.detect(f))]
        right = judge(np.stack(crops)).male == (sex[video.stem.split("_")[0]] == "male")
        frames_right += list(right)
        identities_right.append(right.mean() > 0.5)
    majority = max(np.mean([s == "male" for s in sex.values()]), np.mean([s == "female" for s in sex.values()]))
    print(f"judge ({judge.name}) vs the world's sex: {np.mean(frames_right):.3f} of {len(frames_right)} frames, "
          f"{np.mean(identities_right):.3f} of {len(identities_right)} identities (chance {majority:.3f})")


def measure_voices(count: int, seed: int) -> None:
    speakers = recorded.sources()
    portraits = [source.info for source in BUILTIN]
    rows: dict[str, list[tuple[float, float, float, float]]] = {sex: [] for sex in SEXES}
    for index in range(count):
        voice = sample_identity(seed, index, 1.0, portraits).voice
        source = recorded.pick_source(speakers, voice.sex, voice.source)
        original, _ = recorded.gather(source, np.random.default_rng(index))
        changed = recorded.change_gender(original, voice, source.speaker.sex, seed=index)
        scale = recorded.formant_shift(original, changed) * FORMANT_SCALE[source.speaker.sex]
        rows[voice.sex].append((recorded.median_f0(changed), voice.pitch_hz, scale, voice.formant_scale))
    for sex, values in rows.items():
        f0, f0_target, scale, scale_target = np.array(values).T
        print(f"{sex:>6} ({len(values)} voices): median F0 {np.median(f0):.0f} Hz (targets {np.median(f0_target):.0f}, "
              f"range {f0.min():.0f}-{f0.max():.0f}, mean |error| {np.mean(np.abs(f0 / f0_target - 1)):.1%}); "
              f"vocal-tract scale {scale.mean():.3f} (target {scale_target.mean():.3f}, "
              f"mean |error| {np.mean(np.abs(scale / scale_target - 1)):.1%})")
    ratio = np.mean([r[2] for r in rows["female"]]) / np.mean([r[2] for r in rows["male"]])
    print(f"women's / men's formant scale: {ratio:.3f} (target range 1.15-1.20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--face-noise", type=float, default=1.0)
    parser.add_argument("--voices", type=int, default=24, help="recorded voices to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = WorldSettings(args.identities, 1, args.seed, face_noise=args.face_noise, voices="espeak",
                                 faces="portraits")
        world = make_world(Path(folder) / "w", settings, workers=2, progress=False)
        judge_world(world)
    measure_voices(args.voices, args.seed)


if __name__ == "__main__":
    main()
