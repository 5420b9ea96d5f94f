"""The speaker voice encoder's head in closed form: ridge regression from the frozen d-vector to the face feature.

    s2f train --voice-backbone speaker --fit-head --steps 0 --data D --decoder RUN --out OUT

A few hundred training speakers support little more than a linear map from a speaker embedding to a face, and
gradient steps find it slowly and noisily; ridge regression finds it exactly. The d-vectors are standardised,
the face features centred (their mean is the intercept, never shrunk), and the strength is chosen by
cross-validation over the training SPEAKERS (folds never split a speaker): the mean rank, over chance, of each
held-back fold's predictions among that fold's true features (cosine, as `s2f evaluate` ranks).

Ridge shrinks every prediction towards the mean face, so every voice would draw nearly the same average face of
its sex. The deviations from the mean are therefore scaled by `spread_scale`: the held-back folds' mean distance of
the true features from the mean over that of the predictions, so that the drawn faces vary as much as real faces
do (chosen with the strength, on the same folds; it also improves cosine retrieval, which a large shared mean
dominates).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..evaluate.metrics import retrieval

STRENGTHS = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
FOLDS = 5
SPREAD_FLOOR = 0.1  # of the inputs' median spread (solve)
MIN_SPEAKERS = 2 * FOLDS  # fewer: no cross-validation worth the name


@dataclass(frozen=True)
class RidgeMap:
    """feature = output_mean + spread_scale * ((x - input_mean) / input_spread) @ weights; x: (N, D) -> (N, F)."""

    input_mean: np.ndarray  # (D,)
    input_spread: np.ndarray  # (D,)
    weights: np.ndarray  # (D, F)
    output_mean: np.ndarray  # (F,)
    strength: float
    spread_scale: float
    cv_rank_over_chance: float  # the chosen setting's cross-validated mean rank / chance (1: chance)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.output_mean + self.spread_scale * self.deviations(x)

    def deviations(self, x: np.ndarray) -> np.ndarray:
        """The unscaled predicted deviations from the mean feature (N, F)."""
        return ((np.asarray(x, np.float64) - self.input_mean) / self.input_spread) @ self.weights

    def summary(self) -> dict[str, float]:
        return {"strength": self.strength, "spread_scale": round(self.spread_scale, 4),
                "cv_mean_rank_over_chance": round(self.cv_rank_over_chance, 4)}


def solve(x: np.ndarray, y: np.ndarray, strength: float, spread_scale: float = 1.0) -> RidgeMap:
    """The ridge map of inputs x (N, D) onto outputs y (N, F) at one strength (float64 throughout)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    # a floor under the spread: a (nearly) constant input, such as the d-vector's entries that are always 0, would
    # otherwise be divided by ~0 and carry weights no half-precision file can hold
    mean, output_mean = x.mean(0), y.mean(0)
    spread = np.maximum(x.std(0), SPREAD_FLOOR * np.median(x.std(0)) + 1e-12)
    design = (x - mean) / spread
    weights = np.linalg.solve(design.T @ design + strength * np.eye(x.shape[1]), design.T @ (y - output_mean))
    return RidgeMap(mean, spread, weights, output_mean, strength, spread_scale, float("nan"))


def speaker_folds(speakers: list[str], folds: int, seed: int) -> list[np.ndarray]:
    """Row indices in `folds` groups, each speaker's rows together (speakers shuffled by `seed`)."""
    names = sorted(set(speakers))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: n % folds for n, i in enumerate(order)}
    return [np.array([row for row, name in enumerate(speakers) if fold_of[name] == k]) for k in range(folds)]


def fit_ridge(x: np.ndarray, y: np.ndarray, speakers: list[str], seed: int = 0,
              strengths: tuple[float, ...] = STRENGTHS) -> RidgeMap:
    """The ridge map of x (N, D) onto y (N, F) with its strength and spread scale chosen by `FOLDS`-fold
    cross-validation over `speakers` (one name per row). Raises ValueError with fewer than MIN_SPEAKERS."""
    if len(set(speakers)) < MIN_SPEAKERS or len(speakers) != len(x) or len(x) != len(y):
        raise ValueError(f"a closed-form head needs at least {MIN_SPEAKERS} training speakers, one name per "
                         f"clip; got {len(set(speakers))} speakers for {len(x)} clips")
    folds = speaker_folds(speakers, FOLDS, seed)
    rank, strength, scale = min(cross_validate(x, y, folds, strength, seed) for strength in strengths)
    return dataclasses.replace(solve(x, y, strength, scale), cv_rank_over_chance=rank)


def cross_validate(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], strength: float,
                   seed: int) -> tuple[float, float, float]:
    """One strength on held-back folds: (mean rank / chance, the strength, the spread scale). The scale is the
    folds' mean distance of the true features from the mean over that of the predicted deviations."""
    fitted = [(solve(np.delete(x, fold, axis=0), np.delete(y, fold, axis=0), strength), fold) for fold in folds]
    scale = float(np.mean([np.linalg.norm(y[fold] - f.output_mean, axis=1).mean()
                           / max(np.linalg.norm(f.deviations(x[fold]), axis=1).mean(), 1e-12) for f, fold in fitted]))
    ranks = []
    for f, fold in fitted:
        found = retrieval(f.output_mean + scale * f.deviations(x[fold]), y[fold], pool=None, seed=seed)
        ranks.append(found["mean_rank"] / found["chance_mean_rank"])
    return float(np.mean(ranks)), strength, scale
