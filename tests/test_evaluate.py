"""Evaluation metrics against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face.errors import DataError, ModelError
from speech2face.evaluate import (
    Probe,
    agreement,
    craniofacial,
    demographic_agreement,
    feature_similarity,
    matching_1_of_2,
    measure_correlations,
    retrieval,
)
from speech2face.evaluate.labels import load_labels
from speech2face.models import SpeakerVoiceConfig, SpeakerVoiceEncoder
from speech2face.models.voice_encoder import encode_waves


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


def test_probe_learns_a_linear_attribute_and_generalises() -> None:
    rng = np.random.default_rng(0)
    direction = rng.normal(size=32)
    features = rng.normal(size=(400, 32)) * 3 + 10  # off-centre and scaled: the probe standardises
    labels = ((features - 10) @ direction > 0).astype(int)
    probe = Probe(features[:300], labels[:300], classes=2)
    assert np.mean(probe.predict(features[300:]) == labels[300:]) > 0.9
    three = np.digitize((features - 10) @ direction, [-5, 5])  # 3 ordered classes; the largest holds 40 %
    predicted = Probe(features[:300], three[:300], classes=3).predict(features[300:])
    assert np.mean(predicted == three[300:]) > 0.65


def test_agreement_against_counting_by_hand() -> None:
    a = np.array([0, 0, 1, 1, 1, 2])
    b = np.array([0, 1, 1, 1, 2, 2])
    result = agreement(a, b, classes=3)
    assert result["agreement"] == pytest.approx(4 / 6)
    assert result["confusion"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    # independent classifiers with these frequencies: sum_c p_a(c) p_b(c)
    assert result["chance"] == pytest.approx((2 / 6) * (1 / 6) + (3 / 6) * (3 / 6) + (1 / 6) * (2 / 6))
    assert result["kappa"] == pytest.approx((4 / 6 - result["chance"]) / (1 - result["chance"]))
    assert agreement(a, a, 3)["kappa"] == pytest.approx(1.0)


def test_demographic_agreement_separates_an_informative_from_a_random_face() -> None:
    rng = np.random.default_rng(1)
    direction = rng.normal(size=16)

    def faces(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 16))
        return x, (x @ direction > 0).astype(int)

    train, train_labels = faces(300)
    true, true_labels = faces(200)
    informative = true + 0.3 * rng.normal(size=true.shape)
    result = demographic_agreement(train, train_labels, true, true_labels, voice_features=rng.normal(size=true.shape),
                                   upper_features=informative, classes=2)
    assert result["probe_accuracy"] > 0.9
    assert result["upper_bound"]["agreement"] > 0.85 and result["upper_bound"]["kappa"] > 0.6
    assert abs(result["voice"]["kappa"]) < 0.2  # a random face agrees at chance


def test_load_labels_reads_text_binary_and_numeric_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "labels.csv"
    path.write_text("speaker_id,gender,smiling,age,other\na,female,1,30,x\nb,male,0,50,y\nc,,1,41,z\n")
    labels = load_labels(path)
    assert set(labels) == {"gender", "age"}  # known columns only, by default
    assert labels["gender"].classes == ("female", "male")
    assert labels["gender"].of(["b", "a", "c", "unknown"]).tolist() == [1, 0, -1, -1]
    assert labels["age"].of(["a", "b", "c"]).tolist() == [0, 1, 0]  # split at the median, 41
    smiling = load_labels(path, ("smiling",))["smiling"]
    assert smiling.classes == ("0", "1") and smiling.of(["a", "b"]).tolist() == [1, 0]
    with pytest.raises(DataError, match="no label column"):
        load_labels(path, ("height",))
    (tmp_path / "bad.csv").write_text("name,gender\na,f\n")
    with pytest.raises(DataError, match="speaker_id"):
        load_labels(tmp_path / "bad.csv")


def test_non_finite_features_are_refused_not_ranked_first() -> None:
    """NaN compares false with everything: ranked, a broken model's NaN predictions would score R@1 1.0."""
    true = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ValueError, match="non-finite"):
        retrieval(np.full((10, 4), np.nan), true, pool=None)
    broken = SpeakerVoiceEncoder(SpeakerVoiceConfig(output_dim=4))
    with torch.no_grad():
        broken.head[2].bias.fill_(float("inf"))
    with pytest.raises(ModelError, match="non-finite features"):
        encode_waves(broken, torch.zeros(2, 16000))
