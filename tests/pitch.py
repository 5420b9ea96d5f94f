"""A small autocorrelation pitch tracker, to check that synthetic voices follow their pitch setting."""

from __future__ import annotations

import numpy as np


def median_f0(wave: np.ndarray, sr: int = 16000, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median F0 (Hz) over voiced 40 ms frames (normalised autocorrelation peak > 0.6); nan if none."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    lags = np.arange(int(sr / fmax), int(sr / fmin) + 1)
    loudness = np.sqrt(np.mean(wave**2)) + 1e-9
    estimates = []
    for start in range(0, len(wave) - frame - lags[-1], hop):
        x = wave[start:start + frame]
        if np.sqrt(np.mean(x**2)) < 0.3 * loudness:
            continue
        x = x - x.mean()
        shifted = np.stack([wave[start + lag:start + lag + frame] for lag in lags])
        shifted = shifted - shifted.mean(axis=1, keepdims=True)
        r = shifted @ x / (np.linalg.norm(shifted, axis=1) * np.linalg.norm(x) + 1e-9)
        best = int(r.argmax())
        if r[best] > 0.6:
            estimates.append(sr / lags[best])
    return float(np.median(estimates)) if estimates else float("nan")
