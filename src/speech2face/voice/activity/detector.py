"""Is there speech in a recording, and where: a trained voice-activity detector (Silero VAD, `silero.py`)
decides per 32 ms chunk; its probabilities become speech regions by silero's own rule (speech starts above
THRESHOLD, ends after MIN_SILENCE below THRESHOLD - 0.15; regions shorter than MIN_SPEECH are dropped,
the others padded by PAD). Silence, noise, tones, chords and music are refused where speech is needed.

    detector = SpeechDetector()              # loads the network once; hold it, do not reload per call
    activity = detector(wave)                 # .has_speech, .speech_seconds, .regions [(start_s, end_s)]

If the network cannot load (the `silero-vad` package is missing or damaged), `SpeechDetector` falls back to
`periodicity.py`, a hand-written check that refuses silence and noise but passes tones and music; it says
so once in the log and in `.method`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ...devices import pick_device
from ...errors import ModelError
from ..audio import BLOCK_SAMPLES, SAMPLE_RATE
from . import periodicity
from .silero import CHUNK, CONTEXT, LstmState, SileroVad

log = logging.getLogger(__name__)

THRESHOLD = 0.5  # speech probability that starts a region (silero's default)
END_THRESHOLD = THRESHOLD - 0.15  # and that ends it, after MIN_SILENCE below
MIN_SPEECH = 0.25  # seconds: shorter regions are dropped
MIN_SILENCE = 0.1  # seconds below END_THRESHOLD that end a region
PAD = 0.03  # seconds added on each side of a region
MIN_SPEECH_SECONDS = 0.3  # a recording with less speech than this has none
SILENT_DBFS = -60.0  # quieter than this (RMS over the recording): silent
CHUNK_SECONDS = CHUNK / SAMPLE_RATE
STRETCH_CHUNKS = BLOCK_SAMPLES // CHUNK  # 1875, 60 s: the network reads a long recording a block at a time


@dataclass(frozen=True)
class Activity:
    """What the detector found in one recording."""

    speech_seconds: float  # inside the speech regions
    seconds: float
    regions: tuple[tuple[float, float], ...]  # (start, end) in seconds
    peak: float  # highest speech probability of any chunk (1.0 for the fallback's voiced frames)
    level_dbfs: float  # RMS level of the whole recording
    method: str = "silero-vad"
    confidence: float = 1.0  # mean speech probability of the chunks inside the regions (0 without regions)

    @property
    def has_speech(self) -> bool:
        return self.speech_seconds >= MIN_SPEECH_SECONDS

    @property
    def voiced_seconds(self) -> float:
        """The name predictions have reported since the first speech check."""
        return self.speech_seconds

    def describe(self) -> str:
        if self.level_dbfs < SILENT_DBFS:
            return f"silent ({self.seconds:.1f} s at {self.level_dbfs:.0f} dBFS)"
        return (f"{self.speech_seconds:.2f} s of speech in {self.seconds:.1f} s: loud but not voiced as speech "
                f"(the detector's highest speech probability is {self.peak:.2f}; noise, a tone or music?)")

    def evidence(self) -> dict[str, float | str]:
        """What the detector saw, for a prediction's JSON: seconds, speech seconds, peak and mean probability."""
        return {"method": self.method, "seconds": round(self.seconds, 3),
                "speech_seconds": round(self.speech_seconds, 3), "peak_probability": round(self.peak, 3),
                "mean_probability_in_speech": round(self.confidence, 3), "level_dbfs": round(self.level_dbfs, 1)}

    def speech_in(self, start: float, end: float) -> float:
        """Seconds of speech regions inside [start, end)."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.regions)


def regions_from(probabilities: np.ndarray, seconds: float) -> tuple[tuple[float, float], ...]:
    """Speech regions (seconds) from per-chunk speech probabilities, by silero's hysteresis rule."""
    found: list[list[float]] = []
    start: float | None = None
    quiet_since: float | None = None
    for index, p in enumerate(probabilities):
        t = index * CHUNK_SECONDS
        if p >= THRESHOLD:
            quiet_since = None
            if start is None:
                start = t
        elif start is not None and p < END_THRESHOLD:
            quiet_since = t if quiet_since is None else quiet_since
            if t + CHUNK_SECONDS - quiet_since >= MIN_SILENCE:
                found.append([start, quiet_since])
                start, quiet_since = None, None
    if start is not None:
        found.append([start, min(seconds, len(probabilities) * CHUNK_SECONDS)])
    return merge([(max(0.0, a - PAD), min(seconds, b + PAD)) for a, b in found if b - a >= MIN_SPEECH])


