"""The evaluation protocol: which held-out data is read, how, and every protocol run on it.

Held-out data is read one way for everyone (`data/splits.py`); evaluation takes the test and val splits,
ONE clip per speaker (its first 6 s), so that the retrieval pool holds distinct people (clips of one person
have near-identical face features). Neither split trains anything; the final checkpoint is evaluated, not
the val-selected `best/`.

`evaluate_model` runs: feature similarity (and a shuffled pairing), S2F -> face retrieval (pool 100, or all
speakers if fewer; cos, L1, L2), 1:2 matching (and same-attribute controls when labels are known),
demographic agreement by attribute probes (with labels), craniofacial measures on faces decoded from the
voice vs from the true feature (and a shuffled baseline); then writes metrics.json, report.html and
gallery.png. Every number is reported beside its chance level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.dataset import samples_per_speaker, shard_paths
from ..data.splits import EVALUATION, held_out, voice_clip
from ..devices import pick_device
from ..errors import DataError, ModelError
from ..faces import get_encoder
from ..files import PREPARE_HEADER, atomic_write, read_header, write_json
from ..images import to_uint8
from ..model_folder import training_settings
from ..models import FaceDecoder, load_voice_encoder
from ..models.voice_encoder import encode_waves
from . import metrics as m
from .judges import default_scorer, judge_section, scorer_section
from .labels import Labels, load_labels
from .report import gallery_image, render_html

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSettings:
    """How `s2f evaluate` retrieves and judges (the CLI's defaults)."""

    pool: int = m.PAPER_POOL  # retrieval pool (all held-out speakers if fewer)
    seed: int = 0  # of the pools and the shuffled baselines
    device: str = "auto"
    scorer: str | None = "auto"  # the independent face network: "auto" (one other than the data's), a name, "none"
    judge: bool = True  # the age and sex classifier's agreement (judges.py)
def evaluation_clips(data: str | Path) -> dict[str, Any]:
    """The EVALUATION protocol's clips: per held-out speaker (sorted by name) its first clip's first 6 s,
    true feature and face crop, as numpy arrays."""
    clips = held_out(data, lambda s: voice_clip(s) | {"face": s["face"]}, EVALUATION, per_speaker=1)
    if len(clips["speakers"]) < 2:
        raise DataError(f"{data}: only {len(clips['speakers'])} held-out speaker(s); need at least 2")
    order = np.argsort(clips["speakers"], kind="stable")
    return {"speakers": [clips["speakers"][i] for i in order],
            **{key: clips[key].numpy()[order] for key in ("wave", "feature", "face")}}


def training_features(data: str | Path, per_speaker: int = 20, limit: int = 50_000) -> tuple[np.ndarray, list[str]]:
    """Face features of the training speakers (at most `per_speaker` each, `limit` in all) and their speakers:
    what the attribute probes are fitted on."""
    pairs = list(samples_per_speaker(shard_paths(data, ("train",)), per_speaker, faces=False, limit=limit,
                                     transform=lambda sample: sample["feature"]))
    if not pairs:
        raise DataError(f"{data}: no training shards to fit attribute probes on")
    return np.stack([feature for _, feature in pairs]).astype(np.float32), [speaker for speaker, _ in pairs]


def demographics(data: str | Path, encoder_name: str, labels: dict[str, Labels], speakers: list[str],
                 true: np.ndarray, from_voice: torch.Tensor, from_true: torch.Tensor) -> dict[str, Any]:
    """Per attribute: `metrics.demographic_agreement` on the held-out speakers that have a label, the probe
    fitted on the labelled training speakers. Face images decoded (N, 3, S, S) are embedded by
    `encoder_name`, the encoder the data was prepared with."""
    encoder = get_encoder(encoder_name)
    embedded = {name: encoder.embed(to_uint8(images)) for name, images in (("voice", from_voice), ("true", from_true))}
    train, train_speakers = training_features(data)
    out = {}
    for name, attribute in labels.items():
        train_labels, held_labels = attribute.of(train_speakers), attribute.of(speakers)
        fit, held = train_labels >= 0, held_labels >= 0
        if len(set(train_labels[fit])) < 2 or held.sum() < 2:
            continue  # nothing to fit or to test
        result = m.demographic_agreement(train[fit], train_labels[fit], true[held], held_labels[held],
                                         embedded["voice"][held], embedded["true"][held], len(attribute.classes))
        out[name] = {**result, "class_names": list(attribute.classes)}
    return out


def evaluate_model(voice_dir: str | Path, data: str | Path, out: str | Path, *, decoder_dir: str | Path | None = None,
                   labels: str | Path | None = None, label_columns: tuple[str, ...] | None = None,
                   settings: EvaluationSettings = EvaluationSettings()) -> dict[str, Any]:
    """Run every protocol; write `out/metrics.json`, `out/report.html` and `out/gallery.png`; return the
    metrics. `settings.scorer`: the independent face network ("auto": one other than the data's encoder; None
    or "none": skip); `settings.judge`: the age and sex classifier's agreement (judges.py). A network that cannot
    load is an error when named; with "auto" and for the judge, its section says why it was skipped."""
    pool, seed, scorer = settings.pool, settings.seed, settings.scorer

    voice_dir, out, chosen = Path(voice_dir), Path(out), pick_device(settings.device)
    decoder_dir = decoder_dir or training_settings(voice_dir).get("decoder")
    if decoder_dir is None:
        raise DataError(f"{voice_dir}: no training.json naming its decoder; pass --decoder")
    attributes = load_labels(labels, label_columns)  # a bad labels file fails before any work
    voice = load_voice_encoder(voice_dir, map_location=chosen)
    decoder = FaceDecoder.from_pretrained(decoder_dir, map_location=chosen).eval()
    clips = evaluation_clips(data)
    predicted = encode_waves(voice, torch.from_numpy(clips["wave"])).numpy()
    true = clips["feature"].astype(np.float32)
    count = len(true)
    size = min(pool, count)
    shuffled = np.random.default_rng(seed).permutation(count)
    with torch.no_grad():
        from_voice = decoder(torch.from_numpy(predicted).to(chosen))
        from_face = decoder(torch.from_numpy(true).to(chosen))
    voice_images, face_images = from_voice.image.float().cpu(), from_face.image.float().cpu()
    prepared = read_header(data, PREPARE_HEADER)
    metrics: dict[str, Any] = {
        "synthetic": bool(prepared.get("synthetic", False)),
        "protocol": {"split": "held-out (test + val)", "clips": "the first 6 s of one clip per held-out speaker",
                     "speakers": count, "pool": size, "seed": seed},
        "model": {"voice": str(voice_dir), "decoder": str(decoder_dir)},
        "feature_similarity": {"voice": m.feature_similarity(predicted, true),
                               "shuffled": m.feature_similarity(predicted, true[shuffled])},
        "retrieval": {metric: m.retrieval(predicted, true, pool=size, metric=metric, seed=seed)
                      for metric in ("cos", "l1", "l2")},
        "matching_1_of_2": {"any": m.matching_1_of_2(predicted, true, seed=seed)},
        "craniofacial": m.measure_correlations(from_voice.landmarks.float().cpu().numpy(),
                                               from_face.landmarks.float().cpu().numpy(), seed),
    }
    for name, attribute in attributes.items():
        groups = attribute.of(clips["speakers"])  # unlabelled speakers (-1) are compared among themselves
        metrics["matching_1_of_2"][f"same_{name}"] = m.matching_1_of_2(predicted, true, groups, seed)
    encoder_name = prepared.get("settings", {}).get("encoder")
    if attributes:
        if encoder_name is None:
            raise DataError(f"{data}: no {PREPARE_HEADER} naming the face encoder, which the probes need")
        metrics["demographics"] = demographics(data, encoder_name, attributes, clips["speakers"], true,
                                               voice_images, face_images)
    drawn = {"true": clips["face"], "voice": to_uint8(voice_images), "upper_bound": to_uint8(face_images)}
    named = scorer not in ("auto", None, "none")
    if scorer == "auto":
        scorer = default_scorer(encoder_name or "")
    if scorer not in (None, "none"):
        metrics["scorer"] = _unless_missing(lambda: scorer_section(scorer, drawn, pool, seed, str(chosen)),
                                            "scorer", required=named)
    if settings.judge:
        metrics["judge"] = _unless_missing(lambda: judge_section(drawn, clips["speakers"], attributes), "judge",
                                           required=False)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    page = render_html(metrics, clips, face_images, voice_images)
    atomic_write(out / "report.html", lambda t: t.write_text(page))
    gallery = gallery_image(clips["face"], face_images, voice_images)
    atomic_write(out / "gallery.png", lambda t: gallery.save(t, format="PNG"))
    return metrics


def _unless_missing(run: Callable[[], dict[str, Any]], what: str, required: bool) -> dict[str, Any]:
    """A section from `run`, or {"skipped": why} when its network is not installed (unless `required`)."""
    try:
        return run()
    except ModelError as error:
        if required:
            raise
        log.warning("evaluate: the %s is skipped: %s", what, error)
        return {"skipped": str(error)}
