"""Speech2Face end to end on real recordings (espeak-ng), a real (tiny) model, real files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from speech2face import load_audio
from speech2face.cli import main
from speech2face.errors import AudioError, ModelError
from speech2face.pipeline import WINDOWS_MAX, Speech2Face
from speech2face.voice.activity import speech_activity


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Speech2Face:
    return Speech2Face.from_pretrained(tiny_model, device="cpu")


def test_speech_activity_tells_speech_from_silence_and_noise(spoken: dict[str, Path]) -> None:
    rng = np.random.default_rng(0)
    speech = load_audio(spoken["short"])
    assert speech_activity(speech).has_speech
    assert speech_activity(speech + rng.normal(0, 0.005, len(speech)).astype(np.float32)).has_speech
    brown = np.cumsum(rng.normal(size=96_000))
    for noise in (np.zeros(96_000), rng.normal(0, 0.1, 96_000), rng.normal(0, 1e-5, 96_000),
                  0.5 * (brown - brown.mean()) / np.abs(brown - brown.mean()).max()):
        assert not speech_activity(noise.astype(np.float32)).has_speech


def test_tones_and_music_get_no_face(model: Speech2Face) -> None:
    t = np.arange(96_000) / 16_000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    for wave in (np.sin(2 * np.pi * 440 * t), chord):
        with pytest.raises(AudioError, match=r"no speech found: .* not voiced as speech"):
            model.predict((0.3 * wave / np.abs(wave).max()).astype(np.float32))


def test_predict_from_a_path_bytes_or_array_gives_the_same_face(model: Speech2Face, spoken: dict[str, Path]) -> None:
    by_path = model.predict(spoken["short"])
    size = model.decoder.config.image_size
    assert by_path.image.size == (size, size) and by_path.image.mode == "RGB"
    assert by_path.landmarks.shape == (68, 2) and (by_path.landmarks > 0).all() and (by_path.landmarks < size).all()
    assert by_path.feature.shape == (model.voice.config.output_dim,) and by_path.windows == 1
    assert "SYNTHETIC" in by_path.model
    for other in (model.predict(spoken["short"].read_bytes()), model.predict(load_audio(spoken["short"]))):
        np.testing.assert_allclose(other.feature, by_path.feature, rtol=1e-5, atol=1e-6)
        assert np.array_equal(np.asarray(other.image), np.asarray(by_path.image))


def test_a_long_recording_averages_its_windows(model: Speech2Face, spoken: dict[str, Path]) -> None:
    wave = load_audio(spoken["long"])
    clips, _ = model.clips(wave)
    assert len(clips) == min(WINDOWS_MAX, math.ceil(len(wave) / 96_000)) >= 3
    np.testing.assert_array_equal(clips[0], wave[:96_000])  # first window at the start,
    np.testing.assert_array_equal(clips[-1], wave[-96_000:])  # the last one at the end
    each = model.features([window[None] for window in clips])
    np.testing.assert_allclose(model.predict(wave).feature, each.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_predict_batch_matches_one_by_one(model: Speech2Face, spoken: dict[str, Path]) -> None:
    batch = model.predict_batch([spoken["short"], spoken["long"]])
    for prediction, source in zip(batch, (spoken["short"], spoken["long"]), strict=True):
        np.testing.assert_allclose(prediction.feature, model.predict(source).feature, rtol=1e-4, atol=1e-5)


def test_silence_noise_and_garbage_are_refused(model: Speech2Face, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no speech found: silent"):
        model.predict(np.zeros(48_000, np.float32))
    with pytest.raises(AudioError, match="not voiced"):
        model.predict(np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32))
    with pytest.raises(AudioError):
        model.predict(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="1-D"):
        model.predict(np.zeros((2, 100), np.float32))


def test_from_pretrained_reads_a_run_a_model_folder_or_refuses(tiny_model: Path, tmp_path: Path) -> None:
    import speech2face as s2f

    assert s2f.Speech2Face is Speech2Face  # the documented spelling
    run = Speech2Face.from_pretrained(tiny_model.parent / "voice", device="cpu")  # a `s2f train` run
    assert run.card.synthetic and run.card.face_encoder == "dlib-torch"
    card = json.loads((tiny_model / "speech2face.json").read_text())
    assert card["synthetic"] is True and card["name"] == "tiny"
    with pytest.raises(ModelError, match="not a speech2face model"):
        Speech2Face.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="no such model folder"):
        Speech2Face.from_pretrained(tmp_path / "missing")
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        Speech2Face.from_pretrained("nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "decoder" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        Speech2Face.from_pretrained(broken)


def test_cli_predict_draws_the_good_inputs_and_names_the_bad(tiny_model: Path, spoken: dict[str, Path],
                                                             prepared: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    out = tmp_path / "faces"
    code = main(["predict", str(spoken["short"]), str(bad), str(spoken["long"]), "--model", str(tiny_model),
                 "-o", str(out), "--gallery", str(prepared), "--nearest", "3", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert len(captured.err.strip().splitlines()) == 1 and "bad.wav" in captured.err and "Traceback" not in captured.err
    assert "SYNTHETIC" in captured.out
    for name in ("short", "long"):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["synthetic"] is True and len(record["landmarks"]) == 68 and len(record["nearest"]) == 3
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.nearest.png").stat().st_size > 0
    assert not (out / "bad.png").exists()
    assert main(["predict", str(spoken["short"]), "--model", str(tiny_model), "-o", str(out), "-q"]) == 0


def test_two_speakers_get_a_face_each_from_their_own_speech(
        model: Speech2Face, two_speakers: tuple[bytes, list[tuple[float, float, str]]]) -> None:
    """pyannote.audio's real two-speaker sample: two faces, each what the model draws from that speaker's turns
    alone; the main one speaks most; one speaker forced gives the whole recording's single face."""
    wave = load_audio(two_speakers[0])
    found = model.predict(wave)
    assert [p.label for p in found.speakers] == ["speaker1", "speaker2"]
    assert found.voiced_seconds == max(p.voiced_seconds for p in found.speakers)
    for speaker in found.speakers:
        own = np.concatenate([wave[round(a * 16000):round(b * 16000)] for a, b in speaker.turns])
        np.testing.assert_allclose(speaker.feature, model.predict(own, speakers=1).feature, rtol=1e-4, atol=1e-5)
    assert not np.array_equal(found.speakers[0].feature, found.speakers[1].feature)  # (the tiny model varies little)
    whole = model.predict(wave, speakers=1)
    assert len(whole.speakers) == 1 and np.array_equal(whole.speakers[0].feature, whole.feature)
    np.testing.assert_allclose(whole.feature, model.predict_batch([wave])[0].feature, rtol=1e-4, atol=1e-5)
    assert len(model.predict(wave, speakers=3).speakers) == 3
    with pytest.raises(ValueError, match="1 or more"):
        model.predict(wave, speakers=0)


