"""How far a linear map from the frozen speaker encoder's d-vector gets, against the demo's trained voice encoder:
the same world, the same held-out speakers, the same retrieval protocol (pools of 100, cosine).

    s2f demo --quick --out demo                          # a world, its shards and a trained model (once)
    python benchmarks/linear_probe.py --demo demo [--as-model OUT]

The probe: per training speaker its first clip's first 6 s -> `speakers.embed_windows` (Resemblyzer's d-vector,
256-d, frozen) -> ridge regression (closed form, features standardised) onto the true face feature. Its strength
is chosen by 5-fold cross-validation on the training speakers alone (mean rank over chance in each fold), then the
held-out speakers (test + val, `evaluate.protocol.evaluation_clips`) are scored once. Beside it: the demo's own
figures (its report/metrics.json), chance, and the probe at every strength tried (looked at on the held-out
speakers: for reading only, chosen by nothing).

`--as-model OUT` builds the probe into a model and measures it as the demo measures its own: a `SpeakerVoiceEncoder`
with the frozen backbone whose head (256 -> 512 -> ReLU -> 128) is set to the ridge map exactly (first layer
[S; -S] with S the standardisation, second [W, -W]: relu(z) - relu(-z) = z), the demo's decoder, `s2f evaluate`'s
protocol (retrieval, the judge's sex agreement on the drawn faces) and the real voices' "choosing" half.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from speech2face import Speech2Face
from speech2face.data import read_shard
from speech2face.data.dataset import shard_paths
from speech2face.data.splits import voice_clip
from speech2face.evaluate.metrics import PAPER_POOL, retrieval
from speech2face.evaluate.protocol import EvaluationSettings, evaluate_model, evaluation_clips
from speech2face.evaluate.real_voices import judge_real_voices
from speech2face.model_folder import ModelCard
from speech2face.models import FaceDecoder
from speech2face.models.speaker_voice import SpeakerVoiceConfig, SpeakerVoiceEncoder
from speech2face.voice import speakers

STRENGTHS = (1, 3, 10, 30, 100, 300, 1000, 3000)
FOLDS = 5


def training_clips(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per training speaker (first seen) its first clip's first 6 s and its true feature."""
    waves, features, seen = [], [], set()
    for path in shard_paths(data, "train"):
        for sample in read_shard(path):
            if sample["meta"]["speaker"] not in seen:
                seen.add(sample["meta"]["speaker"])
                clip = voice_clip(sample)
                waves.append(clip["wave"])
                features.append(clip["feature"])
    return np.stack(waves), np.stack(features)


