"""`s2f evaluate`: a trained voice encoder (+ its decoder) on held-out speakers -> metrics.json + report.html.

Protocol: the held-out speakers (test and val splits) of a `s2f prepare` folder; ONE clip per speaker
(its first 6 s), so that the pool holds distinct people (clips of one person have near-identical face
features). Sections:
feature similarity (and a shuffled pairing), S2F -> face retrieval (pool 100, or all speakers if fewer;
cos, L1, L2), 1:2 matching (and a same-attribute control when labels are known), craniofacial measures
on faces decoded from the voice vs from the true feature (and a shuffled baseline). Every number is
printed beside its chance level.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import evaluate
from .data.dataset import samples_per_speaker, shard_paths
from .errors import DataError
from .files import PREPARE_HEADER, atomic_write, read_header, write_json


def held_out_clips(data: str | Path, seconds: float = 6.0) -> dict[str, Any]:
    """The first clip of each held-out (val and test) speaker: its first `seconds`, feature, face crop.
    Neither split trains anything; the final checkpoint is evaluated, not the val-selected `best/`."""
    from . import audio

    paths = shard_paths(data, ("test", "val"))
    if not paths:
        raise DataError(f"{data}: no test or val shards to evaluate on")
    chosen: dict[str, dict[str, Any]] = {}
    for sample in samples_per_speaker(paths):
        wave = audio.load_audio(sample["audio"])[: round(seconds * audio.SAMPLE_RATE)]
        chosen[sample["meta"]["speaker"]] = {"wave": audio.fit_length(wave, seconds), "feature": sample["feature"],
                                             "face": sample["face"], "key": sample["key"]}
    if len(chosen) < 2:
        raise DataError(f"{data}: only {len(chosen)} held-out speaker(s); need at least 2")
    speakers = sorted(chosen)
    return {"speakers": speakers, **{k: np.stack([chosen[s][k] for s in speakers])
                                     for k in ("wave", "feature", "face")}}


LABEL_COLUMNS = ("masculinity", "age", "size", "gender", "sex", "age_group", "ethnicity")


@dataclass(frozen=True)
class Labels:
    """One attribute's classes and each labelled speaker's class index."""

    classes: tuple[str, ...]
    by_speaker: dict[str, int]

    def of(self, speakers: list[str]) -> np.ndarray:
        """Class index per speaker, -1 where a speaker has no label."""
        return np.array([self.by_speaker.get(s, -1) for s in speakers], dtype=int)


def load_labels(path: str | Path | None, columns: tuple[str, ...] | None = None) -> dict[str, Labels]:
    """Attribute labels per speaker from a CSV with a `speaker_id` column. Columns: `columns`, or those of
    LABEL_COLUMNS present. Text columns are categories (empty = unlabelled); 0/1 columns stay binary; other
    numeric columns are split at their median over the file (the synthetic world's standard-normal
    attributes -> below/above 0, about)."""
    import csv

    if path is None:
        return {}
    try:
        with Path(path).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read labels ({error})") from error
    if not rows or "speaker_id" not in rows[0]:
        raise DataError(f"{path}: a labels CSV needs a header with a speaker_id column")
    wanted = columns or tuple(c for c in LABEL_COLUMNS if c in rows[0])
    missing = [c for c in wanted if c not in rows[0]]
    if missing or not wanted:
        raise DataError(f"{path}: no label column {', '.join(missing) or 'of ' + ', '.join(LABEL_COLUMNS)}")
    out = {}
    for column in wanted:
        values = {row["speaker_id"]: row[column].strip() for row in rows if row[column].strip()}
        try:
            numbers = {s: float(v) for s, v in values.items()}
        except ValueError:
            classes = tuple(sorted(set(values.values())))
            out[column] = Labels(classes, {s: classes.index(v) for s, v in values.items()})
            continue
        if set(numbers.values()) <= {0.0, 1.0}:
            out[column] = Labels(("0", "1"), {s: int(v) for s, v in numbers.items()})
        else:
            median = float(np.median(list(numbers.values())))
            out[column] = Labels((f"<= {median:.3g}", f"> {median:.3g}"),
                                 {s: int(v > median) for s, v in numbers.items()})
    return out


def training_features(data: str | Path, per_speaker: int = 20, limit: int = 50_000) -> tuple[np.ndarray, list[str]]:
    """Face features of the training speakers (at most `per_speaker` each, `limit` in all) and their speakers:
    what the attribute probes are fitted on."""
    samples = list(samples_per_speaker(shard_paths(data, ("train",)), per_speaker, faces=False, limit=limit))
    features = [sample["feature"] for sample in samples]
    speakers = [sample["meta"]["speaker"] for sample in samples]
    if not features:
        raise DataError(f"{data}: no training shards to fit attribute probes on")
    return np.stack(features).astype(np.float32), speakers


def demographics(data: str | Path, encoder_name: str, labels: dict[str, Labels], speakers: list[str],
                 true: np.ndarray, from_voice: torch.Tensor, from_true: torch.Tensor) -> dict[str, Any]:
    """Per attribute: `evaluate.demographic_agreement` on the held-out speakers that have a label, the probe
    fitted on the labelled training speakers. Face images decoded (N, 3, S, S) are embedded by
    `encoder_name`, the encoder the data was prepared with."""
    from .faces import get_encoder

    encoder = get_encoder(encoder_name)
    embedded = {name: encoder.embed((images.permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8))
                for name, images in (("voice", from_voice), ("true", from_true))}
    train, train_speakers = training_features(data)
    out = {}
    for name, attribute in labels.items():
        train_labels, held_labels = attribute.of(train_speakers), attribute.of(speakers)
        fit, held = train_labels >= 0, held_labels >= 0
        if len(set(train_labels[fit])) < 2 or held.sum() < 2:
            continue  # nothing to fit or to test
        result = evaluate.demographic_agreement(train[fit], train_labels[fit], true[held], held_labels[held],
                                                embedded["voice"][held], embedded["true"][held],
                                                len(attribute.classes))
        out[name] = {**result, "class_names": list(attribute.classes)}
    return out


def evaluate_model(voice_dir: str | Path, data: str | Path, out: str | Path, *, decoder_dir: str | Path | None = None,
                   labels: str | Path | None = None, label_columns: tuple[str, ...] | None = None,
                   pool: int = 100, seed: int = 0) -> dict[str, Any]:
    """Run every protocol; write `out/metrics.json` and `out/report.html`; return the metrics."""
    from .models import FaceDecoder, VoiceEncoder
    from .train import predict_features

    voice_dir, out = Path(voice_dir), Path(out)
    training = json.loads((voice_dir / "training.json").read_text()) if (voice_dir / "training.json").is_file() else {}
    decoder_dir = decoder_dir or training.get("decoder")
    if decoder_dir is None:
        raise DataError(f"{voice_dir}: no training.json naming its decoder; pass --decoder")
    voice = VoiceEncoder.from_pretrained(voice_dir)
    decoder = FaceDecoder.from_pretrained(decoder_dir).eval()
    clips = held_out_clips(data)
    predicted = predict_features(voice, torch.from_numpy(clips["wave"]), torch.device("cpu"))
    true = clips["feature"].astype(np.float32)
    count = len(true)
    size = min(pool, count)
    shuffled = np.random.default_rng(seed).permutation(count)
    with torch.no_grad():
        from_voice = decoder(torch.from_numpy(predicted))
        from_face = decoder(torch.from_numpy(true))
    prepared = read_header(data, PREPARE_HEADER)
    synthetic = bool(prepared.get("synthetic", False))
    metrics: dict[str, Any] = {
        "synthetic": synthetic,
        "protocol": {"split": "held-out (test + val)", "clips": "the first 6 s of one clip per held-out speaker",
                     "speakers": count, "pool": size, "seed": seed},
        "model": {"voice": str(voice_dir), "decoder": str(decoder_dir)},
        "feature_similarity": {"voice": evaluate.feature_similarity(predicted, true),
                               "shuffled": evaluate.feature_similarity(predicted, true[shuffled])},
        "retrieval": {metric: evaluate.retrieval(predicted, true, pool=size, metric=metric, seed=seed)
                      for metric in ("cos", "l1", "l2")},
        "matching_1_of_2": {"any": evaluate.matching_1_of_2(predicted, true, seed=seed)},
        "craniofacial": evaluate.measure_correlations(from_voice.landmarks.numpy(), from_face.landmarks.numpy(), seed),
    }
    attributes = load_labels(labels, label_columns)
    for name, attribute in attributes.items():
        groups = attribute.of(clips["speakers"])  # unlabelled speakers (-1) are compared among themselves
        metrics["matching_1_of_2"][f"same_{name}"] = evaluate.matching_1_of_2(predicted, true, groups, seed)
    if attributes:
        encoder_name = prepared.get("settings", {}).get("encoder")
        if encoder_name is None:
            raise DataError(f"{data}: no {PREPARE_HEADER} naming the face encoder, which the probes need")
        metrics["demographics"] = demographics(data, encoder_name, attributes, clips["speakers"], true,
                                               from_voice.image, from_face.image)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    page = render_html(metrics, clips, from_face.image, from_voice.image)
    atomic_write(out / "report.html", lambda t: t.write_text(page))
    gallery = gallery_image(clips["face"], from_face.image, from_voice.image)
    atomic_write(out / "gallery.png", lambda t: gallery.save(t, format="PNG"))
    return metrics


def _to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [0, 1] -> N (H, W, 3) uint8."""
    return [(img.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8) for img in images]