def merge(intervals: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Sorted intervals with the overlapping ones joined (padding, or overlapping frames, make them touch)."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return tuple((round(a, 3), round(b, 3)) for a, b in merged)


def stretch(waves: list[np.ndarray], first: int, count: int) -> torch.Tensor:
    """Chunks `first` .. `first + count` of each wave as the network reads them, (B, count, CONTEXT + CHUNK): each
    chunk with the CONTEXT samples before it, zeros before the start and after the end; only that stretch copied
    (`stretch(waves, 0, n)` cuts a whole recording of n chunks)."""
    start = first * CHUNK - CONTEXT
    piece = np.zeros((len(waves), CONTEXT + count * CHUNK), np.float32)
    for row, wave in enumerate(waves):
        part = np.asarray(wave[max(0, start):(first + count) * CHUNK], np.float32)
        piece[row, max(0, -start):max(0, -start) + len(part)] = part
    return torch.from_numpy(piece).unfold(1, CONTEXT + CHUNK, CHUNK)


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level in dBFS, summed in float64 a block at a time (no float64 copy of a long recording)."""
    return _decibels(sum(_energy(wave[i:i + BLOCK_SAMPLES]) for i in range(0, len(wave), BLOCK_SAMPLES)), len(wave))


def _energy(samples: np.ndarray) -> float:
    return float(np.square(samples, dtype=np.float64).sum())


def _decibels(energy: float, samples: int) -> float:
    rms = float(np.sqrt(energy / samples)) if samples else 0.0
    return 20 * np.log10(max(rms, 1e-10))


def _activity(probabilities: np.ndarray, samples: int, level: float) -> Activity:
    """What the network's probabilities say of a recording of `samples` samples at `level` dBFS."""
    seconds = samples / SAMPLE_RATE
    regions = regions_from(probabilities, seconds)
    inside = np.zeros(len(probabilities), bool)
    for a, b in regions:
        inside[int(a / CHUNK_SECONDS):int(np.ceil(b / CHUNK_SECONDS))] = True
    return Activity(speech_seconds=round(sum(b - a for a, b in regions), 3), seconds=seconds, regions=regions,
                    peak=float(probabilities.max(initial=0.0)), level_dbfs=level,
                    confidence=float(probabilities[inside].mean()) if inside.any() else 0.0)


class SpeechDetector:
    """Silero VAD on one device (or the fallback); call it on 16 kHz waves."""

    def __init__(self, device: str | torch.device | None = "cpu") -> None:
        self.device = pick_device(device)
        try:
            self.model: SileroVad | None = SileroVad.from_package(self.device)
            self.method = "silero-vad"
        except ModelError as error:
            log.warning("speech detection falls back to a periodicity check (passes tones and music): %s", error)
            self.model, self.method = None, "periodicity (fallback)"

    @torch.no_grad()
    def probabilities(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probability per 32 ms chunk of each wave; the waves are batched (zero-padded to the longest:
        the state runs forward only, so padding after a wave's end cannot change its chunks), and read a
        stretch of STRETCH_CHUNKS at a time, the state carried over: no copy of a whole recording is made."""
        assert self.model is not None
        counts = [-(-len(wave) // CHUNK) for wave in waves]
        stretches, state = [], None
        for first in range(0, max(max(counts), 1), STRETCH_CHUNKS):
            chunks = stretch(waves, first, STRETCH_CHUNKS).to(self.device)
            probabilities, state = self.model.stream(chunks, state)
            stretches.append(probabilities.cpu().numpy())
        out = np.concatenate(stretches, axis=1)
        return [out[row, :count] for row, count in enumerate(counts)]

    def batch(self, waves: list[np.ndarray]) -> list[Activity]:
        if not waves:
            return []
        if self.model is None:
            return [self._fallback(wave) for wave in waves]
        return [_activity(probabilities, len(wave), level_dbfs(wave))
                for wave, probabilities in zip(waves, self.probabilities(waves), strict=True)]

    def stream(self) -> DetectorStream:
        """A reader (`stream.Reader`) for one recording handed in blocks of BLOCK_SAMPLES: `.activity` after
        `finish` is what calling the detector on the whole recording gives."""
        return DetectorStream(self)

    def __call__(self, wave: np.ndarray) -> Activity:
        return self.batch([wave])[0]

    def _fallback(self, wave: np.ndarray) -> Activity:
        return _fallback_activity(*periodicity.voiced_frames(wave), len(wave), level_dbfs(wave), self.method)


def _fallback_activity(voiced: np.ndarray, loud: np.ndarray, samples: int, level: float, method: str) -> Activity:
    """What the periodicity fallback's frames say of a recording of `samples` samples at `level` dBFS."""
    found = periodicity.voicing(voiced, loud, samples)
    regions = merge([(i * periodicity.HOP / SAMPLE_RATE, (i * periodicity.HOP + periodicity.FRAME) / SAMPLE_RATE)
                     for i in np.flatnonzero(voiced)])
    return Activity(speech_seconds=found.voiced_seconds, seconds=found.seconds, regions=regions,
                    peak=1.0 if found.voiced_seconds else 0.0, level_dbfs=level, method=method,
                    confidence=1.0 if found.voiced_seconds else 0.0)


class DetectorStream:
    """The detector over a recording that passes a block at a time (each BLOCK_SAMPLES long but the last): the
    network reads each block as one stretch, with the CONTEXT samples before it and the state carried, as it
    reads a whole recording; the level is summed block by block. The fallback's frames are computed as their
    samples come (`periodicity.FrameStream`)."""

    def __init__(self, detector: SpeechDetector) -> None:
        self.detector = detector
        self.state: LstmState | None = None
        self.before = np.zeros(CONTEXT, np.float32)  # the last CONTEXT samples of the block before
        self.probabilities: list[np.ndarray] = []
        self.frames = periodicity.FrameStream()  # the fallback's
        self.samples, self.energy = 0, 0.0
        self.activity: Activity | None = None

    @torch.no_grad()
    def add(self, block: np.ndarray) -> None:
        if self.samples % BLOCK_SAMPLES:
            raise ValueError("only the last block may be shorter than BLOCK_SAMPLES")
        self.samples += block.size
        self.energy += _energy(block)
        if self.detector.model is None:
            self.frames.add(block)
            return
        piece = np.zeros((1, CONTEXT + BLOCK_SAMPLES), np.float32)
        piece[0, :CONTEXT], piece[0, CONTEXT:CONTEXT + block.size] = self.before, block
        chunks = torch.from_numpy(piece).unfold(1, CONTEXT + CHUNK, CHUNK).to(self.detector.device)
        probabilities, self.state = self.detector.model.stream(chunks, self.state)
        self.probabilities.append(probabilities[0, :-(-block.size // CHUNK)].cpu().numpy())
        self.before = piece[0, block.size:block.size + CONTEXT].copy()

    def finish(self) -> None:
        if self.detector.model is None:
            self.activity = _fallback_activity(*self.frames.frames(), self.samples,
                                               _decibels(self.energy, self.samples), self.detector.method)
            return
        probabilities = np.concatenate(self.probabilities) if self.probabilities else np.zeros(0, np.float32)
        self.activity = _activity(probabilities, self.samples, _decibels(self.energy, self.samples))


def speech_activity(wave: np.ndarray, detector: SpeechDetector | None = None) -> Activity:
    """What a detector finds in one 16 kHz wave (a new CPU detector when none is given: hold one for many)."""
    return (detector or SpeechDetector())(wave)
