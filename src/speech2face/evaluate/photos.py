"""The face decoder judged on real people it never saw (`s2f evaluate-decoder`).

For each held-out photo (the TEST split of photo shards: identities that trained nothing and chose nothing;
one photo per identity) the decoder draws a face from the photo's teacher feature; networks that are not the
teacher judge the drawn face against the photo:
- FaceNet (Inception-ResNet-v1 trained on VGGFace2): retrieval of the photo among `pool` held-out photos from the
  drawn face, R@1 / R@5 / R@10 and mean rank, and the cosine of drawn face and photo;
- the age/sex judge (Cydral's networks): sex agreement of drawn face and photo (all photos, and the photos the
  judge is confident about), mean absolute age difference;
- landmark error (% of the inter-ocular distance) of the drawn landmarks.
Beside two baselines that use the same inputs: the MEAN face (the pixel mean of the training photos, at the
mean landmarks: what a decoder that ignores the feature draws) and the NEAREST training face (the training
photo whose teacher feature is nearest the held-out one: a lookup; a decoder no better than it learnt nothing
beyond the training set), and chance (K / pool).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.dataset import face_item, samples_per_speaker, shard_paths
from ..devices import pick_device
from ..errors import DataError
from ..faces import get_encoder
from ..faces.judge import Judge
from ..files import atomic_write, write_json
from ..images import to_uint8
from ..models.face_decoder import FaceDecoder
from . import metrics as m
from .judges import age_group
from .metrics import PAPER_POOL

log = logging.getLogger(__name__)
CONFIDENT = 0.9  # the judge's p(male) >= this or <= 1 - this: a photo whose sex the judge is sure of
# teacher features (dlib's 128-d) this close are likely one person: a collection without identity labels
# (celeba-999) may hold a held-out person's other photo among the training photos; such held-out photos are set
# aside. Measured on celeba-999: nearest-training-photo distances run 0.35-0.70, most 0.55-0.65 (dlib's own
# same-person threshold, 0.6, is for verification, not this); below 0.45 lie ~6 % of held-out photos.
SAME_PERSON_DISTANCE = 0.45


def photo_set(folders: list[Path], split: str, per_identity: int | None = 1) -> dict[str, Any]:
    """Crops (N, 224, 224, 3) uint8, landmarks (N, 68, 2) normalised, features (N, D), identities of a split."""
    paths = [path for folder in folders for path in shard_paths(folder, split)]
    if not paths:
        raise DataError(f"{', '.join(map(str, folders))}: no {split} shards (s2f prepare --images ... --test 0.15)")
    rows = list(samples_per_speaker(paths, per_identity, transform=face_item))
    if not rows:
        raise DataError(f"{', '.join(map(str, folders))}: no readable {split} samples")
    return {"identities": [speaker for speaker, _ in rows],
            **{name: np.stack([item[field] for _, item in rows])
               for name, field in (("faces", "face"), ("landmarks", "landmarks"), ("features", "feature"))}}


def draw(decoder: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) -> drawn faces (N, S, S, 3) uint8 and landmarks (N, 68, 2) normalised."""
    images, points = decoder.draw(torch.as_tensor(features))
    return to_uint8(images), points.cpu().numpy()


@dataclass(frozen=True)
class DecoderEvaluationSettings:
    """How `s2f evaluate-decoder` retrieves and where it runs (the CLI's defaults)."""

    pool: int = PAPER_POOL
    seed: int = 0
    device: str = "auto"
    scorer: str = "facenet"  # the face network that judges: not the teacher


def evaluate_decoder(decoder_dir: str | Path, data: list[str | Path], out: str | Path,
                     settings: DecoderEvaluationSettings = DecoderEvaluationSettings(), *, gallery: int = 16,
                     ) -> dict[str, Any]:
    """Judge a decoder on the held-out photos of `data`; writes OUT/metrics.json, OUT/gallery.png and
    OUT/report.html; returns the metrics."""
    pool, seed, scorer = settings.pool, settings.seed, settings.scorer

    folders, out = [Path(d) for d in data], Path(out)
    torch_device = pick_device(settings.device)
    decoder = FaceDecoder.from_pretrained(decoder_dir).to(torch_device).eval()
    test, train = photo_set(folders, "test"), photo_set(folders, "train", per_identity=None)
    distance = np.linalg.norm(test["features"][:, None] - train["features"][None], axis=2)  # (test, train)
    unseen = distance.min(axis=1) >= SAME_PERSON_DISTANCE
    set_aside = int((~unseen).sum())
    test = {key: [v for v, keep in zip(value, unseen, strict=True) if keep] if isinstance(value, list)
            else value[unseen] for key, value in test.items()}
    if len(test["identities"]) < 2:
        raise DataError(f"only {len(test['identities'])} held-out identities; need at least 2")
    drawn, drawn_points = draw(decoder, test["features"])
    nearest = distance[unseen].argmin(axis=1)
    mean_face = train["faces"].astype(np.float32).mean(axis=0).round().astype(np.uint8)
    candidates = {"decoder": (drawn, drawn_points),
                  "nearest_training_face": (train["faces"][nearest], train["landmarks"][nearest]),
                  "mean_face": (np.broadcast_to(mean_face, test["faces"].shape),
                                np.broadcast_to(train["landmarks"].mean(axis=0), test["landmarks"].shape))}
    size = min(pool, len(test["identities"]))
    network = get_encoder(scorer) if scorer == "dlib" else get_encoder(scorer, device=str(torch_device))
    true = network.embed(test["faces"])
    judge = Judge()
    judged_true = judge(test["faces"])
    shuffled = np.random.default_rng(seed).permutation(len(true))
    rows = {}
    for name, (faces, points) in candidates.items():
        embedded = network.embed(np.ascontiguousarray(faces))
        judged = judge(np.ascontiguousarray(faces))
        rows[name] = {"scorer": {**m.retrieval(embedded, true, ks=(1, 5, 10), pool=size, seed=seed),
                                 "cosine": float(m.cosine_rows(embedded, true).mean())},
                      "judge": judge_agreement(judged_true, judged),
                      "landmark_error_iod_pct": float(m.landmark_error_iod(points, test["landmarks"]).mean())}
    metrics = {"protocol": "held-out photos (test split), one per identity; the face drawn from the photo's "
                           "teacher feature against the photo", "model": str(decoder_dir),
               "image_size": decoder.config.image_size, "identities": len(test["identities"]),
               "training_photos": len(train["identities"]), "pool": size,
               "scorer": {"network": network.name, "chance_cosine": float(m.cosine_rows(true, true[shuffled]).mean())},
               "chance": {f"R@{k}": min(1.0, k / size) for k in (1, 5, 10)} | {"mean_rank": (size + 1) / 2,
                                                                                "sex": 0.5},
               "judge": {"network": judge.name, "true_male_share": float(judged_true.male.mean()),
                         "confident_photos": int(confident(judged_true).sum())},
               "set_aside_likely_seen": set_aside, "same_person_distance": SAME_PERSON_DISTANCE,
               **rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics, indent=1)
    order = list(range(min(gallery, len(drawn))))
    save_gallery(out / "gallery.png", test["faces"][order], drawn[order])
    atomic_write(out / "report.html", lambda t: t.write_text(render_html(metrics)))
    return metrics


