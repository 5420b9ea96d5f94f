"""Evaluation on held-out speakers. Every number comes with its baseline and chance.

`decoder_quality`: how well the face decoder redraws a face from its feature.
`voice_quality`: predicted vs true face features: cosine, and S2F -> face retrieval R@K.
`feature_similarity`, `retrieval`, `matching_1_of_2`, `craniofacial`, `demographic_agreement`: the paper's protocols.
"""

from __future__ import annotations

from math import erf, sqrt

import numpy as np
import torch
import torch.nn.functional as F

from ..faces.landmarks import LEFT_EYE, RIGHT_EYE

PAPER_POOL = 100  # retrieval pool size of the paper's protocol (s2f evaluate, s2f evaluate-decoder)


def landmark_error_iod(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per face: mean point error in % of the true inter-ocular distance; (N, 68, 2) each -> (N,)."""
    eyes = np.linalg.norm(true[:, LEFT_EYE].mean(axis=1) - true[:, RIGHT_EYE].mean(axis=1), axis=1)
    return 100 * np.linalg.norm(predicted - true, axis=2).mean(axis=1) / eyes


def top1_same_speaker(queries: np.ndarray, gallery: np.ndarray, speakers: np.ndarray) -> tuple[float, float]:
    """R@1 by cosine: how often the nearest gallery item to query i has i's speaker; and its chance."""
    nearest = (unit_rows(queries) @ unit_rows(gallery).T).argmax(axis=1)
    hits = float(np.mean(speakers[nearest] == speakers))
    _, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
    return hits, float(np.mean(counts[inverse] / len(speakers)))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows (the last axis) scaled to unit length."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (unit_rows(a) * unit_rows(b)).sum(1)


@torch.no_grad()
def decoder_quality(decoded_images: torch.Tensor, decoded_landmarks: torch.Tensor, faces: torch.Tensor,
                    landmarks: torch.Tensor, speakers: list[str], embed: torch.nn.Module,
                    mean_landmarks: torch.Tensor) -> dict[str, dict[str, float]]:
    """Decoded faces against their inputs; all (N, 3, S, S) in [0, 1] / (N, 68, 2) normalised.

    Rows: `decoder`, and the `mean_face` baseline (the pixel mean of the inputs, drawn at the mean
    landmarks, for everyone). Columns: landmark error (% IOD), pixel L1 (0-255), identity cosine
    (face encoder, decoded vs input), R@1 (the decoded face's nearest input, by the encoder, is of the same
    speaker) with its chance.
    """
    speaker_ids = np.asarray(speakers)
    true_lm = landmarks.cpu().numpy()
    inputs = torch.cat([embed(chunk) for chunk in faces.split(64)]).cpu().numpy()
    mean_face = faces.mean(dim=0, keepdim=True)
    rows = {}
    for name, images, points in (
        ("decoder", decoded_images, decoded_landmarks.cpu().numpy()),
        ("mean_face", mean_face.expand_as(faces), np.broadcast_to(mean_landmarks.cpu().numpy(), true_lm.shape)),
    ):
        embedded = torch.cat([embed(chunk) for chunk in images.split(64)]).cpu().numpy()
        hits, chance = top1_same_speaker(embedded, inputs, speaker_ids)
        rows[name] = {
            "landmark_error_iod_pct": float(landmark_error_iod(points, true_lm).mean()),
            "pixel_l1": float(255 * F.l1_loss(images, faces)),
            "identity_cosine": float(cosine_rows(embedded, inputs).mean()),
            "R@1": hits, "chance_R@1": chance,
        }
    rows["faces"] = {"count": len(speakers), "speakers": len(set(speakers))}
    return rows


def voice_quality(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Feature cosine (mean; and of a shuffled pairing, the chance level) and R@K with the whole held-out
    set as the pool (the paper's pool-of-100 protocol: `retrieval`, `s2f evaluate`)."""
    shuffled = np.random.default_rng(0).permutation(len(true))
    return {"cosine": float(cosine_rows(predicted, true).mean()),
            "chance_cosine": float(cosine_rows(predicted, true[shuffled]).mean()),
            **retrieval(predicted, true, pool=None)}


def feature_similarity(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Per pair, on unit-normalised features: L1 and L2 distance, cosine and its angle in degrees;
    each as mean and std over the pairs."""
    p, t = unit_rows(np.asarray(predicted, np.float64)), unit_rows(np.asarray(true, np.float64))
    cosine = (p * t).sum(axis=1).clip(-1, 1)
    values = {"l1": np.abs(p - t).sum(axis=1), "l2": np.linalg.norm(p - t, axis=1), "cosine": cosine,
              "angle_deg": np.degrees(np.arccos(cosine))}
    out: dict[str, float] = {"pairs": len(p)}
    for name, column in values.items():
        out[name], out[f"{name}_std"] = float(column.mean()), float(column.std())
    return out


def _scores(queries: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """Higher = more similar; (Q, D) x (Q, P, D) -> (Q, P) or (Q, D) x (G, D) -> (Q, G)."""
    pooled = gallery.ndim == 3
    if metric == "cos":
        q, g = unit_rows(queries), unit_rows(gallery)
        return np.einsum("qd,qpd->qp", q, g) if pooled else q @ g.T
    if metric not in ("l1", "l2"):
        raise ValueError(f"metric must be cos, l1 or l2, got {metric!r}")
    difference = (queries[:, None, :] - (gallery if pooled else gallery[None]))
    return -(np.abs(difference).sum(-1) if metric == "l1" else np.sqrt((difference**2).sum(-1)))


def retrieval(pred: np.ndarray, true: np.ndarray, ks: tuple[int, ...] = (1, 2, 5, 10), pool: int | None = PAPER_POOL,
              metric: str = "cos", seed: int = 0, memory: int = 50_000_000) -> dict[str, float]:
    """S2F -> face retrieval. Query i (predicted feature i) ranks a pool of true features that holds true i
    and `pool - 1` others drawn at random (seeded) per query, or all N (pool None or >= N). Ties are broken
    at random in expectation: with b better and t tied others, P(rank < K) = clip((K - b) / (t + 1), 0, 1),
    so constant predictions score chance, not 100 %. Returns R@K, chance K / pool, mean and median rank
    (1 = first). Vectorised in chunks of about `memory` numbers."""
    pred, true = np.asarray(pred, np.float32), np.asarray(true, np.float32)
    count = len(pred)
    if count != len(true) or count < 2:
        raise ValueError(f"need as many predictions as truths, at least 2; got {len(pred)} and {len(true)}")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):  # NaN compares false: it would rank first
        raise ValueError("retrieval of non-finite features (NaN or infinity)")
    size = count if pool is None or pool >= count else pool
    rng = np.random.default_rng(seed)
    chunk = max(1, memory // (size * pred.shape[1]))
    better, tied = np.empty(count), np.empty(count)
    for start in range(0, count, chunk):
        rows = np.arange(start, min(start + chunk, count))
        if size < count:  # pool: the true item first, then size - 1 distinct others
            others = (rows[:, None] + 1 + _choose(rng, len(rows), count - 1, size - 1)) % count
            scores = _scores(pred[rows], true[np.concatenate([rows[:, None], others], axis=1)], metric)
            own, rest = scores[:, 0], scores[:, 1:]
        else:
            scores = _scores(pred[rows], true, metric)
            own = scores[np.arange(len(rows)), rows]
            scores[np.arange(len(rows)), rows] = np.nan  # compare with the others only
            rest = scores
        better[rows] = np.sum(rest > own[:, None], axis=1)
        tied[rows] = np.sum(rest == own[:, None], axis=1)
    expected_rank = better + tied / 2 + 1
    out: dict[str, float] = {"pool": size, "metric": metric, "queries": count}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(np.clip((k - better) / (tied + 1), 0, 1)))
        out[f"chance_R@{k}"] = min(1.0, k / size)
    out["mean_rank"] = float(expected_rank.mean())
    out["median_rank"] = float(np.median(expected_rank))
    out["chance_mean_rank"] = (size + 1) / 2
    return out


def _choose(rng: np.random.Generator, rows: int, population: int, size: int) -> np.ndarray:
    """(rows, size) distinct integers in [0, population) per row."""
    if size * 4 > population:  # dense: a permutation per row
        return np.argsort(rng.random((rows, population)), axis=1)[:, :size]
    picks = rng.integers(0, population, (rows, size))
    for row in range(rows):  # rare collisions: redraw the row
        while len(np.unique(picks[row])) < size:
            picks[row] = rng.choice(population, size, replace=False)
    return picks


def matching_1_of_2(pred: np.ndarray, true: np.ndarray, groups: np.ndarray | None = None, seed: int = 0,
                    ) -> dict[str, float]:
    """1:2 voice -> face matching (SVHF-style): for each query, its own face and one other face (of another
    item; from the same group when `groups` is given: the same-attribute control); accuracy of choosing
    its own by cosine. Chance 0.5."""
    rng = np.random.default_rng(seed)
    count = len(pred)
    p, t = unit_rows(np.asarray(pred, np.float64)), unit_rows(np.asarray(true, np.float64))
    correct, used = [], 0
    for i in range(count):
        candidates = np.flatnonzero(np.arange(count) != i)
        if groups is not None:
            candidates = candidates[groups[candidates] == groups[i]]
        if len(candidates) == 0:
            continue
        j = int(rng.choice(candidates))
        own, other = p[i] @ t[i], p[i] @ t[j]
        correct.append(1.0 if own > other else 0.5 if own == other else 0.0)
        used += 1
    return {"accuracy": float(np.mean(correct)) if correct else float("nan"), "trials": used, "chance": 0.5}


# Craniofacial measures from the 68 iBUG landmarks (0-based indices). Widths are distances between
# symmetric points; indices are ratios, so the face's scale cancels.
def craniofacial(points: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 68, 2) -> measure name -> (N,). Formulas:
    nose_width = |p31 - p35| / iod;   nose_height = |p27 - p33| / iod;   nasal_index = nose_width / nose_height
    mouth_width = |p48 - p54| / iod;  face_width = |p0 - p16| / iod;     jaw_width = |p4 - p12| / iod
    mouth_face_width_index = |p48 - p54| / |p0 - p16|;  lower_face_height = |p33 - p8| / iod
    face_height_width_index = |mid-eyes - p8| / |p0 - p16|
    where iod = distance between the eye centres (means of 36-41 and 42-47)."""
    points = np.asarray(points, np.float64)

    def span(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(points[:, a] - points[:, b], axis=1)

    right, left = points[:, RIGHT_EYE].mean(axis=1), points[:, LEFT_EYE].mean(axis=1)
    iod = np.linalg.norm(left - right, axis=1)
    face = span(0, 16)
    return {
        "nose_width": span(31, 35) / iod, "nose_height": span(27, 33) / iod,
        "nasal_index": span(31, 35) / span(27, 33), "mouth_width": span(48, 54) / iod,
        "face_width": face / iod, "jaw_width": span(4, 12) / iod, "mouth_face_width_index": span(48, 54) / face,
        "lower_face_height": span(33, 8) / iod,
        "face_height_width_index": np.linalg.norm((left + right) / 2 - points[:, 8], axis=1) / face,
    }


def measure_correlations(from_voice: np.ndarray, from_face: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """Pearson r (and its two-sided p) between each measure on faces decoded from the voice and from the
    true feature; `shuffled_r`: the same with the pairing shuffled (the baseline)."""
    a, b = craniofacial(from_voice), craniofacial(from_face)
    order = np.random.default_rng(seed).permutation(len(from_voice))
    out = {}
    for name in a:
        r = float(np.corrcoef(a[name], b[name])[0, 1]) if a[name].std() > 0 and b[name].std() > 0 else 0.0
        n = len(from_voice)
        # Fisher z: p of |r| under r = 0 (normal approximation, good for n > ~10)
        z = np.arctanh(np.clip(r, -0.999999, 0.999999)) * sqrt(max(n - 3, 1))
        p = 2 * (1 - 0.5 * (1 + erf(abs(z) / sqrt(2))))
        shuffled = float(np.corrcoef(a[name][order], b[name])[0, 1]) if a[name].std() > 0 else 0.0
        out[name] = {"r": r, "p": float(p), "shuffled_r": shuffled, "n": n}
    return out


class Probe:
    """A multinomial logistic regression on standardised face features: the attribute classifier of the
    demographic protocol (an open stand-in for the paper's commercial face-attribute API).
    Fitted full-batch with L-BFGS and an L2 penalty, deterministic."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, classes: int, l2: float = 1e-2,
                 steps: int = 100) -> None:
        x = torch.as_tensor(np.asarray(features, np.float64))
        y = torch.as_tensor(np.asarray(labels, np.int64))
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"need as many labels as features, at least 2; got {len(y)} and {len(x)}")
        self.mean, self.scale = x.mean(0), x.std(0).clamp_min(1e-8)
        x = (x - self.mean) / self.scale
        self.weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS([self.weight, self.bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = F.cross_entropy(x @ self.weight + self.bias, y) + l2 * self.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        x = (torch.as_tensor(np.asarray(features, np.float64)) - self.mean) / self.scale
        return (x @ self.weight + self.bias).argmax(1).numpy()


def agreement(a: np.ndarray, b: np.ndarray, classes: int) -> dict[str, object]:
    """How often two classifications of the same faces agree; `chance`: the agreement expected if they were
    independent with the same class frequencies; Cohen's kappa; the confusion matrix (rows a, columns b)."""
    a, b = np.asarray(a), np.asarray(b)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (a, b), 1)
    observed = float(np.mean(a == b))
    chance = float((confusion.sum(1) / len(a)) @ (confusion.sum(0) / len(a)))
    kappa = (observed - chance) / (1 - chance) if chance < 1 else 0.0
    return {"agreement": observed, "chance": chance, "kappa": float(kappa), "confusion": confusion.tolist()}


def demographic_agreement(train_features: np.ndarray, train_labels: np.ndarray, true_features: np.ndarray,
                          true_labels: np.ndarray, voice_features: np.ndarray, upper_features: np.ndarray,
                          classes: int) -> dict[str, object]:
    """One attribute: a probe fitted on the training speakers' faces classifies the held-out true faces, the
    faces decoded from the voice, and (upper bound) the faces decoded from the true feature — all given as
    face-encoder features (N, D). Reports the probe's accuracy on the true faces against the labels, and the
    agreement of each decoded face's class with its true face's class (the paper's Table 2 protocol)."""
    probe = Probe(train_features, train_labels, classes)
    on_true = probe.predict(true_features)
    return {
        "probe_accuracy": float(np.mean(on_true == true_labels)),
        "majority_baseline": float(np.bincount(true_labels, minlength=classes).max() / len(true_labels)),
        "voice": agreement(on_true, probe.predict(voice_features), classes),
        "upper_bound": agreement(on_true, probe.predict(upper_features), classes),
        "classes": classes,
    }