def gallery_image(faces: np.ndarray, from_face: torch.Tensor, from_voice: torch.Tensor, count: int = 8,
                  size: int = 112) -> Any:
    """A PNG-ready picture: one column per held-out speaker; rows: true face, face decoded from the true
    feature, face decoded from the voice."""
    import cv2
    from PIL import Image

    count = min(count, len(faces))
    rows = [list(faces[:count]), _to_uint8(from_face[:count]), _to_uint8(from_voice[:count])]
    grid = np.concatenate([np.concatenate([cv2.resize(np.ascontiguousarray(img), (size, size),
                                                      interpolation=cv2.INTER_AREA) for img in row], axis=1)
                           for row in rows], axis=0)
    return Image.fromarray(grid)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _image_png(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def render_html(metrics: dict[str, Any], clips: dict[str, Any], from_face: torch.Tensor,
                from_voice: torch.Tensor, gallery: int = 8) -> str:
    """A self-contained page: banner, protocol, gallery, Recall@K curve, correlation bars, tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cos = metrics["retrieval"]["cos"]
    ks = [k for k in (1, 2, 5, 10) if f"R@{k}" in cos]
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.plot(ks, [cos[f"R@{k}"] for k in ks], "o-", label="voice")
    axis.plot(ks, [cos[f"chance_R@{k}"] for k in ks], "k--", label="chance")
    axis.set_xlabel("K")
    axis.set_ylabel("Recall@K")
    axis.set_title(f"S2F -> face retrieval, pool {cos['pool']}")
    axis.legend()
    recall_png = _png(figure)
    plt.close(figure)
    measures = metrics["craniofacial"]
    figure, axis = plt.subplots(figsize=(6, 3))
    names = list(measures)
    x = np.arange(len(names))
    axis.bar(x - 0.2, [measures[n]["r"] for n in names], 0.4, label="voice vs true feature")
    axis.bar(x + 0.2, [measures[n]["shuffled_r"] for n in names], 0.4, label="shuffled")
    axis.set_xticks(x, names, rotation=60, ha="right")
    axis.set_ylabel("Pearson r")
    axis.legend()
    measures_png = _png(figure)
    plt.close(figure)
    demographics = metrics.get("demographics", {})
    confusion_html = ""
    if demographics:
        figure, axes = plt.subplots(1, len(demographics), figsize=(3.2 * len(demographics), 3), squeeze=False)
        for axis, (name, result) in zip(axes[0], demographics.items(), strict=True):
            matrix = np.array(result["voice"]["confusion"])
            axis.imshow(matrix, cmap="Blues")
            for (row, column), count in np.ndenumerate(matrix):
                axis.text(column, row, str(count), ha="center", va="center")
            ticks = range(len(result["class_names"]))
            axis.set_xticks(ticks, result["class_names"], fontsize=7)
            axis.set_yticks(ticks, result["class_names"], fontsize=7)
            axis.set_xlabel("face from the voice")
            axis.set_ylabel("true face")
            axis.set_title(f"{name}: {result['voice']['agreement']:.2f} (chance {result['voice']['chance']:.2f})",
                           fontsize=9)
        confusion_html = (
            "<h2>Demographic agreement</h2><p>A logistic-regression probe per attribute, fitted on the training "
            "speakers' face features and labels, classifies each held-out true face, the face decoded from the "
            "voice and the face decoded from the true feature (upper bound); the decoded faces are embedded by "
            "the same face encoder. Shown: how often the class of the face from the voice agrees with the class "
            "of the true face; chance = agreement of independent classifications with the same class "
            f'frequencies.</p><img src="data:image/png;base64,{_png(figure)}">')
        plt.close(figure)

    rows = []
    for index, (face, true_decoded, voice_decoded) in enumerate(zip(clips["face"][:gallery], _to_uint8(from_face),
                                                                     _to_uint8(from_voice), strict=False)):
        cells = "".join(f'<td><img src="data:image/png;base64,{_image_png(img)}" width="112"></td>'
                        for img in (face, true_decoded, voice_decoded))
        rows.append(f"<tr><td>{html.escape(clips['speakers'][index])}</td>{cells}</tr>")
    banner = ('<p class="banner">SYNTHETIC DATA: this model was trained and evaluated on the synthetic world '
              "(warped portraits, espeak-ng voices). Its faces say nothing about real people.</p>"
              if metrics["synthetic"] else "")
    sections = ("feature_similarity", "retrieval", "matching_1_of_2", "demographics", "craniofacial")
    tables = "".join(f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(metrics[name], indent=1))}</pre>"
                     for name in sections if name in metrics)
    protocol = metrics["protocol"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>speech2face evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}} .banner{{background:#fdd;padding:1em;
font-weight:bold;border:2px solid #c00}} td{{text-align:center}} pre{{background:#f4f4f4;padding:.5em}}</style>
</head><body><h1>speech2face evaluation</h1>{banner}
<p>Protocol: {html.escape(protocol['clips'])} of the {html.escape(protocol['split'])} split:
{protocol['speakers']} held-out speakers; retrieval pool {protocol['pool']} (the true face and
{protocol['pool'] - 1} others); seed {protocol['seed']}. Model: {html.escape(metrics['model']['voice'])},
decoder {html.escape(metrics['model']['decoder'])}.</p>
<h2>Gallery</h2><table><tr><th>speaker</th><th>true face</th><th>from the true feature</th>
<th>from the voice</th></tr>{''.join(rows)}</table>
<h2>Retrieval</h2><p>Each voice's predicted face feature ranks the pool of true
face features by cosine; Recall@K = how often its own face is among the K nearest.</p>
<img src="data:image/png;base64,{recall_png}">
{confusion_html}
<h2>Craniofacial measures</h2><p>Measures from the 68 landmarks of the face decoded from the voice and of the
face decoded from the true feature (formulas: speech2face.evaluate.craniofacial); Pearson r across the held-out
speakers, beside the same with the pairing shuffled.</p><img src="data:image/png;base64,{measures_png}">
<h2>All numbers</h2>{tables}</body></html>"""
