"""Long recordings: read a stretch at a time wherever the answer allows it (the same answers as at once), refused
beyond --max-seconds, and memory that no longer grows with the whole pipeline's copies of a recording."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speech2face import AudioError, Speech2Face, load_audio
from speech2face.synth import recorded
from speech2face.voice import audio, diarize, speakers
from speech2face.voice.activity import SpeechDetector, detector
from speech2face.voice.audio import BLOCK_SAMPLES, CLIP_SAMPLES, SAMPLE_RATE, as_wave

# Runs a command from a small, fresh interpreter and prints its peak resident set (KB): a child forked from the
# test process would count the test process's own memory too (Linux keeps a forked mm's high-water mark at exec).
PEAK_OF = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:]); "
           "_, status, use = os.wait4(child.pid, 0); "
           "print(use.ru_maxrss); sys.exit(os.waitstatus_to_exitcode(status))")
SILENT_HOURS = 3
# 3 h of silence are read in less memory than their decoded wave alone would take (660 MiB of float32): the
# recording is never held whole
MEMORY_BOUND_MB = SILENT_HOURS * 3600 * SAMPLE_RATE * 4 / 2**20


def never_decoded_whole(expected: int) -> None:
    """Stands in for load_audio's whole-recording buffer: a test that patches it in proves nothing decoded a file
    whole."""
    raise AssertionError("the recording was decoded whole")


@pytest.fixture(scope="module")
def silent_flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 hours of digital silence, 16 kHz FLAC: a few hundred KB that decode to 173 million samples."""
    path = tmp_path_factory.mktemp("long") / "silence-3h.flac"
    block = np.zeros(600 * SAMPLE_RATE, np.int16)
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as out:
        for _ in range(SILENT_HOURS * 6):
            out.write(block)
    return path


