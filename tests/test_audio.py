"""load_audio on real files in every format, and every kind of bad file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

import speech2face as s2f
from conftest import AUDIO_FORMATS, VIDEO_FORMATS, ffmpeg, mutations, read_wav_int16, write_wav


def reference_wave(media: dict[str, Path]) -> np.ndarray:
    """The espeak-ng recording at 16 kHz, read and resampled without the code under test."""
    samples, rate = read_wav_int16(media["espeak.wav"])
    return resample_poly(samples / 32768.0, 16_000, rate).astype(np.float32)


def envelope(wave: np.ndarray, frame: int = 320) -> np.ndarray:
    usable = wave[: wave.size // frame * frame].reshape(-1, frame)
    return np.sqrt((usable**2).mean(axis=1))


@pytest.mark.parametrize("name", [*AUDIO_FORMATS, *VIDEO_FORMATS])
def test_every_format_decodes_to_the_same_speech(media: dict[str, Path], name: str) -> None:
    reference = reference_wave(media)
    wave = s2f.load_audio(media[name])
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.min() >= -1.0 and wave.max() <= 1.0
    if name in VIDEO_FORMATS:  # the video track is at least as long as the speech (-shortest)
        assert abs(wave.size - reference.size) < 0.25 * 16_000
    else:
        assert abs(wave.size - reference.size) < 0.1 * 16_000, (wave.size, reference.size)
    n = min(wave.size, reference.size)
    # Lossy codecs shift and smear the waveform, so compare loudness envelopes (20 ms frames).
    correlation = np.corrcoef(envelope(wave[:n]), envelope(reference[:n]))[0, 1]
    assert correlation > 0.97, correlation
    # ffmpeg's mono -> stereo upmix lowers each channel by 3 dB; the mixing itself is tested below.
    gain = np.sqrt(0.5) if "stereo" in name else 1.0
    assert np.isclose(np.abs(wave[:n]).mean(), gain * np.abs(reference[:n]).mean(), rtol=0.15)


@pytest.mark.parametrize(("name", "tolerance"), [("speech_s32.wav", 1e-4), ("speech_f32.wav", 1e-4),
                                            ("speech_f64.wav", 1e-4), ("speech_u8.wav", 0.02)])
def test_integer_and_float_sample_formats_agree(media: dict[str, Path], name: str, tolerance: float) -> None:
    base = s2f.load_audio(media["speech.wav"])
    other = s2f.load_audio(media[name])
    assert other.shape == base.shape
    assert np.abs(other - base).max() < tolerance


def test_lossless_decoding_is_exact(media: dict[str, Path]) -> None:
    samples, rate = read_wav_int16(media["speech.wav"])
    native = s2f.load_audio(media["speech.wav"], sr=rate)
    np.testing.assert_allclose(native, samples / 32768.0, atol=1e-7)
    np.testing.assert_array_equal(s2f.load_audio(media["speech.flac"], sr=rate), native)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    rate = 16_000
    t = np.arange(rate) / rate
    left = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    right = np.zeros_like(left)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), rate)
    np.testing.assert_allclose(s2f.load_audio(path), left / 32768.0 / 2, atol=1e-6)


def test_resampling_removes_what_would_alias(tmp_path: Path) -> None:
    rate = 44_100
    t = np.arange(2 * rate) / rate
    # 1 kHz stays; 10 kHz is above the new Nyquist (8 kHz) and would fold to 6 kHz without a filter.
    mix = 0.4 * np.sin(2 * np.pi * 1000 * t) + 0.4 * np.sin(2 * np.pi * 10_000 * t)
    path = write_wav(tmp_path / "tones.wav", np.round(mix * 32767), rate)
    wave = s2f.load_audio(path)
    assert wave.size == 32_000
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    freqs = np.fft.rfftfreq(wave.size, 1 / 16_000)
    kept = spectrum[np.abs(freqs - 1000) < 20].max()
    folded = spectrum[np.abs(freqs - 6000) < 20].max()
    assert folded < 1e-3 * kept, folded / kept
    assert np.isclose(np.abs(wave[1000:-1000]).max(), 0.4, rtol=0.02)


def test_other_target_rates_and_rates_in(media: dict[str, Path]) -> None:
    at_8k = s2f.load_audio(media["speech_8k.wav"], sr=8000)
    assert abs(s2f.load_audio(media["speech.wav"], sr=8000).size - at_8k.size) <= 1
    assert abs(s2f.load_audio(media["speech_8k.wav"]).size - s2f.load_audio(media["speech.wav"]).size) <= 2


def test_bytes_and_file_objects(media: dict[str, Path]) -> None:
    from_path = s2f.load_audio(media["speech.m4a"])
    np.testing.assert_array_equal(s2f.load_audio(media["speech.m4a"].read_bytes()), from_path)
    with open(media["speech.m4a"], "rb") as handle:
        np.testing.assert_array_equal(s2f.load_audio(handle), from_path)
    np.testing.assert_array_equal(s2f.load_audio(io.BytesIO(media["speech.m4a"].read_bytes())), from_path)


def test_offset_and_duration_cut_sample_accurately(media: dict[str, Path]) -> None:
    whole = s2f.load_audio(media["speech.flac"])
    cut = s2f.load_audio(media["speech.flac"], offset=1.25, duration=2.0)
    assert cut.size == 32_000
    # The cut is resampled with less context at its edges; inside it must be the same samples.
    np.testing.assert_allclose(cut[100:-2000], whole[20_000 + 100:52_000 - 2000], atol=1e-4)
    with pytest.raises(s2f.AudioError, match="past the end"):
        s2f.load_audio(media["speech.flac"], offset=60.0)


@pytest.mark.parametrize(("name", "cause"), [
    ("missing.wav", "no such file"),
    ("a_directory.wav", "is a directory"),
    ("empty.wav", "file is empty"),
    ("garbage.wav", "not a readable audio or video file"),
    ("text.mp3", "not a readable audio or video file"),
    ("truncated.wav", "truncated"),
    ("truncated.mp3", "truncated"),
    ("truncated.flac", "corrupt"),
    ("truncated.ogg", "truncated"),
    ("truncated.opus", "truncated"),
    ("truncated.m4a", "not a readable"),
    ("truncated_video.mp4", "not a readable"),
    ("corrupt_speech.mp3", "corrupt"),
    ("corrupt_speech.flac", "corrupt"),
    ("silent_video.mp4", "has no audio stream"),
    ("zero_length.wav", "no audio samples"),
])
def test_bad_input_names_the_file_and_the_cause(media: dict[str, Path], name: str, cause: str) -> None:
    path = media.get(name, media["speech.wav"].parent / name)
    with pytest.raises(s2f.AudioError, match=cause) as raised:
        s2f.load_audio(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_bad_bytes_and_arguments(media: dict[str, Path]) -> None:
    with pytest.raises(s2f.AudioError, match="no data"):
        s2f.load_audio(b"")
    with pytest.raises(s2f.AudioError, match="not a readable"):
        s2f.load_audio(b"\x00" * 1000)
    with pytest.raises(ValueError, match="sample rate"):
        s2f.load_audio(media["speech.wav"], sr=0)
    with pytest.raises(ValueError, match="offset"):
        s2f.load_audio(media["speech.wav"], offset=-1.0)


CONTAINERS = {  # extension: (video codec, audio codec), as downloads and editors write them
    "mkv": ("libx264", "aac"), "webm": ("libvpx", "libopus"), "mp4": ("libx264", "aac"),
    "mov": ("libx264", "aac"), "ogg": ("libtheora", "libvorbis"), "avi": ("mpeg4", "libmp3lame"),
}
AUDIO_SECONDS = 6.4


@pytest.fixture(scope="module")
def unequal_streams(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Per container: a file whose video runs longer than its sound (8.3 s vs 6.4 s: what ffmpeg without
    -shortest and merged downloads leave) and one whose sound runs longer (video 4 s)."""
    root = tmp_path_factory.mktemp("unequal")
    files = {}
    for extension, (video, audio) in CONTAINERS.items():
        for case, video_seconds in (("longer video", 8.3), ("longer audio", 4.0)):
            path = root / f"{case.replace(' ', '_')}.{extension}"
            ffmpeg("-f", "lavfi", "-i", f"testsrc=duration={video_seconds}:size=64x64:rate=10", "-f", "lavfi",
                   "-i", f"sine=frequency=440:duration={AUDIO_SECONDS}:sample_rate=16000", "-c:v", video,
                   "-c:a", audio, "-pix_fmt", "yuv420p", str(path))
            files[(extension, case)] = path
    return files


