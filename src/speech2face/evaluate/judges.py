"""Judgements by networks that took no part in training (SF2F's protocol, and the paper's demographic one):

- `scorer_section`: a face network OTHER than the one the model learned to predict embeds the true face, the
  face drawn from the voice and the face drawn from the true feature (the upper bound); retrieval of the
  true face from each drawn face, and their cosine to it, beside chance.
- `judge_section`: a real age and sex classifier (`faces.judge.Judge`) reads the true face and both
  drawn faces; agreement of sex and of age group between each drawn face and the true face, beside chance,
  with the judge's own accuracy against labels where the data has them.

Every face is a canonical crop: the true face as prepared (224 px), the drawn ones at the decoder's size.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..faces import get_encoder
from ..faces.judge import Judge
from . import metrics as m
from .labels import Labels

SCORER_FOR = {"dlib-torch": "facenet", "dlib": "facenet", "vggface": "facenet", "facenet": "dlib-torch"}
AGE_GROUPS = (0, 20, 30, 40, 50, 60, 200)  # years: <20, 20s, 30s, 40s, 50s, 60+
SEX_COLUMNS = ("sex", "gender", "masculinity")


def default_scorer(trained_with: str) -> str:
    """A face network other than the one whose features the model predicts."""
    return SCORER_FOR.get(trained_with, "facenet")


def scorer_section(name: str, faces: dict[str, np.ndarray], pool: int, seed: int,
                   device: str | None = None) -> dict[str, Any]:
    """`faces`: "true", "voice", "upper_bound" canonical crops (N, S, S, 3) uint8, one per held-out speaker."""
    encoder = get_encoder(name, device=device) if name != "dlib" else get_encoder(name)
    embedded = {key: encoder.embed(crops) for key, crops in faces.items()}
    true = embedded["true"]
    size = min(pool, len(true))
    shuffled = np.random.default_rng(seed).permutation(len(true))
    out: dict[str, Any] = {"network": name, "dim": encoder.dim, "pool": size, "speakers": len(true)}
    for key in ("voice", "upper_bound"):
        out[key] = {**m.retrieval(embedded[key], true, pool=size, seed=seed),
                    "cosine": float(m.cosine_rows(embedded[key], true).mean())}
    out["chance"] = {"cosine": float(m.cosine_rows(embedded["voice"], true[shuffled]).mean()),
                     **{f"R@{k}": out["voice"][f"chance_R@{k}"] for k in (1, 2, 5, 10)}}
    return out


def age_group(ages: np.ndarray) -> np.ndarray:
    return np.searchsorted(AGE_GROUPS, ages, side="right") - 1


def judge_section(faces: dict[str, np.ndarray], speakers: list[str], labels: dict[str, Labels]) -> dict[str, Any]:
    """Sex and age-group agreement of the drawn faces with the true face, as judged."""
    judge = Judge()
    found = {key: judge(crops) for key, crops in faces.items()}
    true = found["true"]
    out: dict[str, Any] = {"network": judge.name, "speakers": len(speakers),
                           "age_groups": [f"{a}-{b}" for a, b in itertools.pairwise(AGE_GROUPS)]}
    sex = {key: found[key].male.astype(int) for key in found}
    groups = {key: age_group(found[key].age) for key in found}
    classes = len(AGE_GROUPS) - 1
    out["sex"] = {key: m.agreement(sex["true"], sex[key], 2) for key in ("voice", "upper_bound")}
    out["sex"]["class_names"] = ["female", "male"]
    out["sex"]["true_male_share"] = float(sex["true"].mean())
    out["age_group"] = {key: m.agreement(groups["true"], groups[key], classes) for key in ("voice", "upper_bound")}
    out["age_years"] = {key: {"mean_abs_difference": float(np.abs(found[key].age - true.age).mean())}
                        for key in ("voice", "upper_bound")}
    out["age_years"]["true_mean"] = float(true.age.mean())
    column = next((c for c in SEX_COLUMNS if c in labels), None)
    if column is not None:  # the judge's own error, where the data says who is male
        attribute = labels[column]
        known = attribute.of(speakers)
        male = _male_class(attribute)
        held = known >= 0
        if male is not None and held.any():
            out["judge_accuracy"] = {"label": column, "faces": int(held.sum()),
                                     "accuracy": float(np.mean(sex["true"][held] == (known[held] == male)))}
    return out


def _male_class(attribute: Labels) -> int | None:
    """Which class of a sex label means male: 'male'/'m', or the upper half of a masculinity split."""
    names = [c.lower() for c in attribute.classes]
    for index, name in enumerate(names):
        if name in ("male", "m", "man") or name.startswith(">"):
            return index
    return 1 if names == ["0", "1"] else None