def ridge_map(x_train: np.ndarray, y_train: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression on standardised inputs (a bias column added): the inputs' mean and spread, and the weights
    (inputs + 1, outputs)."""
    mean, spread = x_train.mean(0), x_train.std(0) + 1e-8
    design = np.c_[(x_train - mean) / spread, np.ones(len(x_train))]
    return mean, spread, np.linalg.solve(design.T @ design + strength * np.eye(design.shape[1]), design.T @ y_train)


def ridge(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, strength: float) -> np.ndarray:
    """The ridge map fitted on (x_train, y_train), applied to x_test."""
    mean, spread, weights = ridge_map(x_train, y_train, strength)
    return np.c_[(x_test - mean) / spread, np.ones(len(x_test))] @ weights


def as_model(train_waves: np.ndarray, train_features: np.ndarray, strength: float, demo: Path, out: Path) -> None:
    """The probe as a model folder (frozen backbone, the head set to the ridge map, the demo's decoder), measured."""
    voice = SpeakerVoiceEncoder.from_speaker_encoder(
        SpeakerVoiceConfig(output_dim=train_features.shape[1], hidden_dim=2 * speakers.EMBEDDING)).eval()
    with torch.no_grad():  # what the head reads: the d-vector scaled by sqrt(256) (SpeakerVoiceEncoder.forward)
        vectors = torch.cat([voice.backbone.embed_waves(torch.from_numpy(train_waves[i:i + 16]))
                             for i in range(0, len(train_waves), 16)]).numpy() * math.sqrt(speakers.EMBEDDING)
        mean, spread, weights = ridge_map(vectors, train_features, strength)
        first, second = voice.head[0], voice.head[2]
        first.weight.copy_(torch.from_numpy(np.r_[np.diag(1 / spread), -np.diag(1 / spread)]).float())
        first.bias.copy_(torch.from_numpy(np.r_[-mean / spread, mean / spread]).float())
        second.weight.copy_(torch.from_numpy(np.c_[weights[:-1].T, -weights[:-1].T]).float())
        second.bias.copy_(torch.from_numpy(weights[-1]).float())
    card = ModelCard(name="linear-probe", synthetic=True, description="ridge head on the frozen speaker encoder")
    decoder = FaceDecoder.from_pretrained(demo / "model" / "decoder")
    folder = Speech2Face(voice, decoder, card, "cpu").save_pretrained(out)
    metrics = evaluate_model(folder / "voice", demo / "data", folder / "report", decoder_dir=folder / "decoder",
                             labels=demo / "world" / "attributes.csv",
                             settings=EvaluationSettings(seed=0, device="cpu"))
    real = judge_real_voices(Speech2Face.from_pretrained(folder, device="cpu"), seed=0, half="choosing")
    cos, sex = metrics["retrieval"]["cos"], metrics["judge"]["sex"]["voice"]["agreement"]
    print(f"as a model ({folder}): R@1 {cos['R@1']:.3f}, R@5 {cos['R@5']:.3f}, mean rank {cos['mean_rank']:.1f}; "
          f"the judge's sex agreement (drawn face vs true face) {sex:.3f}; real voices, choosing half: "
          + ", ".join(f"{name} {v['agreement']:.2f}" for name, v in real["speakers"].items()))


def cross_validated(x: np.ndarray, y: np.ndarray) -> dict[float, float]:
    """Per strength: the mean rank over chance of each held-back fold ranked among itself, averaged."""
    folds = np.array_split(np.random.default_rng(0).permutation(len(x)), FOLDS)
    out = {}
    for strength in STRENGTHS:
        scores = []
        for fold in folds:
            rest = np.setdiff1d(np.arange(len(x)), fold)
            ranked = retrieval(ridge(x[rest], y[rest], x[fold], strength), y[fold], pool=None)
            scores.append(ranked["mean_rank"] / ranked["chance_mean_rank"])
        out[strength] = float(np.mean(scores))
    return out


def row(name: str, figures: dict[str, float]) -> str:
    return (f"{name:<44}{figures['R@1']:>7.3f}{figures['R@5']:>7.3f}{figures['R@10']:>7.3f}"
            f"{figures['mean_rank']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a `s2f demo` output folder")
    parser.add_argument("--as-model", type=Path, metavar="OUT", help="also build the probe into a model there")
    args = parser.parse_args()
    data = args.demo / "data"
    train_waves, train_features = training_clips(data)
    held = evaluation_clips(data)
    train_vectors = speakers.embed_windows(list(train_waves), device="cpu")
    held_vectors = speakers.embed_windows(list(held["wave"]), device="cpu")
    print(f"{len(train_waves)} training speakers, {len(held['speakers'])} held out, pool {PAPER_POOL}")
    print(f"{'':<44}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'mean rank':>11}")
    report = json.loads((args.demo / "report" / "metrics.json").read_text())["retrieval"]["cos"]
    print(row("the demo's trained voice encoder", report))
    scores = cross_validated(train_vectors, train_features)
    chosen = min(scores, key=scores.get)
    probe = retrieval(ridge(train_vectors, train_features, held_vectors, chosen), held["feature"], pool=PAPER_POOL)
    print(row(f"ridge on frozen d-vectors (strength {chosen}, by CV)", probe))
    print(row("chance", {"R@1": probe["chance_R@1"], "R@5": probe["chance_R@5"], "R@10": probe["chance_R@10"],
                         "mean_rank": probe["chance_mean_rank"]}))
    print("every strength, on the held-out speakers (for reading only; cross-validated mean rank / chance beside):")
    for strength in STRENGTHS:
        figures = retrieval(ridge(train_vectors, train_features, held_vectors, strength), held["feature"],
                            pool=PAPER_POOL)
        print(row(f"  strength {strength} (cv {scores[strength]:.3f})", figures))
    if args.as_model:
        as_model(train_waves, train_features, chosen, args.demo, args.as_model)


if __name__ == "__main__":
    main()
