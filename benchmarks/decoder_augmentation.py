"""Does augmentation help the face decoder? The same 128 px decoder trained on the same photo shards with and
without each augmentation, each judged on the same held-out photos (`s2f evaluate-decoder`: FaceNet retrieval
in pools of 100, the judge's sex and age, landmark error), beside the nearest-training-face baseline. Also the
training time of each variant on this machine.

    s2f prepare --images celeba-999 --out photo-shards --val 0.05 --test 0.15 --workers 2
    python benchmarks/decoder_augmentation.py --data photo-shards --out runs/augmentation [--steps 2500]
    python benchmarks/decoder_augmentation.py ... --variants none        # one variant (run several at once)

A finished variant is not trained again (its run folder holds eval.json), so a second call prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from speech2face.evaluate.photos import DecoderEvaluationSettings, evaluate_decoder
from speech2face.train import DecoderTraining, train_decoder

VARIANTS = {  # name -> (flip, morph, colour) probabilities
    "none": (0.0, 0.0, 0.0),
    "flip": (0.5, 0.0, 0.0),
    "flip+morph": (0.5, 0.3, 0.0),
    "flip+morph+colour": (0.5, 0.3, 0.3),
}


def run_variant(name: str, data: Path, out: Path, steps: int, seed: int) -> dict:
    flip, morph, colour = VARIANTS[name]
    run = out / name
    if not (run / "eval.json").is_file():
        start = time.perf_counter()
        train_decoder(data, run, DecoderTraining(size="medium", steps=steps, flip=flip, morph=morph, colour=colour,
                                                 seed=seed, eval_every=steps), resume=True)
        (run / "seconds.json").write_text(json.dumps({"train_seconds": time.perf_counter() - start}))
    report = out / f"{name}-report"
    if not (report / "metrics.json").is_file():
        evaluate_decoder(run, [data], report, DecoderEvaluationSettings(seed=seed))
    metrics = json.loads((report / "metrics.json").read_text())
    seconds = json.loads((run / "seconds.json").read_text())["train_seconds"] if (run / "seconds.json").is_file() \
        else float("nan")
    return metrics | {"train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="photo shards (s2f prepare --images)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    rows = {name: run_variant(name, args.data, args.out, args.steps, args.seed) for name in args.variants.split(",")}
    first = next(iter(rows.values()))
    print(f"{args.steps} steps of 16 photos; {first['identities']} held-out photos, pool {first['pool']}, "
          f"chance R@1 {first['chance']['R@1']:.3f}; scorer {first['scorer']['network']}")
    print(f"{'variant':<20}{'R@1':>7}{'R@5':>7}{'cosine':>8}{'sex':>7}{'age diff':>9}{'lmk %IOD':>9}{'train min':>10}")
    for name, found in rows.items():
        row, judged = found["decoder"]["scorer"], found["decoder"]["judge"]
        print(f"{name:<20}{row['R@1']:>7.3f}{row['R@5']:>7.3f}{row['cosine']:>8.3f}{judged['sex_agreement']:>7.3f}"
              f"{judged['age_mean_abs_difference']:>9.1f}{found['decoder']['landmark_error_iod_pct']:>9.2f}"
              f"{found['train_seconds'] / 60:>10.1f}")
    nearest = first["nearest_training_face"]
    print(f"{'nearest training face':<20}{nearest['scorer']['R@1']:>7.3f}{nearest['scorer']['R@5']:>7.3f}"
          f"{nearest['scorer']['cosine']:>8.3f}{nearest['judge']['sex_agreement']:>7.3f}"
          f"{nearest['judge']['age_mean_abs_difference']:>9.1f}{nearest['landmark_error_iod_pct']:>9.2f}")


if __name__ == "__main__":
    main()
