"""fit_length and spectrogram against an independent numpy reference written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import speech2face as s2f
from speech2face.voice import audio


def reference_spectrogram(wave: np.ndarray) -> np.ndarray:
    """The paper's front end, frame by frame, in float64 numpy: (2, T, 257)."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)  # periodic Hann
    frames = []
    t = 0
    while 160 * t + 400 <= wave.size:
        segment = np.zeros(512)
        segment[:400] = wave[160 * t:160 * t + 400] * window  # zero-padded at the END
        frames.append(np.fft.rfft(segment))
        t += 1
    spectrum = np.array(frames)
    compress = lambda x: np.sign(x) * np.abs(x) ** 0.3  # noqa: E731
    return np.stack([compress(spectrum.real), compress(spectrum.imag)])


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    tone = 0.3 * np.sin(2 * np.pi * (120 + 40 * np.sin(2 * np.pi * 3 * t)) * t)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_constants_follow_the_paper() -> None:
    settings = (s2f.SAMPLE_RATE, audio.WIN_LENGTH, audio.HOP_LENGTH, audio.N_FFT, audio.N_FREQ)
    assert settings == (16_000, 400, 160, 512, 257)
    assert s2f.CLIP_SAMPLES == 96_000 and s2f.CLIP_FRAMES == 598
    assert audio.num_frames(48_000) == 298 and audio.num_frames(399) == 0 and audio.num_frames(400) == 1


@pytest.mark.parametrize(("seconds", "frames"), [(6.0, 598), (3.0, 298), (0.5, 48)])
def test_spectrogram_matches_the_reference(seconds: float, frames: int) -> None:
    wave = speechlike(seconds)
    spec = s2f.spectrogram(torch.from_numpy(wave))
    assert spec.shape == (2, frames, 257) and spec.dtype == torch.float32 and spec.is_contiguous()
    expected = reference_spectrogram(wave.astype(np.float64))
    # |x|^0.3 magnifies float32 rounding near zero, so compare with a tolerance relative to the scale.
    np.testing.assert_allclose(spec.numpy(), expected, atol=2e-3 * np.abs(expected).max(), rtol=1e-3)


def test_spectrogram_channels_are_real_then_imaginary() -> None:
    # A cosine at bin 32 exactly (1000 Hz = 32 * 16000 / 512) has a real peak; a sine an imaginary one.
    t = np.arange(16_000) / 16_000
    cosine = torch.from_numpy(np.cos(2 * np.pi * 1000 * t).astype(np.float32))
    spec = s2f.spectrogram(cosine)
    assert torch.all(spec[0, :, 32].abs() > 5 * spec[1, :, 32].abs())
    sine = torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    spec = s2f.spectrogram(sine)
    assert torch.all(spec[1, :, 32].abs() > 5 * spec[0, :, 32].abs())


def test_batched_equals_one_by_one() -> None:
    waves = torch.from_numpy(np.stack([speechlike(6.0, seed) for seed in range(3)]))
    batch = s2f.spectrogram(waves)
    assert batch.shape == (3, 2, 598, 257)
    for i in range(3):
        torch.testing.assert_close(batch[i], s2f.spectrogram(waves[i]))


def test_float64_input_gives_float32_and_empty_batches_work() -> None:
    wave = torch.from_numpy(speechlike(1.0)).double()
    assert s2f.spectrogram(wave).dtype == torch.float32
    assert s2f.spectrogram(torch.zeros(0, 16_000)).shape == (0, 2, 98, 257)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_spectrogram_on_cuda_matches_cpu() -> None:
    waves = torch.from_numpy(np.stack([speechlike(6.0, seed) for seed in range(2)]))
    on_gpu = s2f.spectrogram(waves.cuda())
    assert on_gpu.device.type == "cuda"
    on_cpu = s2f.spectrogram(waves)
    # sgn(x)|x|^0.3 is steep near 0 (slope 0.3 |x|^-0.7): cuFFT's and pocketfft's last-bit differences on
    # near-zero bins grow there (measured on an H100: 0.007 at a value of 0.007, i.e. a raw 5e-8). So the
    # transform is compared before compression, and the compressed values away from 0.
    raw = lambda s: s.sign() * s.abs() ** (1 / audio.COMPRESSION_POWER)  # noqa: E731
    gpu_raw, cpu_raw = raw(on_gpu.cpu()), raw(on_cpu)
    assert (gpu_raw - cpu_raw).abs().max() <= 1e-6 * cpu_raw.abs().max()
    away = on_cpu.abs() > 0.05
    torch.testing.assert_close(on_gpu.cpu()[away], on_cpu[away], atol=2e-3, rtol=1e-3)


def test_spectrogram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 400"):
        s2f.spectrogram(torch.zeros(399))
    with pytest.raises(ValueError, match=r"\(N,\) or \(B, N\)"):
        s2f.spectrogram(torch.zeros(1, 2, 1000))
    with pytest.raises(TypeError):
        s2f.spectrogram(np.zeros(1000))  # type: ignore[arg-type]


def test_fit_length_repeats_short_and_crops_long() -> None:
    short = np.arange(10, dtype=np.float32)
    fitted = s2f.fit_length(short, seconds=25 / 16_000)
    np.testing.assert_array_equal(fitted, np.concatenate([short, short, short[:5]]))
    long = np.arange(200_000, dtype=np.float32)
    np.testing.assert_array_equal(s2f.fit_length(long), long[:96_000])
    np.testing.assert_array_equal(s2f.fit_length(long, start=500), long[500:96_500])
    exact = np.ones(96_000, np.float32)
    assert s2f.fit_length(exact).shape == (96_000,)
    batch = torch.arange(20.0).reshape(2, 10)
    torch.testing.assert_close(s2f.fit_length(batch, seconds=15 / 16_000), torch.cat([batch, batch[:, :5]], dim=1))
    assert s2f.fit_length(np.ones(48_000), seconds=3.0).shape == (48_000,)


def test_fit_length_rejects_bad_input() -> None:
    with pytest.raises(s2f.AudioError, match="empty"):
        s2f.fit_length(np.zeros(0))
    with pytest.raises(ValueError, match="start"):
        s2f.fit_length(np.zeros(100_000), start=5000)
    with pytest.raises(ValueError, match="positive"):
        s2f.fit_length(np.zeros(100), seconds=0)