def test_cli_predict_writes_one_face_per_speaker(tiny_model: Path, prepared: Path, tmp_path: Path,
                                                 two_speakers: tuple[bytes, list[tuple[float, float, str]]],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    talk = tmp_path / "talk.wav"
    talk.write_bytes(two_speakers[0])
    out = tmp_path / "faces"
    assert main(["predict", str(talk), "--model", str(tiny_model), "-o", str(out), "--gallery", str(prepared),
                 "--nearest", "2", "-q"]) == 0
    assert "talk.wav: 2 speakers" in capsys.readouterr().out
    record = json.loads((out / "talk.json").read_text())
    assert [s["label"] for s in record["speakers"]] == ["speaker1", "speaker2"]
    for speaker in record["speakers"]:
        assert speaker["image"] == f"talk.{speaker['label']}.png" and (out / speaker["image"]).stat().st_size > 0
        assert (out / f"talk.{speaker['label']}.nearest.png").is_file() and len(speaker["nearest"]) == 2
        assert speaker["voiced_seconds"] > 3 and all(a < b for a, b in speaker["turns"])
    assert record["image"] in {s["image"] for s in record["speakers"]} and not (out / "talk.png").exists()
    assert main(["predict", str(talk), "--model", str(tiny_model), "-o", str(tmp_path / "one"), "--one-speaker",
                 "-q"]) == 0
    assert len(json.loads((tmp_path / "one" / "talk.json").read_text())["speakers"]) == 1
    assert (tmp_path / "one" / "talk.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(talk), "--speakers", "0"])
    assert exit_info.value.code == 2 and "must be 1 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(talk), "--speakers", "2", "--one-speaker"])


def test_one_voice_is_one_speaker(model: Speech2Face, spoken: dict[str, Path]) -> None:
    for name in ("short", "long"):
        prediction = model.predict(spoken[name])
        assert [p.label for p in prediction.speakers] == ["speaker1"] and prediction.turns
