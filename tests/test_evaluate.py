"""Evaluation metrics against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face.evaluate import craniofacial, feature_similarity, matching_1_of_2, measure_correlations, retrieval


def brute_force(pred: np.ndarray, true: np.ndarray, k: int, metric: str, pools: list[np.ndarray]) -> float:
    """R@k by loops: per query, every pool item scored one by one; ties in expectation."""
    hits = 0.0
    for i, pool in enumerate(pools):
        def score(j: int, i: int = i) -> float:
            if metric == "cos":
                return float(pred[i] @ true[j] / np.linalg.norm(pred[i]) / np.linalg.norm(true[j]))
            d = pred[i] - true[j]
            return -float(np.abs(d).sum() if metric == "l1" else np.sqrt((d * d).sum()))
        own = score(i)
        better = sum(score(j) > own for j in pool if j != i)
        tied = sum(score(j) == own for j in pool if j != i)
        hits += min(1.0, max(0.0, (k - better) / (tied + 1)))
    return hits / len(pools)


@pytest.mark.parametrize("metric", ["cos", "l1", "l2"])
def test_retrieval_over_the_whole_set_matches_brute_force(metric: str) -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(60, 8)).astype(np.float32)
    pred = (true + rng.normal(scale=1.5, size=true.shape)).astype(np.float32)
    result = retrieval(pred, true, ks=(1, 5), pool=None, metric=metric, memory=500)  # many small chunks
    everyone = [np.arange(60)] * 60
    for k in (1, 5):
        assert result[f"R@{k}"] == pytest.approx(brute_force(pred, true, k, metric, everyone), abs=1e-9)
        assert result[f"chance_R@{k}"] == k / 60
    assert 1 <= result["median_rank"] <= 60 and result["pool"] == 60


def test_pool_protocol_holds_the_truth_and_distinct_others() -> None:
    rng = np.random.default_rng(1)
    true = rng.normal(size=(300, 6)).astype(np.float32)
    pred = (true + rng.normal(scale=2.0, size=true.shape)).astype(np.float32)
    result = retrieval(pred, true, ks=(1, 2, 5, 10), pool=100, seed=3)
    assert result["pool"] == 100 and result["chance_R@10"] == 0.1
    assert result["R@1"] > 3 * result["chance_R@1"]  # informative predictions
    again = retrieval(pred, true, ks=(1, 2, 5, 10), pool=100, seed=3)
    assert again == result  # seeded
    shuffled = retrieval(pred[rng.permutation(300)], true, ks=(1, 10), pool=100, seed=3)
    assert shuffled["R@10"] < 0.2  # uninformative predictions stay near chance (0.1)


def test_constant_predictions_score_chance_not_perfect() -> None:
    true = np.random.default_rng(2).normal(size=(50, 4))
    result = retrieval(np.ones((50, 4)), true, ks=(1, 5), pool=None)
    assert result["R@1"] == pytest.approx(1 / 50) and result["R@5"] == pytest.approx(5 / 50)
    assert result["mean_rank"] == pytest.approx(25.5)


def test_retrieval_runs_at_the_papers_scale_in_chunks() -> None:
    rng = np.random.default_rng(3)
    true = rng.normal(size=(150_000, 32)).astype(np.float32)  # the paper's ~0.15 M test pairs
    pred = true + rng.normal(size=true.shape).astype(np.float32)
    result = retrieval(pred, true, ks=(1, 10), pool=100, memory=10_000_000)  # ~40 MB per chunk
    assert result["queries"] == 150_000 and result["R@1"] > 0.5


def test_feature_similarity() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0]])
    stats = feature_similarity(a, b)
    assert stats["cosine"] == pytest.approx((np.sqrt(0.5) + 1) / 2)
    assert stats["angle_deg"] == pytest.approx(22.5)
    assert stats["l2"] == pytest.approx(np.sqrt(2 - 2 * np.sqrt(0.5)) / 2)
    assert stats["pairs"] == 2


def test_matching_1_of_2() -> None:
    rng = np.random.default_rng(4)
    true = rng.normal(size=(200, 8))
    assert matching_1_of_2(true, true)["accuracy"] == 1.0
    noise = matching_1_of_2(rng.normal(size=(200, 8)), true)
    assert abs(noise["accuracy"] - 0.5) < 0.1 and noise["chance"] == 0.5
    groups = np.arange(200) % 2
    controlled = matching_1_of_2(true, true, groups)
    assert controlled["accuracy"] == 1.0 and controlled["trials"] == 200


def test_craniofacial_measures_follow_their_formulas() -> None:
    points = np.zeros((1, 68, 2))
    points[0, 36:42] = [0, 0]  # right eye centre at (0, 0)
    points[0, 42:48] = [2, 0]  # left eye centre at (2, 0): iod 2
    points[0, 31], points[0, 35] = [0.5, 2], [1.5, 2]  # nose width 1
    points[0, 27], points[0, 33] = [1, 0], [1, 2]  # nose height 2
    points[0, 0], points[0, 16] = [-1, 1], [3, 1]  # face width 4
    points[0, 48], points[0, 54] = [0.2, 3], [1.8, 3]  # mouth width 1.6
    points[0, 8] = [1, 4]
    measures = craniofacial(points)
    assert measures["nose_width"][0] == pytest.approx(0.5) and measures["nasal_index"][0] == pytest.approx(0.5)
    assert measures["face_width"][0] == pytest.approx(2.0)
    assert measures["mouth_face_width_index"][0] == pytest.approx(0.4)
    assert measures["face_height_width_index"][0] == pytest.approx(1.0)


def test_measure_correlations_see_a_shared_signal() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(68, 2)) * 10
    faces = base + rng.normal(size=(80, 68, 2))
    related = measure_correlations(faces + 0.1 * rng.normal(size=faces.shape), faces)
    assert all(v["r"] > 0.8 and v["p"] < 1e-6 and abs(v["shuffled_r"]) < 0.4 for v in related.values())
