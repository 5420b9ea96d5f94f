"""README's gallery of the quick demo: faces a model draws from voices it never heard, beside the true faces.

    python tools/demo_gallery.py --demo DEMO_OUT [--model demo] [--out docs/images/demo_quick_gallery.png]

Top: held-out speakers of the demo's world (`DEMO_OUT/data`, test split; women and men alike): their true face (the
real photo, as the video showed it) over the face drawn from their voice. Bottom: real voices no world ever used:
Carlo (a man) and Menardi (a woman), recordings of the *measuring* half of their prompts, and a conversation of the
two (a face per speaker). Each drawn face is captioned with the real age/sex judge's p(male).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from speech2face import Speech2Face, load_audio
from speech2face.data.shards import read_shard
from speech2face.examples import conversation
from speech2face.faces.judge import Judge
from speech2face.synth.recorded import HELD_OUT, held_out_recordings

TILE = 128
LABEL = 150
PER_ROW = 8


def world_rows(demo: Path, model: Speech2Face, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """True faces and faces drawn from the voice, for `count` held-out speakers, alternating women and men."""
    import csv

    with (demo / "world" / "attributes.csv").open(newline="") as handle:
        sex = {row["speaker_id"]: row["sex"] for row in csv.DictReader(handle)}
    chosen: dict[str, list[dict]] = {"female": [], "male": []}
    for shard in sorted((demo / "data" / "shards").glob("test-*.tar")):
        for sample in read_shard(shard):
            group = chosen[sex[sample["meta"]["speaker"]]]
            if len(group) < count // 2 and all(s["meta"]["speaker"] != sample["meta"]["speaker"] for s in group):
                group.append(sample)
    samples = [s for pair in zip(chosen["female"], chosen["male"], strict=False) for s in pair]
    true = [np.asarray(Image.fromarray(s["face"]).resize((TILE, TILE))) for s in samples]
    drawn = [np.asarray(model.predict(load_audio(s["audio"]), speakers=1).image.resize((TILE, TILE)))
             for s in samples]
    return true, drawn


def real_rows(model: Speech2Face, count: int) -> list[tuple[str, np.ndarray]]:
    """(caption, face) for `count` measuring recordings of each held-out speaker, then their conversation's faces."""
    faces = []
    voices = {}
    for speaker in HELD_OUT:
        waves = held_out_recordings(speaker, 10.0, count, seed=0, half="measuring")
        voices[speaker.name] = waves[0]
        faces += [(f"{speaker.name} ({speaker.sex})", np.asarray(p.image.resize((TILE, TILE))))
                  for p in model.predict_batch(waves)]
    talk = model.predict(conversation(*voices.values())).speakers  # the speakers found, first heard first
    faces += [(f"conversation {i + 1}", np.asarray(p.image.resize((TILE, TILE)))) for i, p in enumerate(talk)]
    return faces


def sheet(rows: list[tuple[str, list[np.ndarray], list[str]]]) -> Image.Image:
    image = Image.new("RGB", (LABEL + PER_ROW * TILE, len(rows) * (TILE + 14)), "white")
    draw = ImageDraw.Draw(image)
    for r, (label, tiles, captions) in enumerate(rows):
        top = r * (TILE + 14)
        draw.text((6, top + TILE // 2 - 6), label, fill="black")
        for c, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
            image.paste(Image.fromarray(tile[..., :3]), (LABEL + c * TILE, top))
            draw.text((LABEL + c * TILE + 3, top + TILE + 1), caption, fill="black")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a s2f demo output folder")
    parser.add_argument("--model", default=None, help="default: DEMO/model")
    parser.add_argument("--out", type=Path, default=Path("docs/images/demo_quick_gallery.png"))
    args = parser.parse_args()

    model = Speech2Face.from_pretrained(args.model or args.demo / "model", device="cpu")
    judge = Judge()

    def captions(tiles: list[np.ndarray]) -> list[str]:
        return [f"p(male) {p:.2f}" for p in judge(np.stack([t[..., :3] for t in tiles])).p_male]

    true, drawn = world_rows(args.demo, model, PER_ROW)
    real = real_rows(model, 4)
    carlo = [face for name, face in real if name.startswith("carlo")]
    menardi = [face for name, face in real if name.startswith("menardi")]
    talk = [face for name, face in real if name.startswith("conversation")]
    rows = [("held-out world:\ntrue face (photo)", true, ["woman" if i % 2 == 0 else "man" for i in range(len(true))]),
            ("drawn from\nthe voice", drawn, captions(drawn)),
            ("real voices:\nCarlo (man) | Menardi\n(woman)", carlo + menardi, captions(carlo + menardi)),
            ("a conversation\nof the two", talk, captions(talk))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(rows).save(args.out)
    print(f"{args.out}: " + "; ".join(f"{label.splitlines()[0]} {len(tiles)}" for label, tiles, _ in rows))


if __name__ == "__main__":
    main()
