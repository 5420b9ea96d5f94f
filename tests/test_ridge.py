"""The closed-form head: ridge regression against a brute-force least-squares solve, folds by speaker, the
cross-validated choice, and the speaker voice encoder's head set to an affine map exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speech2face.evaluate.metrics import retrieval
from speech2face.models import SpeakerVoiceConfig, SpeakerVoiceEncoder
from speech2face.train.ridge import FOLDS, MIN_SPEAKERS, fit_ridge, solve, speaker_folds
from speech2face.voice.speakers import EMBEDDING

TRUTH = np.random.default_rng(42).normal(size=(12, 6))  # the world's linear map


def world(rng: np.random.Generator, speakers: int, clips: int,
          noise: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (N, 12) and outputs (N, 6) linked by TRUTH, with a large shared output mean (as face features have),
    `clips` noisy inputs per speaker sharing its output."""
    people = rng.normal(size=(speakers, 12))
    x = np.repeat(people, clips, axis=0) + noise * rng.normal(size=(speakers * clips, 12))
    y = np.repeat(people @ TRUTH, clips, axis=0) + 20.0
    return x, y, [f"id{i:03d}" for i in range(speakers) for _ in range(clips)]


def test_the_ridge_solution_is_the_least_squares_solution_of_the_augmented_system() -> None:
    """Ridge on standardised inputs with an unpenalised intercept = least squares of [Z; sqrt(l) I] against
    [Y - mean; 0] (brute force, lstsq)."""
    rng = np.random.default_rng(0)
    x, y, _ = world(rng, 40, 1, 0.5)
    for strength in (0.1, 10.0, 1000.0):
        fitted = solve(x, y, strength)
        z = (x - x.mean(0)) / x.std(0)
        augmented = np.r_[z, math.sqrt(strength) * np.eye(12)]
        target = np.r_[y - y.mean(0), np.zeros((12, 6))]
        brute = np.linalg.lstsq(augmented, target, rcond=None)[0]
        np.testing.assert_allclose(fitted.weights, brute, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(fitted(x), y.mean(0) + z @ brute, rtol=1e-6, atol=1e-9)
    # no shrinkage at all: the ordinary least-squares fit, which reproduces a noiseless linear world exactly
    x, y, _ = world(rng, 40, 1, 0.0)
    np.testing.assert_allclose(solve(x, y, 1e-9)(x), y, atol=1e-5)


def test_folds_never_split_a_speaker_and_cover_every_row() -> None:
    names = [f"s{i % 23}" for i in range(100)]
    folds = speaker_folds(names, FOLDS, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    owners = [{names[row] for row in fold} for fold in folds]
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1:])
    assert all(4 <= len(people) <= 5 for people in owners)  # 23 speakers in 5 folds


def test_the_cross_validated_choice_beats_chance_and_scales_deviations_to_the_faces_spread() -> None:
    """A noisy world of 60 speakers x 2 clips (noise as strong as the signal): the chosen strength is the one whose
    held-back folds rank best, the spread scale brings the predictions' deviations from the mean up to the true
    ones' size (ridge shrinks them), and new speakers are retrieved far above chance."""
    rng = np.random.default_rng(3)
    x, y, names = world(rng, 60, 2, 1.0)
    fitted = fit_ridge(x, y, names, seed=0, strengths=(1.0, 100.0, 10000.0))
    assert fitted.strength in (1.0, 100.0, 10000.0) and 0 < fitted.cv_rank_over_chance < 0.8
    assert fitted.spread_scale > 1.0  # ridge shrinks; the scale undoes it on average
    new_x, true, _ = world(np.random.default_rng(9), 50, 1, 1.0)  # speakers nothing was fitted on
    predicted = fitted(new_x)
    found = retrieval(predicted, true, pool=None)
    assert found["mean_rank"] < 0.5 * found["chance_mean_rank"], found
    spread_true = np.linalg.norm(true - fitted.output_mean, axis=1).mean()
    spread_predicted = np.linalg.norm(predicted - fitted.output_mean, axis=1).mean()
    assert 0.6 < spread_predicted / spread_true < 1.6
    # each strength's own cross-validated score: the chosen one is the best of them
    alone = [fit_ridge(x, y, names, seed=0, strengths=(s,)).cv_rank_over_chance for s in (1.0, 100.0, 10000.0)]
    assert fitted.cv_rank_over_chance == min(alone)


def test_too_few_speakers_are_refused() -> None:
    x, y, names = world(np.random.default_rng(0), MIN_SPEAKERS - 1, 3, 0.1)
    with pytest.raises(ValueError, match=f"at least {MIN_SPEAKERS} training speakers"):
        fit_ridge(x, y, names)


def test_the_speaker_voice_encoders_head_holds_an_affine_map_exactly() -> None:
    """set_linear_head: the head on (d-vector x sqrt(256)) = ((v - mean) / spread) @ W + b, for unit d-vectors
    like the backbone's (non-negative)."""
    rng = np.random.default_rng(0)
    model = SpeakerVoiceEncoder(SpeakerVoiceConfig(output_dim=7)).eval()
    mean, spread = rng.uniform(0, 0.1, EMBEDDING), rng.uniform(0.01, 0.05, EMBEDDING)
    weights, bias = rng.normal(scale=0.05, size=(EMBEDDING, 7)), rng.normal(size=7)
    as_tensor = lambda a: torch.from_numpy(a).float()  # noqa: E731
    model.set_linear_head(as_tensor(mean), as_tensor(spread), as_tensor(weights), as_tensor(bias))
    vectors = np.abs(rng.normal(size=(20, EMBEDDING)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with torch.no_grad():
        head = model.head(as_tensor(vectors) * math.sqrt(EMBEDDING)).numpy()
    np.testing.assert_allclose(head, ((vectors - mean) / spread) @ weights + bias, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="hidden_dim >= 512"):
        SpeakerVoiceEncoder(SpeakerVoiceConfig(output_dim=7, hidden_dim=256)).set_linear_head(
            as_tensor(mean), as_tensor(spread), as_tensor(weights), as_tensor(bias))


def test_dead_inputs_get_no_weight_and_the_fitted_head_survives_half_precision() -> None:
    """d-vectors have entries that are always 0 (the speaker encoder's ReLU): they get no weight, and the head set
    from the map keeps its predictions when stored in fp16, as `s2f demo --ship` stores it."""
    rng = np.random.default_rng(5)
    vectors = np.abs(rng.normal(size=(200, EMBEDDING)))
    vectors[:, :16] = 0.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    features = vectors @ rng.normal(size=(EMBEDDING, 8)) * 4 + 1.0 + 0.1 * rng.normal(size=(200, 8))
    fitted = fit_ridge(vectors, features, [f"s{i // 2}" for i in range(200)])
    assert np.isfinite(fitted.weights).all() and not fitted.weights[:16].any()
    model = SpeakerVoiceEncoder(SpeakerVoiceConfig(output_dim=8)).eval()
    model.set_linear_head(*(torch.from_numpy(np.asarray(a, np.float32)) for a in (
        fitted.input_mean, fitted.input_spread, fitted.weights * fitted.spread_scale, fitted.output_mean)))
    model.head.load_state_dict({k: v.half().float() for k, v in model.head.state_dict().items()})
    with torch.no_grad():
        head = model.head(torch.from_numpy(vectors).float() * math.sqrt(EMBEDDING)).numpy()
    expected = fitted(vectors)
    deviation = np.linalg.norm(expected - fitted.output_mean, axis=1)
    assert (np.linalg.norm(head - expected, axis=1) < 0.02 * deviation).all()
