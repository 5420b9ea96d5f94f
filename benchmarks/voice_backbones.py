"""The paper's CNN vs the pretrained speaker encoder as the voice backbone: the same world, the same decoder, the
same steps and the same seed; R@K on held-out synthetic speakers, the judge's sex agreement, held-out real voices
(the "choosing" half of their prompts: this comparison chooses the demo's backbone, so it never sees the measuring
half), and training time.

    s2f demo --quick --out demo                                   # a world, shards and a decoder (once)
    python benchmarks/voice_backbones.py --demo demo [--steps 900] [--out backbones]

Rows: paper (the small CNN, as the demo trains it), speaker (frozen, MLP head), speaker-finetune (the LSTM too, at
0.1 x lr), speaker-ridge (frozen, the head set by ridge regression in closed form, no gradient step: `--fit-head
--steps 0`), speaker-ridge-trained (that head, then --steps steps of the paper's loss).
Each run is kept in OUT/NAME (rerun to reuse); the table is also written to OUT/table.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from speech2face import Speech2Face
from speech2face.demo import QUICK, demo_card, describe_backbone, voice_settings
from speech2face.evaluate.protocol import EvaluationSettings, evaluate_model
from speech2face.evaluate.real_voices import judge_real_voices
from speech2face.model_folder import EVAL_FILE, package_run
from speech2face.train import train_voice

# name: (backbone, fine-tune it, fit the head in closed form, steps (None: --steps))
RUNS = {"paper": ("paper", False, False, None), "speaker": ("speaker", False, False, None),
        "speaker-finetune": ("speaker", True, False, None), "speaker-ridge": ("speaker", False, True, 0),
        "speaker-ridge-trained": ("speaker", False, True, None)}
STEPS = 700  # the trained rows' default: what the quick demo trained before the closed-form head


def run_one(name: str, demo: Path, out: Path, steps: int, seed: int) -> dict[str, object]:
    backbone, finetune, fit_head, fixed_steps = RUNS[name]
    run = out / name
    start = time.perf_counter()
    if not (run / EVAL_FILE).is_file():
        settings = voice_settings(dataclasses.replace(QUICK, voice_steps=steps), seed, backbone, finetune, fit_head)
        settings = dataclasses.replace(settings, steps=steps if fixed_steps is None else fixed_steps)
        train_voice(demo / "data", demo / "decoder", run, settings, resume=True, progress=False)
    trained = time.perf_counter() - start
    metrics = evaluate_model(run, demo / "data", run / "report", labels=demo / "world" / "attributes.csv",
                             settings=EvaluationSettings(seed=seed, device="cpu"))
    what = describe_backbone(backbone, finetune, fit_head)
    folder = package_run(run, run / "model", demo_card(metrics, None, seed, 1.0, what))
    real = judge_real_voices(Speech2Face.from_pretrained(folder, device="cpu"), seed=seed, half="choosing")
    cos, sex = metrics["retrieval"]["cos"], metrics["judge"]["sex"]
    return {"backbone": name, "R@1": cos["R@1"], "chance_R@1": cos["chance_R@1"], "R@5": cos["R@5"],
            "chance_R@5": cos["chance_R@5"], "mean_rank": cos["mean_rank"], "chance_mean_rank": cos["chance_mean_rank"],
            "judge_sex": sex["voice"]["agreement"], "judge_sex_upper": sex["upper_bound"]["agreement"],
            "real_voices": real["agreement"], **{name: v["agreement"] for name, v in real["speakers"].items()},
            "train_seconds": round(trained, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a s2f demo output folder (world, data, decoder)")
    parser.add_argument("--out", type=Path, default=Path("backbones"))
    parser.add_argument("--steps", type=int, default=STEPS, help="of the trained rows (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", choices=tuple(RUNS), default=list(RUNS))
    args = parser.parse_args()

    rows = [run_one(name, args.demo, args.out, args.steps, args.seed) for name in args.runs]
    print(f"{'backbone':<22}{'R@1':>6}{'chance':>8}{'R@5':>6}{'chance':>8}{'rank':>6}{'chance':>8}{'sex':>6}"
          f"{'real':>6}{'carlo':>7}{'menardi':>9}{'train s':>9}")
    for row in rows:
        print(f"{row['backbone']:<22}{row['R@1']:>6.3f}{row['chance_R@1']:>8.3f}{row['R@5']:>6.3f}"
              f"{row['chance_R@5']:>8.3f}{row['mean_rank']:>6.1f}{row['chance_mean_rank']:>8.1f}{row['judge_sex']:>6.2f}"
              f"{row['real_voices']:>6.2f}{row['carlo']:>7.2f}{row['menardi']:>9.2f}{row['train_seconds']:>9.0f}")
    print("sex: the judge's agreement between the face drawn from the voice and the true face (chance 0.5, upper "
          f"bound {rows[0]['judge_sex_upper']:.2f}); real: held-out real voices (choosing prompts), the judge vs the "
          "speaker's sex (0.5)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