def test_the_detector_reads_stretch_by_stretch_as_it_reads_at_once(spoken: dict[str, Path]) -> None:
    """Batched waves of different lengths, the longest several stretches long: the state carried over stretches
    gives the probabilities of one pass over the whole (float rounding apart)."""
    found = SpeechDetector("cpu")
    speech = load_audio(spoken["long"])
    waves = [np.tile(speech, 12), speech[:1000], speech]
    assert len(waves[0]) > 2 * detector.STRETCH_CHUNKS * detector.CHUNK
    whole = found.model(detector.stretch(waves, 0, -(-max(len(w) for w in waves) // detector.CHUNK))).numpy()
    for row, probabilities in enumerate(found.probabilities(waves)):
        assert len(probabilities) == -(-len(waves[row]) // detector.CHUNK)
        np.testing.assert_allclose(probabilities, whole[row, :len(probabilities)], atol=1e-5)


def test_windows_are_embedded_a_group_at_a_time_as_all_at_once(spoken: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    speech = load_audio(spoken["long"])
    windows = [speech[i * 8000:i * 8000 + 24_000] for i in range(9)]
    together = speakers.embed_windows(windows, device="cpu")
    monkeypatch.setattr(speakers, "WINDOWS_PER_PASS", 4)
    np.testing.assert_allclose(speakers.embed_windows(windows, device="cpu"), together, atol=1e-5)


def test_many_windows_are_clustered_on_a_subset(two_speakers: tuple[bytes, list[tuple[float, float, str]]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_CLUSTERED_WINDOWS, a spread subset is clustered and every window joins its nearest cluster: the
    real two-speaker sample, its 30-odd windows clustered on 16, still gives two speakers, each turn right."""
    wave = load_audio(two_speakers[0])
    reference = two_speakers[1]
    whole = diarize.diarize(wave, device="cpu")
    monkeypatch.setattr(diarize, "MAX_CLUSTERED_WINDOWS", 16)
    subset = diarize.diarize(wave, device="cpu")
    seconds = len(wave) / SAMPLE_RATE
    assert len(subset) == len(whole) == 2
    assert diarize.speech_time_accuracy(subset, reference, seconds) > 0.85


def test_a_recording_over_the_limit_is_refused_before_it_is_decoded(silent_flac: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"10800 s long, over the limit of 3600 s \(--max-seconds\)"):
        load_audio(silent_flac, limit_seconds=3600)
    with pytest.raises(AudioError, match="longer than 1 s, the limit"):
        as_wave(np.zeros(2 * SAMPLE_RATE, np.float32), limit_seconds=1)
    result = subprocess.run([sys.executable, "-m", "speech2face", "predict", str(silent_flac), "--max-seconds",
                             "3600", "-o", str(tmp_path / "faces"), "-q"], capture_output=True, text=True,
                            timeout=300)
    errors = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(errors) == 1 and "over the limit of 3600 s (--max-seconds)" in errors[0]


def test_three_hours_of_silence_are_refused_in_bounded_memory(silent_flac: Path, tmp_path: Path) -> None:
    """The whole way (decode, speech check) in a process of its own: refused as silent, its peak memory under
    the bound (it was 6.5 GB before the recording was read a stretch at a time into one buffer)."""
    result = subprocess.run([sys.executable, "-c", PEAK_OF, sys.executable, "-m", "speech2face", "predict",
                             str(silent_flac), "-o", str(tmp_path / "faces"), "-q"], capture_output=True, text=True,
                            timeout=600)
    peak = int(result.stdout.split()[-1]) / 1024
    print(f"3 h of silence: peak RSS {peak:.0f} MB")
    assert result.returncode == 1 and "no speech found: silent" in result.stderr
    assert peak < MEMORY_BOUND_MB


@pytest.fixture(scope="module")
def long_speech(spoken: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """130 s of speech as FLAC at 44.1 kHz stereo, MP3 at 22.05 kHz, and AAC inside an MP4 with video."""
    from conftest import ffmpeg

    folder = tmp_path_factory.mktemp("long-speech")
    speech = load_audio(spoken["long"])
    source = folder / "speech16.flac"
    soundfile.write(source, np.tile(speech, -(-130 * SAMPLE_RATE // len(speech)))[:130 * SAMPLE_RATE], SAMPLE_RATE)
    files = {"flac": folder / "speech44.flac", "mp3": folder / "speech.mp3", "mp4": folder / "video.mp4"}
    ffmpeg("-i", str(source), "-ar", "44100", "-ac", "2", str(files["flac"]))
    ffmpeg("-i", str(source), "-ar", "22050", "-c:a", "libmp3lame", str(files["mp3"]))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-i", str(source), "-shortest", "-c:v", "libx264",
           "-g", "50", "-c:a", "aac", "-ar", "48000", str(files["mp4"]))
    return files


@pytest.mark.parametrize("kind", ["flac", "mp3", "mp4"])
def test_a_late_cut_seeks_and_gives_the_samples_of_the_whole(long_speech: dict[str, Path], kind: str) -> None:
    """A segment 30 s or more into a file is decoded from just before it (prepare on hour-long videos): the same
    samples as cut from the whole decode, on the same 16 kHz grid (lossless and MP3 to float rounding; AAC, whose
    noise substitution restarts at the seek, correlated above 0.995), and past the end is still one line."""
    whole = load_audio(long_speech[kind])
    for offset in (30.0, 90.0, 97.3337):
        cut = load_audio(long_speech[kind], offset=offset, duration=3.0)
        start = round(offset * SAMPLE_RATE)
        assert cut.size == 3 * SAMPLE_RATE
        difference = np.abs(cut[100:-100] - whole[start + 100:start + 3 * SAMPLE_RATE - 100])
        if kind == "mp4":  # AAC's noise substitution draws from a generator the seek restarts: close, not equal
            reference = whole[start:start + 3 * SAMPLE_RATE]
            assert np.corrcoef(cut, reference)[0, 1] > 0.995 and difference.mean() < 0.03 * np.sqrt(np.mean(
                reference ** 2)), (offset, difference.mean())
        else:
            assert difference.max() < 1e-5, (offset, difference.max())
    with pytest.raises(AudioError, match=r"offset 140.00 s is past the end of the audio \(130.0"):
        load_audio(long_speech[kind], offset=140.0)


@pytest.fixture(scope="module")
def conversation() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """About 3.5 minutes (four blocks) of two real recorded speakers taking turns of 4-12 s: Allison
    (asterisk-core-sounds-en-g722) and the big fish (fillets-ng-data-cs), sources of the synthetic world; its
    reference turns."""
    by_name = {s.name: s for s in recorded.SOURCES}
    names = ("allison", "fillets-big-fish")
    pools = [recorded.held_out_recordings(by_name[name], 12.0, 6, seed=1) for name in names]
    rng = np.random.default_rng(1)
    pieces, reference, at = [], [], 0.0
    while at < 3.4 * 60:
        turn = len(pieces) // 2 % 2
        wave = pools[turn][int(rng.integers(len(pools[turn])))][:round(rng.uniform(4, 12) * SAMPLE_RATE)]
        pause = np.zeros(round(0.6 * SAMPLE_RATE), np.float32)
        reference.append((at, at + len(wave) / SAMPLE_RATE, names[turn]))
        pieces += [wave, pause]
        at += (len(wave) + len(pause)) / SAMPLE_RATE
    return np.concatenate(pieces), reference


def test_a_conversation_read_block_by_block_gives_what_the_whole_gives(
        conversation: tuple[np.ndarray, list[tuple[float, float, str]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`Speech2Face.voices` on a FLAC of four blocks, never decoded whole, against the pipeline done by hand on
    the whole wave: the detector over all of it at once, every speaker window cut from it and embedded, each
    speaker's turns joined and heard again, its windows cut: the same two speakers, turns, windows (sample for
    sample) and face features, and most of the speech time given to the real speaker."""
    wave, reference = conversation
    path = tmp_path / "conversation.flac"
    soundfile.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    whole = load_audio(path)
    assert whole.size > 3 * BLOCK_SAMPLES
    model = Speech2Face.from_pretrained("demo", device="cpu")
    activity = model.detector(whole)
    spans = diarize.windows_in(activity.regions)
    vectors = speakers.embed_windows([whole[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)] for a, b in spans],
                                     device="cpu")
    expected = diarize.speakers_from(vectors, spans, activity)

    monkeypatch.setattr(audio, "_Samples", never_decoded_whole)
    voices = model.voices(path)
    assert len(voices) == len(expected) == 2
    found = [diarize.Speaker(v.label, v.turns, v.voiced_seconds) for v in voices]
    # the reference turns hold the pauses between a speaker's utterances, which no speaker is given: 85 % here
    assert diarize.speech_time_accuracy(found, reference, whole.size / SAMPLE_RATE) > 0.8
    for voice, speaker in zip(voices, expected, strict=True):
        assert voice.turns == speaker.turns and voice.voiced_seconds == speaker.voiced_seconds
        own = np.concatenate([whole[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)] for a, b in speaker.turns])
        heard = model.detector(own)
        starts = np.linspace(0, own.size - CLIP_SAMPLES, min(8, -(-own.size // CLIP_SAMPLES))).round().astype(int)
        kept = [s for s in starts if heard.speech_in(s / SAMPLE_RATE, s / SAMPLE_RATE + 6.0) >= 0.5]
        clips = np.stack([own[s:s + CLIP_SAMPLES] for s in kept])
        np.testing.assert_array_equal(voice.clips, clips)
        np.testing.assert_allclose(model.features([voice.clips]), model.features([clips]), atol=1e-5)


def test_predicting_a_long_recording_shows_each_pass(
        conversation: tuple[np.ndarray, list[tuple[float, float, str]]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`s2f predict`'s progress (here shown at once, not after 2 s): the three passes over a conversation, each
    with the minutes it has read, the later ones out of the minutes the first counted."""
    from speech2face.predict import predict_files
    from speech2face.voice import stream

    path = tmp_path / "talk.flac"
    soundfile.write(path, conversation[0], SAMPLE_RATE, subtype="PCM_16")
    monkeypatch.setattr(stream, "PROGRESS_AFTER_SECONDS", 0.0)
    result = predict_files(Speech2Face.from_pretrained("demo", device="cpu"), [path], tmp_path / "faces",
                           progress=True)
    shown = capsys.readouterr().err
    assert len(result.written) == 1 and len(result.written[0]["images"]) == 2
    minutes = -(-len(conversation[0]) // BLOCK_SAMPLES)
    for label in ("finding speech", "telling speakers apart", "each speaker's own speech"):
        assert f"talk.flac: {label}" in shown, shown
    assert f"/{minutes} [" in shown  # the later passes know how many minutes there are


def test_a_long_talking_face_video_is_prepared_a_group_of_windows_at_a_time(
        conversation: tuple[np.ndarray, list[tuple[float, float, str]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepare --folder` on a 2.2-minute video (three blocks; a real CelebA face, still, speaking the
    conversation), read as a stream and made 4 windows at a time: the windows the detector finds on the whole
    decoded audio, each sample's audio the bytes of that window of the whole, and the same samples as when all
    windows are made at once (features to float rounding). The audio is never decoded whole."""
    from conftest import ffmpeg
    from speech2face.data import PrepareSettings, manifests, prepare, read_shard, segment
    from speech2face.data.media import encode_flac, media_duration
    from speech2face.data.photos import collection_folder

    speech = tmp_path / "speech.flac"
    soundfile.write(speech, conversation[0][:130 * SAMPLE_RATE], SAMPLE_RATE, subtype="PCM_16")
    photo = collection_folder("celeba-999") / "000002.jpg"  # a frontal face (000001 is turned)
    videos = tmp_path / "videos"
    videos.mkdir()
    video = videos / "talk.mp4"
    ffmpeg("-loop", "1", "-framerate", "2", "-i", str(photo), "-i", str(speech), "-vf", "scale=512:-2", "-c:v",
           "libx264", "-tune", "stillimage", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "130", str(video))
    whole = load_audio(video)
    assert whole.size > 2 * BLOCK_SAMPLES
    [item] = manifests.read_folder(videos)
    end = media_duration(video)  # the container's: AAC's audio runs a few ms past it, and is cut there
    pieces, _ = segment.speech_pieces(item, SpeechDetector("cpu")(whole[:round(end * SAMPLE_RATE)]), end)
    settings = PrepareSettings(shard_size=1, val=0.0, test=0.0)

    def shards(out: Path) -> dict[str, dict]:
        prepare([item], out, settings, progress=False)
        return {s["key"]: s for shard in sorted((out / "shards").glob("*.tar")) for s in read_shard(shard)}

    monkeypatch.setattr(segment, "WINDOWS_PER_GROUP", 10_000)
    at_once = shards(tmp_path / "at-once")

    monkeypatch.setattr(audio, "_Samples", never_decoded_whole)
    monkeypatch.setattr(segment, "WINDOWS_PER_GROUP", 4)
    grouped = shards(tmp_path / "grouped")
    assert len(pieces) > 12 and len(grouped) > 8, (len(pieces), len(grouped))
    assert grouped.keys() == at_once.keys() <= {key for key, _, _ in pieces}
    for key, start, end in pieces:
        if key in grouped:
            first = round(start * SAMPLE_RATE)
            assert (grouped[key]["meta"]["start"], grouped[key]["meta"]["end"]) == (round(start, 4), round(end, 4))
            assert grouped[key]["audio"] == encode_flac(whole[first:first + round((end - start) * SAMPLE_RATE)])
            assert grouped[key]["audio"] == at_once[key]["audio"]
            np.testing.assert_allclose(grouped[key]["feature"], at_once[key]["feature"], atol=1e-5)


def test_the_fallback_detector_hears_a_stream_as_it_hears_the_whole(
        conversation: tuple[np.ndarray, list[tuple[float, float, str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Silero (its weights missing), the periodicity check's frames are computed as the blocks come: the
    same regions, seconds and level as on the whole conversation, and a whole block of silence is silent."""
    from speech2face.voice.activity import silero
    from speech2face.voice.stream import Recording, read

    monkeypatch.setattr(silero, "WEIGHTS", "no-such-file.onnx")
    fallback = SpeechDetector("cpu")
    assert fallback.model is None
    wave = np.concatenate([conversation[0], np.zeros(BLOCK_SAMPLES + 777, np.float32)])
    listening = fallback.stream()
    read(Recording(wave), listening)
    whole = fallback(wave)
    assert listening.activity is not None and whole.has_speech
    assert listening.activity.regions == whole.regions and listening.activity.speech_seconds == whole.speech_seconds
    assert listening.activity.seconds == whole.seconds and listening.activity.method == whole.method
    assert listening.activity.level_dbfs == pytest.approx(whole.level_dbfs, abs=1e-9)
