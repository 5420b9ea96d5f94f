"""Is there speech in a wave? A refusal for silence and pure noise, before a model draws a face from it.

Voiced speech is loud enough and periodic at a pitch in 60-400 Hz; silence is not loud, and noise (white,
pink, brown, hiss, hum-free rumble) is not periodic. Per 40 ms frame (20 ms hop) of the first difference
of the wave (which whitens rumble and removes DC): RMS above MIN_RMS, and the normalised
autocorrelation's peak over the pitch lags above MIN_PERIODICITY -> a voiced frame. A recording needs
MIN_VOICED_SECONDS of voiced frames. A pure tone or music passes: this guards against the empty, not
against the wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE

FRAME = 640  # samples: 40 ms, two periods of the lowest pitch
HOP = 320  # 20 ms
MIN_PITCH_HZ, MAX_PITCH_HZ = 60, 400
MIN_LAG, MAX_LAG = SAMPLE_RATE // MAX_PITCH_HZ, SAMPLE_RATE // MIN_PITCH_HZ  # 40, 266 samples
MIN_RMS = 10 ** (-60 / 20)  # of the differenced wave, full scale 1: below is silence
MIN_PERIODICITY = 0.4  # white noise peaks at 0.27 at most (60 s measured); clean voiced speech 0.6-0.9
MIN_VOICED_SECONDS = 0.3


@dataclass(frozen=True)
class Voicing:
    voiced_seconds: float
    loud_seconds: float  # frames above MIN_RMS, voiced or not
    seconds: float

    @property
    def has_speech(self) -> bool:
        return self.voiced_seconds >= MIN_VOICED_SECONDS

    def describe(self) -> str:
        if self.loud_seconds == 0:
            return f"silent ({self.seconds:.1f} s below {20 * np.log10(MIN_RMS):.0f} dBFS)"
        return (f"{self.voiced_seconds:.2f} s of voiced sound in {self.seconds:.1f} s "
                f"({self.loud_seconds:.1f} s loud but not voiced: noise?)")


def voiced_frames(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(voiced, loud) boolean per frame of a 16 kHz wave."""
    x = np.diff(np.asarray(wave, np.float64))
    if len(x) < FRAME:
        return np.zeros(0, bool), np.zeros(0, bool)
    count = 1 + (len(x) - FRAME) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    loud = np.sqrt((frames**2).mean(axis=1)) > MIN_RMS
    spectrum = np.fft.rfft(frames, n=2 * FRAME, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : MAX_LAG + 1]
    lags = np.arange(MIN_LAG, MAX_LAG + 1)
    # unbiased: each lag sums FRAME - lag products
    normalised = autocorrelation[:, lags] / autocorrelation[:, :1].clip(1e-20) * FRAME / (FRAME - lags)
    return loud & (normalised.max(axis=1) > MIN_PERIODICITY), loud


def speech_activity(wave: np.ndarray, sr: int = SAMPLE_RATE) -> Voicing:
    """How much voiced sound a wave holds (see the module docstring)."""
    if sr != SAMPLE_RATE:
        raise ValueError(f"speech_activity reads {SAMPLE_RATE} Hz waves, got {sr}")
    return voicing(*voiced_frames(wave), len(wave))


def voicing(voiced: np.ndarray, loud: np.ndarray, samples: int) -> Voicing:
    """What the frames (`voiced_frames`) of a wave of `samples` samples say of it."""
    return Voicing(voiced_seconds=float(voiced.sum() * HOP / SAMPLE_RATE),
                   loud_seconds=float(loud.sum() * HOP / SAMPLE_RATE), seconds=samples / SAMPLE_RATE)


class FrameStream:
    """`voiced_frames` of a wave handed in pieces: each frame computed once all its samples have come, from the
    same samples (the frames and their answers are those of the whole)."""

    def __init__(self) -> None:
        self.pending = np.zeros(0, np.float64)  # the wave from the next frame's first sample on
        self.voiced: list[np.ndarray] = []
        self.loud: list[np.ndarray] = []

    def add(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float64)])
        if len(self.pending) < FRAME + 1:  # a frame of the first difference needs FRAME + 1 samples
            return
        count = 1 + (len(self.pending) - FRAME - 1) // HOP
        voiced, loud = voiced_frames(self.pending[:(count - 1) * HOP + FRAME + 1])
        self.voiced.append(voiced)
        self.loud.append(loud)
        self.pending = self.pending[count * HOP:]

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(voiced, loud) of every whole frame handed in so far."""
        return (np.concatenate(self.voiced) if self.voiced else np.zeros(0, bool),
                np.concatenate(self.loud) if self.loud else np.zeros(0, bool))