@pytest.mark.parametrize("extension", CONTAINERS)
@pytest.mark.parametrize("case", ["longer video", "longer audio"])
def test_a_container_whose_streams_differ_in_length_is_not_refused(
        unequal_streams: dict[tuple[str, str], Path], extension: str, case: str) -> None:
    """Truncation is judged by the audio stream alone (its duration, or Matroska's per-track DURATION tag),
    never by the container's, which is the longest stream's."""
    wave = s2f.load_audio(unequal_streams[(extension, case)])
    assert abs(len(wave) / 16000 - AUDIO_SECONDS) < 0.15
    assert np.abs(wave).max() > 0.1  # the tone, decoded


@pytest.mark.parametrize("extension", CONTAINERS)
@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])
def test_a_container_whose_audio_is_cut_is_refused(unequal_streams: dict[tuple[str, str], Path], extension: str,
                                                    share: float) -> None:
    data = unequal_streams[(extension, "longer audio")].read_bytes()
    with pytest.raises(s2f.AudioError, match=r"truncated|corrupt|not a readable"):
        s2f.load_audio(data[: int(len(data) * share)])


FUZZED = ["speech.wav", "speech.flac", "speech.mp3", "speech.ogg", "speech.opus", "speech.m4a", "video.mp4",
          "video.mkv", "video.webm"]


