"""The pretrained speaker encoder (Resemblyzer's network, ported): exact against the original where it is
installed, and a speaker detector on real recordings (Debian's Asterisk prompts and Fish Fillets dialogue)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_wav
from speech2face import AudioError, ModelError
from speech2face.synth import recorded
from speech2face.voice import speakers


@pytest.fixture(scope="module")
def voices() -> dict[str, list[np.ndarray]]:
    """Two ~8 s recordings of each of four real speakers: two men, two women."""
    chosen = {"carlo": recorded.HELD_OUT[0], "menardi": recorded.HELD_OUT[1],
              "allison": recorded.SOURCES[0], "fillets-big-fish": recorded.SOURCES[3]}
    return {name: recorded.held_out_recordings(speaker, 8.0, 2, seed=1) for name, speaker in chosen.items()}


def test_the_mel_filterbank_is_librosas() -> None:
    librosa = pytest.importorskip("librosa")
    reference = librosa.filters.mel(sr=16000, n_fft=speakers.MEL_WINDOW, n_mels=speakers.MEL_BANDS)
    np.testing.assert_allclose(speakers.mel_filterbank(), reference, rtol=1e-5, atol=1e-8)


def louder(wave: np.ndarray) -> np.ndarray:
    """What our encoder does to quiet input before its front end (Resemblyzer's preprocess_wav does it too)."""
    return speakers.raise_quiet(torch.from_numpy(wave)[None])[0].numpy()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # resemblyzer imports a deprecated scipy namespace
def test_the_port_equals_resemblyzer(voices: dict[str, list[np.ndarray]]) -> None:
    """Skipped without resemblyzer's own code (its imports need librosa and webrtcvad)."""
    pytest.importorskip("librosa")
    pytest.importorskip("webrtcvad")
    from resemblyzer import VoiceEncoder

    original = VoiceEncoder(device="cpu", verbose=False)
    waves = [wave for pair in voices.values() for wave in pair]
    ours = speakers.embed_windows(waves, device="cpu")
    theirs = np.stack([original.embed_utterance(louder(w)) for w in waves])
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_the_same_speaker_scores_above_different_speakers(voices: dict[str, list[np.ndarray]]) -> None:
    names = [name for name, pair in voices.items() for _ in pair]
    vectors = speakers.embed_windows([wave for pair in voices.values() for wave in pair], device="cpu")
    assert vectors.shape == (8, speakers.EMBEDDING)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    same = np.equal.outer(names, names) & ~np.eye(len(names), dtype=bool)
    different = ~np.equal.outer(names, names)
    assert similarity[same].min() > similarity[different].max(), (similarity[same], similarity[different].max())


def test_paths_bytes_and_waves_give_the_same_vector(voices: dict[str, list[np.ndarray]], tmp_path: Path) -> None:
    wave = voices["menardi"][0]
    path = write_wav(tmp_path / "menardi.wav", np.round(wave * 32767).astype(np.int16), 16000)
    from_wave = speakers.embed(wave, device="cpu")
    for source in (path, str(path), path.read_bytes()):
        assert float(speakers.embed(source, device="cpu") @ from_wave) > 0.999
    # batching does not change a vector
    one_by_one = np.stack([speakers.embed(w, device="cpu") for w in voices["carlo"]])
    np.testing.assert_allclose(speakers.embed_windows(voices["carlo"], device="cpu"), one_by_one, atol=1e-5)


def test_bad_input_and_missing_weights_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AudioError, match="1-D"):
        speakers.embed(np.zeros((2, 16000), np.float32))
    with pytest.raises(AudioError, match="finite"):
        speakers.embed(np.full(16000, np.nan, np.float32))
    with pytest.raises(AudioError):
        speakers.embed(tmp_path / "missing.wav")
    assert speakers.embed_windows([]).shape == (0, speakers.EMBEDDING)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "resemblyzer" else real_find_spec(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps resemblyzer"):
        speakers.SpeakerEncoder.pretrained("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(voices: dict[str, list[np.ndarray]]) -> None:
    waves = voices["allison"]
    on_gpu = speakers.embed_windows(waves, device="cuda")
    on_cpu = speakers.embed_windows(waves, device="cpu")
    assert float((on_gpu * on_cpu).sum(axis=1).min()) > 0.9999
