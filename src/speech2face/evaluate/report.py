"""The evaluation's outputs for people: report.html (self-contained: banner, protocol, gallery, Recall@K
curve, confusion matrices, craniofacial bars, every number), gallery.png, and the text summary printed by
`s2f evaluate` and `s2f demo`."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np
import torch

from ..images import to_uint8


def summary(metrics: dict[str, Any]) -> list[str]:
    """The headline numbers, each beside its chance level, as lines of text."""
    cos = metrics["retrieval"]["cos"]
    similarity = metrics["feature_similarity"]
    lines = []
    if metrics["synthetic"]:
        lines.append("SYNTHETIC DATA: trained and evaluated on the synthetic world; says nothing about real people")
    lines.append(f"held-out speakers: {metrics['protocol']['speakers']} (one clip each); retrieval pool {cos['pool']}")
    lines.append("S2F -> face retrieval (cos): " + ", ".join(
        f"R@{k} {cos[f'R@{k}']:.3f} (chance {cos[f'chance_R@{k}']:.3f})" for k in (1, 2, 5, 10) if f"R@{k}" in cos))
    lines.append(f"feature cosine {similarity['voice']['cosine']:.3f} "
                 f"(shuffled pairs {similarity['shuffled']['cosine']:.3f})")
    for name, result in metrics["matching_1_of_2"].items():
        lines.append(f"1:2 matching ({name}): {result['accuracy']:.3f} (chance 0.5, {result['trials']} trials)")
    for name, result in metrics.get("demographics", {}).items():
        voice, upper = result["voice"], result["upper_bound"]
        lines.append(f"{name}: voice-face agrees with true face {voice['agreement']:.3f} "
                     f"(chance {voice['chance']:.3f}; from the true feature {upper['agreement']:.3f}; "
                     f"probe accuracy {result['probe_accuracy']:.3f})")
    return lines + independent_lines(metrics)


def independent_lines(metrics: dict[str, Any]) -> list[str]:
    """The scorer's and the judge's headline numbers (networks that took no part in training)."""
    lines = [f"{name} skipped: {metrics[name]['skipped']}" for name in ("scorer", "judge")
             if "skipped" in metrics.get(name, {})]
    if "scorer" in metrics and "skipped" not in metrics["scorer"]:
        scorer = metrics["scorer"]
        voice, upper, chance = scorer["voice"], scorer["upper_bound"], scorer["chance"]
        lines.append(f"scorer {scorer['network']} (pool {scorer['pool']}): face from the voice -> true face "
                     f"R@1 {voice['R@1']:.3f}, R@5 {voice['R@5']:.3f}, cosine {voice['cosine']:.3f} "
                     f"(chance {chance['R@1']:.3f}, {chance['R@5']:.3f}, {chance['cosine']:.3f}; upper bound "
                     f"{upper['R@1']:.3f}, {upper['R@5']:.3f}, {upper['cosine']:.3f})")
    if "judge" in metrics and "skipped" not in metrics["judge"]:
        judge = metrics["judge"]
        sex, age = judge["sex"], judge["age_group"]
        accuracy = judge.get("judge_accuracy")
        lines.append(f"judge ({judge['network']}): sex of the face from the voice agrees with the true face "
                     f"{sex['voice']['agreement']:.3f} (chance {sex['voice']['chance']:.3f}, upper bound "
                     f"{sex['upper_bound']['agreement']:.3f}); age group {age['voice']['agreement']:.3f} (chance "
                     f"{age['voice']['chance']:.3f}, upper bound {age['upper_bound']['agreement']:.3f})"
                     + (f"; the judge's own accuracy on the true faces vs {accuracy['label']}: "
                        f"{accuracy['accuracy']:.3f}" if accuracy else ""))
    return lines


def independent_html(metrics: dict[str, Any]) -> str:
    """Tables of the scorer and the judge, each number beside chance and the upper bound."""
    parts = [f"<p>The {name} was skipped: {html.escape(metrics[name]['skipped'])}</p>" for name in ("scorer", "judge")
             if "skipped" in metrics.get(name, {})]
    if "scorer" in metrics and "skipped" not in metrics["scorer"]:
        scorer = metrics["scorer"]
        rows = "".join(
            f"<tr><td>{label}</td>" + "".join(f"<td>{scorer[key][column]:.3f}</td>"
                                              for column in ("R@1", "R@2", "R@5", "R@10", "cosine")) + "</tr>"
            for key, label in (("voice", "face from the voice"), ("upper_bound", "face from the true feature"),
                               ("chance", "chance")))
        parts.append(
            f"<h2>Independent scorer: {html.escape(scorer['network'])}</h2><p>A face network the model did not "
            "learn from embeds each true face and the faces drawn for it; each drawn face ranks a pool of "
            f"{scorer['pool']} true faces (its own and {scorer['pool'] - 1} others).</p><table><tr><th></th>"
            "<th>R@1</th><th>R@2</th><th>R@5</th><th>R@10</th><th>cosine to the true face</th></tr>"
            f"{rows}</table>")
    if "judge" in metrics and "skipped" not in metrics["judge"]:
        judge = metrics["judge"]
        rows = "".join(
            f"<tr><td>{name}</td>" + "".join(f"<td>{judge[name][key]['agreement']:.3f}</td>"
                                             for key in ("voice", "upper_bound"))
            + f"<td>{judge[name]['voice']['chance']:.3f}</td><td>{judge[name]['voice']['kappa']:.3f}</td></tr>"
            for name in ("sex", "age_group"))
        accuracy = judge.get("judge_accuracy")
        own = (f" Its own accuracy on the true faces against the labels ({html.escape(accuracy['label'])}): "
               f"{accuracy['accuracy']:.3f} on {accuracy['faces']} faces." if accuracy else "")
        parts.append(
            f"<h2>Judge: {html.escape(judge['network'])}</h2><p>A real age and sex classifier reads the true face "
            "and the faces drawn for it; how often its answer for a drawn face agrees with its answer for the "
            f"true face (the paper's Table 2 protocol).{own}</p><table><tr><th></th><th>face from the voice</th>"
            f"<th>face from the true feature</th><th>chance</th><th>kappa</th></tr>{rows}</table>")
    return "".join(parts)


def gallery_image(faces: np.ndarray, from_face: torch.Tensor, from_voice: torch.Tensor, count: int = 8,
                  size: int = 112) -> Any:
    """A PNG-ready picture: one column per held-out speaker; rows: true face, face decoded from the true
    feature, face decoded from the voice."""
    import cv2
    from PIL import Image

    count = min(count, len(faces))
    rows = [list(faces[:count]), list(to_uint8(from_face[:count])), list(to_uint8(from_voice[:count]))]
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
    shown = zip(clips["face"][:gallery], to_uint8(from_face[:gallery]), to_uint8(from_voice[:gallery]), strict=True)
    for index, (face, true_decoded, voice_decoded) in enumerate(shown):
        cells = "".join(f'<td><img src="data:image/png;base64,{_image_png(img)}" width="112"></td>'
                        for img in (face, true_decoded, voice_decoded))
        rows.append(f"<tr><td>{html.escape(clips['speakers'][index])}</td>{cells}</tr>")
    banner = ('<p class="banner">SYNTHETIC DATA: this model was trained and evaluated on the synthetic world '
              "(real: the portraits and the recorded voices; synthetic: their pairing, the morphs and warps of the "
              "faces, the transformation of the voices). Its faces say nothing about real people.</p>"
              if metrics["synthetic"] else "")
    sections = ("feature_similarity", "retrieval", "matching_1_of_2", "demographics", "scorer", "judge",
                "craniofacial")
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
{independent_html(metrics)}
<h2>Craniofacial measures</h2><p>Measures from the 68 landmarks of the face decoded from the voice and of the
face decoded from the true feature (formulas: speech2face.evaluate.craniofacial); Pearson r across the held-out
speakers, beside the same with the pairing shuffled.</p><img src="data:image/png;base64,{measures_png}">
<h2>All numbers</h2>{tables}</body></html>"""