def test_damaged_files_never_crash_or_hang(media: dict[str, Path]) -> None:
    """234 seeded mutations of nine formats: each decodes to finite float32 or raises AudioError, quickly."""
    import time

    rng = np.random.default_rng(0)
    outcomes: dict[str, int] = {"decoded": 0, "AudioError": 0}
    slowest, messages = 0.0, []
    for name in FUZZED:
        for kind, data in mutations(media[name].read_bytes(), rng):
            start = time.perf_counter()
            try:
                wave = s2f.load_audio(data)
            except s2f.AudioError as error:
                messages.append(str(error))
                outcomes["AudioError"] += 1
            else:  # any other exception fails the test: that is the point
                assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all(), (name, kind)
                outcomes["decoded"] += 1
            slowest = max(slowest, time.perf_counter() - start)
    print(f"fuzz: {outcomes}, slowest {slowest * 1000:.0f} ms")
    assert sum(outcomes.values()) == 26 * len(FUZZED)
    assert outcomes["AudioError"] > 0 and outcomes["decoded"] > 0  # both kinds of damage occur
    assert slowest < 5.0
    assert all("\n" not in m and m.startswith("<") for m in messages)  # one line, naming the input


def test_decoding_that_outlasts_its_limit_is_refused(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("speech2face.voice.audio._DECODE_BASE_SECONDS", -1.0)  # every decode is already too late
    monkeypatch.setattr("speech2face.voice.audio._DECODE_SECONDS_PER_AUDIO_SECOND", 0.0)
    with pytest.raises(s2f.AudioError, match="outlasted its time limit"):
        s2f.load_audio(media["speech.flac"])
