"""Example recordings, and a model's answers to them: what `make demo` (`s2f examples`) shows and what the web
page offers to click.

    found = write_examples(Path("examples"))      # [Example(name, path, what)]: wav files written there

The voices are real: the two held-out speakers of `synth.recorded` (Carlo and Menardi, Italian prompts from
Debian's Asterisk packages; never a source of any synthetic world), each on its own, and a conversation of
the two taking turns. Two refusals: silence, and music (a synthetic melody of harmonic notes over a drum
beat). Deterministic for a seed.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, ModelError
from .faces.judge import Judge
from .files import atomic_write
from .synth.recorded import HELD_OUT, held_out_recordings
from .voice.audio import SAMPLE_RATE

VOICE_SECONDS = 8.0  # each speaker's example; the conversation joins two turns of each
TURN_GAP_SECONDS = 0.4
MUSIC_SECONDS = 6.0


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    what: str
    refused: bool = False  # what a model should answer: no face (silence, music)


def melody(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Music without speech: C major notes of a quarter second (five harmonics, decaying) over a drum beat of
    noise bursts twice a second; float64, peak about 1."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    notes = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3]
    out = np.zeros_like(t)
    step = SAMPLE_RATE // 4
    for start in range(0, len(t) - step + 1, step):
        tt = t[:step]
        pitch = notes[rng.integers(len(notes))]
        out[start:start + step] += sum(np.sin(2 * np.pi * pitch * k * tt) / k for k in range(1, 6)) * np.exp(-3 * tt)
    for start in range(0, len(t) - 800, SAMPLE_RATE // 2):
        out[start:start + 800] += 0.5 * rng.normal(0, 1, 800) * np.exp(-np.arange(800) / 100)
    return out


def conversation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two voices taking turns: the first half of each, then the second half of each, short pauses between."""
    gap = np.zeros(round(TURN_GAP_SECONDS * SAMPLE_RATE), np.float32)
    a, b = np.array_split(first, 2), np.array_split(second, 2)
    return np.concatenate([a[0], gap, b[0], gap, a[1], gap, b[1]]).astype(np.float32)


def write_examples(folder: Path, seed: int = 0) -> list[Example]:
    """The example recordings as 16 kHz wav files in `folder`. DataError (one line, naming the Debian package)
    when the recorded voices are not installed."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    waves: list[tuple[str, np.ndarray, str]] = []
    voices = []
    for speaker in HELD_OUT:
        recordings = held_out_recordings(speaker, VOICE_SECONDS, 1, seed, half="measuring")
        if not recordings:
            raise DataError(f"{speaker.package}: too few recordings of {speaker.name} for an example")
        wave = recordings[0]
        voices.append(wave)
        waves.append((speaker.name, wave, f"a real recorded voice: {speaker.name.capitalize()}, a {speaker.sex} "
                                          f"speaker (Debian package {speaker.package})"))
    waves.append(("conversation", conversation(*voices[:2]),
                  "two real voices taking turns: a face for each speaker"))
    waves.append(("silence", np.zeros(3 * SAMPLE_RATE, np.float32), "silence: refused, no face"))
    music = melody(MUSIC_SECONDS, np.random.default_rng(seed))
    waves.append(("music", (0.5 * music / np.abs(music).max()).astype(np.float32),
                  "music (a synthetic melody over drums): refused, no face"))
    found = []
    for name, wave, what in waves:
        path = folder / f"{name}.wav"
        encoded = io.BytesIO()  # encoded in memory: a full disk is then the OSError of a plain write
        soundfile.write(encoded, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        data = encoded.getvalue()
        atomic_write(path, lambda temp, data=data: temp.write_bytes(data))
        found.append(Example(name, path, what, refused=name in ("silence", "music")))
    return found


def judge_verdicts(images: list[Path]) -> tuple[str, list[str]]:
    """The real age and sex judge (`faces.judge`: networks nobody here trained), its name and what it says of
    each drawn face; or why there is no judge, and empty verdicts."""
    from PIL import Image

    try:
        judge = Judge()
    except ModelError as error:
        return f"none ({error})", [""] * len(images)
    if not images:
        return judge.name, []
    found = judge(np.stack([np.asarray(Image.open(path).convert("RGB")) for path in images]))
    return judge.name, [f"the judge calls this face {'male' if p >= 0.5 else 'female'} (p(male) {p:.2f}), age "
                        f"about {age:.0f}" for p, age in zip(found.p_male, found.age, strict=True)]


def write_page(out: Path, model_label: str, synthetic: bool, examples: list[Example],
               answers: dict[str, list[dict[str, object]] | str], judge: str) -> Path:
    """`out/index.html`: per example its audio, what it is, and its faces (with the judge's verdict) or the
    refusal; `answers[name]`: the faces' records ({"image", "label", "voiced_seconds", "verdict"}) or the error."""
    banner = ("SYNTHETIC MODEL: its voice encoder learnt on a synthetic world that pairs real recorded voices "
              "(transformed) with faces; the pairing is made up, so its faces say nothing about real people."
              if synthetic else "Faces drawn from a voice are a guess at features correlated with voice "
              "(sex, age, build), not a portrait of the speaker.")
    rows = []
    for example in examples:
        answer = answers[example.name]
        audio = f'<audio controls src="{html.escape(example.path.relative_to(out).as_posix())}"></audio>'
        if isinstance(answer, str):
            body = f'<p class="refused">refused: {html.escape(answer)}</p>'
        else:
            body = "".join(f'<figure><img src="{html.escape(str(face["image"]))}" width="192"><figcaption>'
                           f'{html.escape(str(face["label"]))}, {face["voiced_seconds"]:.1f} s of speech<br>'
                           f'{html.escape(str(face["verdict"]))}</figcaption></figure>' for face in answer)
        rows.append(f"<section><h2>{html.escape(example.name)}</h2><p>{html.escape(example.what)}</p>{audio}"
                    f"<div>{body}</div></section>")
    page = (f"<!doctype html><meta charset=utf-8><title>speech2face examples</title><style>body{{font-family:"
            f"sans-serif;max-width:60em;margin:auto}} .banner{{background:#fee;border:2px solid #c00;padding:.5em}} "
            f"figure{{display:inline-block;margin:.5em}} img{{image-rendering:pixelated}} .refused{{color:#a00}}"
            f"</style><h1>speech2face: faces from real voices</h1><p class=banner><b>{html.escape(banner)}</b></p>"
            f"<p>Model: {html.escape(model_label)}<br>Judge: {html.escape(judge)}</p>{''.join(rows)}")
    path = out / "index.html"
    atomic_write(path, lambda temp: temp.write_text(page))
    return path
