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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import evaluate
from .data.dataset import ShardStream, shard_paths
from .errors import DataError
from .files import atomic_write, write_json


def held_out_clips(data: str | Path, seconds: float = 6.0) -> dict[str, Any]:
    """The first clip of each held-out (val and test) speaker: its first `seconds`, feature, face crop.
    Neither split trains anything; the final checkpoint is evaluated, not the val-selected `best/`."""
    from . import audio

    paths = shard_paths(data, ("test", "val"))
    if not paths:
        raise DataError(f"{data}: no test or val shards to evaluate on")
    chosen: dict[str, dict[str, Any]] = {}
    for sample in ShardStream(paths, lambda s: s, shuffle=False, loop=False):
        speaker = sample["meta"]["speaker"]
        if speaker not in chosen:
            wave = audio.load_audio(sample["audio"])[: round(seconds * audio.SAMPLE_RATE)]
            chosen[speaker] = {"wave": audio.fit_length(wave, seconds), "feature": sample["feature"],
                               "face": sample["face"], "key": sample["key"]}
    if len(chosen) < 2:
        raise DataError(f"{data}: only {len(chosen)} held-out speaker(s); need at least 2")
    speakers = sorted(chosen)
    return {"speakers": speakers, **{k: np.stack([chosen[s][k] for s in speakers])
                                     for k in ("wave", "feature", "face")}}


def load_labels(path: str | Path | None, speakers: list[str]) -> dict[str, np.ndarray]:
    """Binary attribute labels per speaker from a CSV with a speaker_id column (numeric columns are split
    at 0, as the synthetic world's standard-normal attributes; 0/1 columns stay)."""
    import csv

    if path is None:
        return {}
    with Path(path).open(newline="") as handle:
        rows = {row["speaker_id"]: row for row in csv.DictReader(handle)}
    missing = [s for s in speakers if s not in rows]
    if missing:
        raise DataError(f"{path}: no labels for {len(missing)} held-out speakers (e.g. {missing[0]})")
    out = {}
    for column in ("masculinity", "age", "size", "sex", "gender"):
        if column in rows[speakers[0]]:
            try:
                values = np.array([float(rows[s][column]) for s in speakers])
            except ValueError:
                continue
            out[column] = (values > 0).astype(int) if set(np.unique(values)) - {0, 1} else values.astype(int)
    return out


def evaluate_model(voice_dir: str | Path, data: str | Path, out: str | Path, *, decoder_dir: str | Path | None = None,
                   labels: str | Path | None = None, pool: int = 100, seed: int = 0) -> dict[str, Any]:
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
    prepared = Path(data) / "prepare.json"
    synthetic = bool(json.loads(prepared.read_text()).get("synthetic")) if prepared.is_file() else False
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
    for name, groups in load_labels(labels, clips["speakers"]).items():
        metrics["matching_1_of_2"][f"same_{name}"] = evaluate.matching_1_of_2(predicted, true, groups, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    page = render_html(metrics, clips, from_face.image, from_voice.image)
    atomic_write(out / "report.html", lambda t: t.write_text(page))
    return metrics


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

    def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
        return [(img.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8) for img in images]

    rows = []
    for index, (face, true_decoded, voice_decoded) in enumerate(zip(clips["face"][:gallery], to_uint8(from_face),
                                                                     to_uint8(from_voice), strict=False)):
        cells = "".join(f'<td><img src="data:image/png;base64,{_image_png(img)}" width="112"></td>'
                        for img in (face, true_decoded, voice_decoded))
        rows.append(f"<tr><td>{html.escape(clips['speakers'][index])}</td>{cells}</tr>")
    banner = ('<p class="banner">SYNTHETIC DATA: this model was trained and evaluated on the synthetic world '
              "(warped portraits, espeak-ng voices). Its faces say nothing about real people.</p>"
              if metrics["synthetic"] else "")
    tables = "".join(f"<h3>{html.escape(section)}</h3><pre>{html.escape(json.dumps(metrics[section], indent=1))}</pre>"
                     for section in ("feature_similarity", "retrieval", "matching_1_of_2", "craniofacial"))
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
<h2>Retrieval</h2><img src="data:image/png;base64,{recall_png}">
<h2>Craniofacial measures</h2><img src="data:image/png;base64,{measures_png}">
<h2>All numbers</h2>{tables}</body></html>"""
