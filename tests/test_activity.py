"""Speech detection: the Silero VAD port against the package's own ONNX model, and what it refuses: silence,
noise, a pure tone, a chord, music; real speech (espeak-ng) found where it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face import load_audio
from speech2face.examples import melody
from speech2face.voice.activity import SpeechDetector, regions_from
from speech2face.voice.activity.detector import stretch
from speech2face.voice.activity.silero import CHUNK, CONTEXT, SileroVad, weights_path

SR = 16_000


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector("cpu")


@pytest.fixture(scope="module")
def speech(spoken: dict[str, Path]) -> np.ndarray:
    return load_audio(spoken["short"])


def reference_probabilities(wave: np.ndarray) -> np.ndarray:
    """silero-vad's ONNX model (onnxruntime) run chunk by chunk as its own wrapper runs it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(weights_path().parent / "silero_vad.onnx"),
                                           providers=["CPUExecutionProvider"])
    state, context, out = np.zeros((2, 1, 128), np.float32), np.zeros((1, CONTEXT), np.float32), []
    padded = np.pad(wave, (0, (-len(wave)) % CHUNK))
    for start in range(0, len(padded), CHUNK):
        x = np.concatenate([context, padded[None, start:start + CHUNK]], axis=1)
        probability, state = session.run(None, {"input": x, "state": state, "sr": np.array(SR, np.int64)})
        out.append(probability.item())
        context = x[:, -CONTEXT:]
    return np.array(out)


def test_port_matches_the_packages_onnx_model(speech: np.ndarray) -> None:
    wave = np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR // 2, np.float32)])
    with torch.no_grad():
        ours = SileroVad.from_package()(stretch([wave], 0, -(-len(wave) // CHUNK)))[0].numpy()
    reference = reference_probabilities(wave)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-4
    assert reference.max() > 0.9 and reference[:10].max() < 0.2  # it does see the speech, and the silence


def test_speech_is_found_where_it_is(detector: SpeechDetector, speech: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    wave = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(2 * SR, np.float32)])
    found = detector(wave)
    assert found.has_speech and found.method == "silero-vad"
    assert len(found.regions) >= 1
    start, end = found.regions[0][0], found.regions[-1][1]
    length = len(speech) / SR
    assert abs(start - 1.0) < 0.25 and abs(end - (1.0 + length)) < 0.4, found.regions
    assert found.speech_in(0, 0.9) == 0 and found.speech_in(1.0 + length + 0.5, 100) == 0
    noisy = detector(speech + rng.normal(0, 0.01, len(speech)).astype(np.float32))
    assert noisy.has_speech


def refusals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(6 * SR) / SR
    brown = np.cumsum(rng.normal(size=len(t)))
    cases = {"silence": np.zeros_like(t), "hiss at -100 dBFS": rng.normal(0, 1e-5, len(t)),
             "white noise": rng.normal(0, 1, len(t)), "brown noise": brown - brown.mean(),
             "tone 220 Hz": np.sin(2 * np.pi * 220 * t), "tone 1 kHz": np.sin(2 * np.pi * 1000 * t),
             "C major chord": sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
             "sweep": np.sin(2 * np.pi * (100 * t + 200 * t**2)), "music": melody(6, rng)}
    return {name: (wave if name in ("silence", "hiss at -100 dBFS") else 0.3 * wave / np.abs(wave).max()
                   ).astype(np.float32) for name, wave in cases.items()}


@pytest.mark.parametrize("name", list(refusals()))
def test_no_speech_in_silence_noise_tones_and_music(detector: SpeechDetector, name: str) -> None:
    found = detector(refusals()[name])
    assert not found.has_speech, (name, found)
    message = found.describe()
    assert ("silent" in message) == (name in ("silence", "hiss at -100 dBFS")), message


def test_batches_give_what_one_by_one_gives(detector: SpeechDetector, speech: np.ndarray) -> None:
    waves = [speech, speech[: SR // 2], np.concatenate([speech, speech])]
    together = detector.probabilities(waves)
    for wave, probabilities in zip(waves, together, strict=True):
        np.testing.assert_allclose(probabilities, detector.probabilities([wave])[0], atol=1e-5)
        assert len(probabilities) == -(-len(wave) // CHUNK)


def test_regions_follow_silero_hysteresis() -> None:
    chunk_seconds = CHUNK / SR
    probabilities = np.array([0.1] * 10 + [0.9] * 20 + [0.4] * 5 + [0.9] * 10 + [0.1] * 10 + [0.9] * 3 + [0.0] * 10)
    regions = regions_from(probabilities, len(probabilities) * chunk_seconds)
    # 0.4 stays above the end threshold (0.35): one region through it; the 3-chunk blip (96 ms) is too short
    assert len(regions) == 1
    start, end = regions[0]
    assert start == pytest.approx(10 * chunk_seconds - 0.03, abs=1e-3)
    assert end == pytest.approx(45 * chunk_seconds + 0.03, abs=1e-3)


def test_missing_model_falls_back_to_the_periodicity_check(monkeypatch: pytest.MonkeyPatch,
                                                           speech: np.ndarray) -> None:
    import speech2face.voice.activity.silero as silero

    monkeypatch.setattr(silero, "WEIGHTS", "no-such-file.onnx")
    fallback = SpeechDetector("cpu")
    assert fallback.model is None and "fallback" in fallback.method
    assert fallback(speech).has_speech and not fallback(np.zeros(6 * SR, np.float32)).has_speech
