"""Synthetic voices: espeak-ng with one voice variant per speaker (pitch in Hz, formant scale, timbre).

espeak-ng reads voice variants from its data folder, so `VoiceBank` makes a private copy of that folder
(symbolic links, plus one variant file per speaker) and points espeak-ng at it with `--path`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import soxr

from ..errors import DataError
from ..voice.audio import SAMPLE_RATE
from .attributes import FORMANT_SCALE, Voice

# Harvard sentences (IEEE 1969 Recommended Practice for Speech Quality Measurements; public domain)
SENTENCES = (
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.", "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.", "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.", "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.", "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.", "What joy there is in living.",
)
ESPEAK = "espeak-ng"
ESPEAK_BASE_SHARE = 0.85  # of the target median F0
ESPEAK_RANGE_HZ = 45.0  # the pitch range at range factor 1
LANGUAGE = "en-us"


@cache
def espeak_data_dir() -> Path:
    """The installed espeak-ng-data folder, from `espeak-ng --version`."""
    if shutil.which(ESPEAK) is None:
        raise DataError("espeak-ng is not installed: apt-get install espeak-ng (macOS: brew install espeak-ng)")
    output = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Data at:\s*(\S.*)$", output.strip())
    if match is None or not Path(match.group(1)).is_dir():
        raise DataError(f"cannot find espeak-ng's data folder in {output!r}")
    return Path(match.group(1))


def variant_text(voice: Voice, name: str) -> str:
    """A variant file: the stock variant's timbre, our pitch, its formants scaled by ours."""
    stock = (espeak_data_dir() / "voices" / "!v" / voice.variant).read_text(errors="replace").splitlines()
    base = ESPEAK_BASE_SHARE * voice.pitch_hz  # espeak-ng's median F0 sits above its base pitch
    lines = [f"name {name}", "language variant",
             f"pitch {round(base)} {round(base + ESPEAK_RANGE_HZ * voice.pitch_range)}"]
    formant_scale = voice.formant_scale / FORMANT_SCALE[voice.sex]  # the stock variant is of that sex already
    formants = {}
    for line in stock:
        words = line.split()
        if words and words[0] == "formant" and len(words) >= 5:
            formants[int(words[1])] = [float(w) for w in words[2:5]]
        elif words and words[0] not in ("name", "language", "pitch", "formant"):
            lines.append(line)
    for index in range(1, 9):  # formant 0 is the voice's low-frequency body, not a vocal-tract resonance
        frequency, height, width = formants.get(index, [100.0, 100.0, 100.0])
        lines.append(f"formant {index} {round(frequency * formant_scale)} {round(height)} {round(width)}")
    return "\n".join(lines) + "\n"


class VoiceBank:
    """A private espeak-ng data folder holding one variant per speaker; use as a context manager."""

    def __init__(self, root: Path | None = None) -> None:
        self._temporary = tempfile.TemporaryDirectory(prefix="s2f-espeak-") if root is None else None
        self.root = Path(self._temporary.name) if self._temporary else Path(root)
        data = self.root / "espeak-ng-data"
        (data / "voices" / "!v").mkdir(parents=True, exist_ok=True)
        source = espeak_data_dir()
        for entry in source.iterdir():
            if entry.name != "voices" and not (data / entry.name).exists():
                (data / entry.name).symlink_to(entry)
        for entry in (source / "voices").iterdir():
            if entry.name != "!v" and not (data / "voices" / entry.name).exists():
                (data / "voices" / entry.name).symlink_to(entry)

    def add(self, name: str, voice: Voice) -> None:
        (self.root / "espeak-ng-data" / "voices" / "!v" / name).write_text(variant_text(voice, name))

    def say(self, name: str, voice: Voice, text: str) -> np.ndarray:
        """16 kHz mono float32 speech of `text` by the speaker `name` (added before)."""
        result = subprocess.run([ESPEAK, f"--path={self.root}", "-v", f"{LANGUAGE}+{name}", "-s",
                                 str(voice.rate_wpm), "--stdout", text], capture_output=True, check=False)
        if result.returncode != 0 or not result.stdout:
            raise DataError(f"espeak-ng failed for {name}: {result.stderr.decode(errors='replace').strip()}")
        return streamed_wav(result.stdout)

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()

    def __enter__(self) -> VoiceBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def streamed_wav(data: bytes) -> np.ndarray:
    """espeak-ng's --stdout WAV (16-bit mono; its header cannot know the length) -> 16 kHz float32."""
    start = data.find(b"data")
    if data[:4] != b"RIFF" or start < 0:
        raise DataError("espeak-ng wrote no WAV data")
    rate = int.from_bytes(data[24:28], "little")
    body = data[start + 8:]
    samples = np.frombuffer(body[: len(body) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    return soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def clip_text(rng: np.random.Generator, min_words: int = 9) -> str:
    """One or more Harvard sentences, at least `min_words` words (about 3 s of speech)."""
    chosen: list[str] = []
    order = rng.permutation(len(SENTENCES))
    for index in order:
        chosen.append(SENTENCES[index])
        if sum(len(s.split()) for s in chosen) >= min_words:
            break
    return " ".join(chosen)