def confident(found: Any) -> np.ndarray:
    return (found.p_male >= CONFIDENT) | (found.p_male <= 1 - CONFIDENT)


def judge_agreement(true: Any, drawn: Any) -> dict[str, float]:
    """Sex agreement (all photos; photos the judge is confident about), age-group agreement, mean |age diff|."""
    same = true.male == drawn.male
    sure = confident(true)
    return {"sex_agreement": float(same.mean()),
            "sex_agreement_confident": float(same[sure].mean()) if sure.any() else float("nan"),
            "age_group_agreement": float((age_group(true.age) == age_group(drawn.age)).mean()),
            "age_mean_abs_difference": float(np.abs(true.age - drawn.age).mean())}


def save_gallery(path: Path, photos: np.ndarray, drawn: np.ndarray, per_row: int = 8) -> None:
    """Pairs of columns: the held-out photo's crop, then the face drawn from its feature; `per_row` pairs a row."""
    import cv2
    from PIL import Image

    side = drawn.shape[1]
    tiles = [np.concatenate([cv2.resize(p, (side, side), interpolation=cv2.INTER_AREA), d], axis=1)
             for p, d in zip(photos, drawn, strict=True)]
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + per_row], axis=1) for i in range(0, len(tiles), per_row)]
    grid = np.concatenate(rows, axis=0)
    atomic_write(path, lambda t: Image.fromarray(grid).save(t, format="PNG"))


def table_lines(metrics: dict[str, Any]) -> list[str]:
    """The held-out table, as printed and shown."""
    chance = metrics["chance"]
    lines = [f"{metrics['identities']} held-out identities, pool {metrics['pool']}; "
             f"scorer {metrics['scorer']['network']}",
             f"{'':<24}{'R@1':>7}{'R@5':>7}{'rank':>7}{'cosine':>8}{'sex':>7}{'sex*':>7}{'age diff':>9}{'lmk %IOD':>9}"]
    for name in ("decoder", "nearest_training_face", "mean_face"):
        row = metrics[name]
        scorer, judged = row["scorer"], row["judge"]
        lines.append(f"{name:<24}{scorer['R@1']:>7.3f}{scorer['R@5']:>7.3f}{scorer['mean_rank']:>7.1f}"
                     f"{scorer['cosine']:>8.3f}{judged['sex_agreement']:>7.3f}{judged['sex_agreement_confident']:>7.3f}"
                     f"{judged['age_mean_abs_difference']:>9.1f}{row['landmark_error_iod_pct']:>9.2f}")
    lines.append(f"{'chance':<24}{chance['R@1']:>7.3f}{chance['R@5']:>7.3f}{chance['mean_rank']:>7.1f}"
                 f"{metrics['scorer']['chance_cosine']:>8.3f}{chance['sex']:>7.3f}{chance['sex']:>7.3f}")
    lines.append(f"sex*: photos the judge is confident about ({metrics['judge']['confident_photos']}); set aside: "
                 f"{metrics['set_aside_likely_seen']} held-out photos whose person is likely among the training "
                 f"photos (teacher distance < {metrics['same_person_distance']})")
    return lines


def render_html(metrics: dict[str, Any]) -> str:

    table = html.escape("\n".join(table_lines(metrics)))
    return (f"<!doctype html><meta charset=utf-8><title>face decoder on held-out photos</title>"
            f"<h1>Face decoder on held-out photos</h1><p>{html.escape(metrics['protocol'])}. Decoder "
            f"{html.escape(metrics['model'])}, {metrics['image_size']} px. Judges: "
            f"{html.escape(metrics['scorer']['network'])} (retrieval, cosine) and "
            f"{html.escape(metrics['judge']['network'])} (sex, age). Photos that are CelebA's are for "
            f"non-commercial research only.</p><pre>{table}</pre>"
            f"<p>Held-out photo / face drawn from its feature:</p><img src=gallery.png>")
