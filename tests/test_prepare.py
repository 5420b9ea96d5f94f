"""`prepare` on real videos on disk: a synthetic world, damaged copies of it, every input layout."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import speech2face as s2f
from conftest import ffmpeg, mutations
from speech2face.cli import main
from speech2face.data import PrepareSettings, manifests, prepare, read_shard, split_of
from speech2face.data.segment import windows
from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world
from speech2face.synth.attributes import sample_identity
from speech2face.synth.portraits import frame_transforms, load_bases, render_frames, render_identity
from speech2face.synth.speech import VoiceBank, clip_text
from speech2face.synth.video import write_clip

SETTINGS = PrepareSettings(shard_size=3, val=0.25, test=0.25)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = WorldSettings(identities=4, clips=2, seed=3, faces="portraits", speakers="recorded")
    return make_world(tmp_path_factory.mktemp("world") / "w", settings, workers=2, progress=False)


def samples_of(out: Path) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        for sample in read_shard(shard):
            assert sample["key"] not in found, f"{sample['key']} twice"
            found[sample["key"]] = sample | {"shard": shard.name}
    return found


def failures_of(out: Path) -> dict[str, str]:
    lines = (out / "failures.jsonl").read_text().splitlines()
    return {json.loads(line)["key"]: json.loads(line)["reason"] for line in lines}


def synth_clip(path: Path, seconds_of_text: int, index: int = 0, frame_hook=None, wave_hook=None) -> None:
    """A talking-face mp4 made with the synth parts (optionally with altered frames or sound)."""
    bases = {base.name: base for base in load_bases()}
    identity = sample_identity(11, index, 1.0, [base.info for base in bases.values()])
    portrait, points = render_identity(bases, identity.shape, identity.look)
    with VoiceBank() as bank:
        bank.add("x", identity.voice)
        wave = np.concatenate([bank.say("x", identity.voice, clip_text(np.random.default_rng(i)))
                               for i in range(seconds_of_text)])
    wave = wave_hook(wave) if wave_hook else wave
    frames = int(np.ceil(len(wave) / 16000 * 25)) + 1
    video = render_frames(portrait, frame_transforms(points, portrait.shape[:2], identity.look, frames, 256,
                                                     np.random.default_rng(0)), 256)
    write_clip(path, frame_hook(video) if frame_hook else video, wave)


def test_a_synthetic_world_becomes_shards_split_by_speaker(world: Path, tmp_path: Path) -> None:
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    summary = prepare(segments, tmp_path / "out", SETTINGS, progress=False)
    assert summary["segments_ok"] == summary["samples"] == 8 and summary["failed"] == {}
    samples = samples_of(tmp_path / "out")
    assert len(samples) == 8
    splits = json.loads((tmp_path / "out" / "splits.json").read_text())["speakers"]
    for sample in samples.values():
        meta = sample["meta"]
        assert sample["shard"].startswith(splits[meta["speaker"]] + "-")  # a speaker lives in one split
        assert sample["face"].shape == (224, 224, 3) and sample["landmarks"].shape == (68, 2)
        assert sample["feature"].shape == (128,) and sample["feature"].dtype == np.float32
        assert meta["encoder"] == "dlib-torch" and len(meta["frames_used"]) >= 2
        # the audio is the exact segment: sample-accurate against the source
        wave = s2f.load_audio(sample["audio"])
        source = s2f.load_audio(world / "videos" / meta["source"], offset=meta["start"],
                                duration=meta["end"] - meta["start"])
        assert abs(len(wave) - len(source)) <= 1 and np.abs(wave[:len(source)] - source[:len(wave)]).max() < 1e-3
        # the landmarks sit on the crop's eyes, where the canonical template puts them
        assert 60 < sample["landmarks"][36:48, 1].mean() < 120
    # features agree with embedding the stored crop (mean over frames stays close to one frame's)
    one = next(iter(samples.values()))
    crop_feature = s2f.faces.get_encoder("dlib-torch", device="cpu").embed(one["face"][None])[0]
    assert np.linalg.norm(crop_feature - one["feature"]) < 0.2


def test_split_is_by_speaker_and_deterministic() -> None:
    speakers = [f"speaker{i}" for i in range(2000)]
    split = [split_of(s, 0.1, 0.1) for s in speakers]
    assert split == [split_of(s, 0.1, 0.1) for s in speakers]
    counts = Counter(split)
    assert 0.08 < counts["val"] / 2000 < 0.12 and 0.08 < counts["test"] / 2000 < 0.12
    assert [split_of(s, 0.1, 0.1, seed=1) for s in speakers] != split


def test_long_segments_become_6_second_windows() -> None:
    assert windows(0, 13.0) == [(0, 6.0), (6.0, 12.0)]  # the 1 s remainder is dropped
    assert windows(2, 17.5) == [(2, 8.0), (8.0, 14.0), (14.0, 17.5)]
    assert windows(0, 2.5) == [(0, 2.5)]


@pytest.fixture(scope="module")
def damaged(world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An AVSpeech CSV over good, damaged and odd videos, and rows that cannot be read."""
    folder = tmp_path_factory.mktemp("damaged")
    videos = folder / "videos"
    videos.mkdir()
    good = world / "videos" / "syn00000_00.mp4"
    data = good.read_bytes()
    shutil.copy(good, videos / "good.mp4")
    (videos / "truncated.mp4").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 3: 2 * len(data) // 3] = random.Random(0).randbytes(len(data) // 3)
    (videos / "corrupt.mp4").write_bytes(bytes(corrupt))
    (videos / "garbage.mp4").write_bytes(b"this is not a video" * 100)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(good), "-an", "-c", "copy",
                    str(videos / "silent.mp4")], check=True)
    synth_clip(videos / "noface.mp4", 1, frame_hook=lambda v: np.full_like(v, 90))
    synth_clip(videos / "twofaces.mp4", 1, frame_hook=lambda v: np.concatenate([v, v[:, :, ::-1]], axis=2))
    synth_clip(videos / "long.mp4", 3)  # ~13-15 s of speech -> two or three windows
    long_seconds = s2f.data.media.media_duration(videos / "long.mp4")
    rows = [
        "good,0.5,3.5,0.5,0.47", "truncated,0.0,4.0,0.5,0.47", "corrupt,0.0,4.5,0.5,0.47",
        "garbage,0,2,0.5,0.5", "silent,0.0,3.0,0.5,0.47", "noface,0.0,2.0,0.5,0.5",
        "twofaces,0.0,2.0,0.25,0.47", "twofaces,0.2,2.2,0.5,0.47", f"long,0.0,{long_seconds - 0.1:.3f},0.5,0.47",
        "good,30.0,34.0,0.5,0.5", "missing,0.0,3.0,0.5,0.5",
        "good,1,2", "good,one,2,0.5,0.5", "good,1,2,1.5,0.5", "good,3,1,0.5,0.5",
    ]
    csv_path = folder / "avspeech.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path, videos


def test_every_bad_item_is_recorded_with_a_reason_and_the_good_ones_kept(damaged: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    csv_path, videos = damaged
    segments = manifests.read_avspeech(csv_path, videos)
    summary = prepare(segments, tmp_path / "out", SETTINGS, progress=False)
    samples = samples_of(tmp_path / "out")
    failed = failures_of(tmp_path / "out")
    assert "good_00000500" in samples
    assert "twofaces_00000000" in samples  # the point picks the left face of two
    assert sum(key.startswith("long_") for key in samples) >= 2  # 6 s windows
    assert max(m["meta"]["end"] - m["meta"]["start"] for m in samples.values()) <= 6.0 + 1e-6
    assert failed["truncated_00000000"] in ("truncated", "bad-audio", "bad-video")
    assert failed["corrupt_00000000"] in ("bad-audio", "bad-video", "truncated")
    assert failed["garbage_00000000"] == "bad-video"
    assert failed["silent_00000000"] == "no-audio"
    assert failed["noface_00000000"] == "no-face"
    assert failed["twofaces_00000200"] in ("ambiguous-face", "no-face-near-point")
    assert failed["good_00030000"] == "past-end"
    assert failed["missing_00000000"] == "missing-file"
    assert Counter(failed.values())["bad-row"] == 4
    assert summary["segments"] == len(segments) == 15
    assert summary["segments_ok"] + sum(1 for k in failed if not k.startswith("long_")) == 15
    assert set(samples).isdisjoint(failed)


def test_a_fuzzed_corpus_is_recorded_failure_by_failure_and_loses_nothing_else(world: Path, tmp_path: Path) -> None:
    """A talking-face clip as mp4, mkv and webm, each damaged 9 ways (byte flips, cuts, overwritten headers;
    the audio fuzz test's mutations), beside two intact clips (one too short for its row): every damaged one
    is a recorded failure or valid samples, the run finishes, and the intact clips give what a run without
    the damage gives."""
    videos = tmp_path / "videos"
    videos.mkdir()
    source = world / "videos" / "syn00001_00.mp4"
    ffmpeg("-i", str(source), "-c", "copy", str(tmp_path / "clip.mkv"))
    ffmpeg("-i", str(source), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus",
           str(tmp_path / "clip.webm"))
    rng = np.random.default_rng(7)
    rows, damaged = [], []
    for container, path in (("mp4", source), ("mkv", tmp_path / "clip.mkv"), ("webm", tmp_path / "clip.webm")):
        for index, (_, data) in enumerate(mutations(path.read_bytes(), rng)[::3]):
            name = f"fuzz_{container}_{index}"
            (videos / f"{name}.{container}").write_bytes(data)
            rows.append(f"{name},0.5,3.5,0.5,0.47")
            damaged.append(f"{name}_00000500")
    for name in ("syn00000_00", "syn00002_00"):
        shutil.copy(world / "videos" / f"{name}.mp4", videos / f"{name}.mp4")
    intact = ["syn00000_00,0.5,3.5,0.5,0.47", "syn00002_00,0.5,3.5,0.5,0.47"]
    (tmp_path / "fuzz.csv").write_text("\n".join(rows + intact) + "\n")
    (tmp_path / "clean.csv").write_text("\n".join(intact) + "\n")
    summary = prepare(manifests.read_avspeech(tmp_path / "fuzz.csv", videos), tmp_path / "out", SETTINGS,
                      progress=False)
    prepare(manifests.read_avspeech(tmp_path / "clean.csv", videos), tmp_path / "clean", SETTINGS, progress=False)
    samples, failed, clean = samples_of(tmp_path / "out"), failures_of(tmp_path / "out"), samples_of(tmp_path / "clean")
    print(f"fuzzed prepare: {len(damaged)} damaged inputs, failures {Counter(failed.values())}, "
          f"{sum(k in samples for k in damaged)} still gave a sample")
    assert summary["segments"] == len(rows) + 2 and len(failed) >= len(damaged) // 2
    assert all((key in failed) != (key in samples) for key in damaged)
    assert all(reason in ("bad-video", "bad-audio", "truncated", "no-audio", "no-face", "no-speech", "past-end")
               for reason in failed.values()), failed
    for key in damaged:
        if key in samples:
            assert np.isfinite(samples[key]["feature"]).all()
    with (world / "clips.csv").open() as handle:  # an intact clip shorter than the segment's end is past-end
        seconds = {row["ytid"]: float(row["seconds"]) for row in csv.DictReader(handle)}
    long_enough = {f"{ytid}_00000500" for ytid in ("syn00000_00", "syn00002_00") if seconds[ytid] >= 3.5}
    assert long_enough and set(clean) == long_enough and set(clean) <= set(samples)
    short = {f"{ytid}_00000500": "past-end" for ytid in ("syn00000_00", "syn00002_00") if seconds[ytid] < 3.5}
    assert failures_of(tmp_path / "clean") == short == {
        key: reason for key, reason in failed.items() if key.startswith("syn")}
    for key, sample in clean.items():
        assert samples[key]["audio"] == sample["audio"] and np.array_equal(samples[key]["feature"], sample["feature"])


def test_speech_decides_what_becomes_a_sample(tmp_path: Path) -> None:
    """A talking face whose sound is a tone or music is `no-speech`; a whole file (--folder) is cut where the
    detector hears speech, not from its first second."""
    from speech2face.data.segment import MIN_SECONDS

    videos = tmp_path / "videos"
    videos.mkdir()
    t = np.arange(4 * 16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    chord = (0.1 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))).astype(np.float32)
    synth_clip(videos / "tone.mp4", 1, wave_hook=lambda _: tone)
    synth_clip(videos / "chord.mp4", 1, wave_hook=lambda _: chord)
    silence = np.zeros(4 * 16_000, np.float32)
    speech_seconds: list[float] = []

    def padded(wave: np.ndarray) -> np.ndarray:
        speech_seconds.append(len(wave) / 16_000)
        return np.concatenate([silence, wave, silence])

    synth_clip(videos / "quiet_start.mp4", 1, wave_hook=padded)
    csv_path = tmp_path / "avspeech.csv"
    csv_path.write_text("tone,0.0,3.5,0.5,0.47\nchord,0.0,3.5,0.5,0.47\n")
    prepare(manifests.read_avspeech(csv_path, videos), tmp_path / "out", SETTINGS, progress=False)
    failed = failures_of(tmp_path / "out")
    assert failed == {"tone_00000000": "no-speech", "chord_00000000": "no-speech"}
    segments = [s for s in manifests.read_folder(videos, speaker_from="file") if s.speaker == "quiet"]
    prepare(segments, tmp_path / "folder", SETTINGS, progress=False)
    samples = samples_of(tmp_path / "folder")
    assert samples, failures_of(tmp_path / "folder")
    for sample in samples.values():  # inside the speech, give or take the detector's padding and a chunk
        meta = sample["meta"]
        assert meta["start"] > 4.0 - 0.2 and meta["end"] < 4.0 + speech_seconds[0] + 0.3, meta
        assert meta["end"] - meta["start"] >= MIN_SECONDS


def test_other_layouts(world: Path, tmp_path: Path) -> None:
    vox = tmp_path / "vox"
    for video in sorted((world / "videos").glob("*.mp4")):
        speaker, clip = video.stem.split("_")
        target = vox / f"id{speaker[3:]}" / f"video{clip}" / "00001.mp4"
        target.parent.mkdir(parents=True)
        shutil.copy(video, target)
    segments = manifests.read_voxceleb2(vox)
    assert len(segments) == 8 and {s.speaker for s in segments} == {"id00000", "id00001", "id00002", "id00003"}
    folder = manifests.read_folder(world / "videos", speaker_from="file")
    assert {s.speaker for s in folder} == {"syn00000", "syn00001", "syn00002", "syn00003"}

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    import av
    from PIL import Image

    rows = ["audio,image,speaker"]
    for video in sorted((world / "videos").glob("*_00.mp4")):
        wave = s2f.load_audio(video)
        audio_path = pairs / f"{video.stem}.flac"
        audio_path.write_bytes(s2f.data.media.encode_flac(wave))
        with av.open(str(video)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        Image.fromarray(frame).save(pairs / f"{video.stem}.jpg")
        rows.append(f"{video.stem}.flac,{video.stem}.jpg,{video.stem.split('_')[0]}")
    rows.append("missing.flac,missing.jpg,nobody")
    rows.append("only-two,columns")
    (pairs / "pairs.csv").write_text("\n".join(rows) + "\n")
    segments = manifests.read_pairs(pairs / "pairs.csv")
    summary = prepare(segments, tmp_path / "out", SETTINGS, progress=False)
    assert summary["samples"] == 4 and summary["failed"] == {"missing-file": 1, "bad-row": 1}
    assert all(s["meta"]["image"].endswith(".jpg") for s in samples_of(tmp_path / "out").values())


def test_nodes_split_the_work_without_overlap_and_reruns_skip(world: Path, tmp_path: Path) -> None:
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, tmp_path / "one", SETTINGS, progress=False)
    for node in (0, 1):
        prepare(segments, tmp_path / "two", SETTINGS, shard_id=node, num_shards=2, progress=False)
    single, split = samples_of(tmp_path / "one"), samples_of(tmp_path / "two")  # samples_of asserts no repeats
    assert set(single) == set(split)
    for key in single:
        np.testing.assert_array_equal(single[key]["feature"], split[key]["feature"])
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "one" / "shards").glob("*.tar")}
    start = time.perf_counter()
    summary = prepare(segments, tmp_path / "one", SETTINGS, progress=False)
    assert time.perf_counter() - start < 2.0 and summary["samples"] == 8
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "one" / "shards").glob("*.tar")}
    with pytest.raises(s2f.DataError, match="other settings"):
        prepare(segments, tmp_path / "one", PrepareSettings(shard_size=5), progress=False)
    with pytest.raises(s2f.DataError, match="shard-id"):
        prepare(segments, tmp_path / "three", SETTINGS, shard_id=2, num_shards=2, progress=False)


@pytest.mark.slow
def test_killed_runs_resume_to_every_good_segment_exactly_once(world: Path, damaged: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    csv_path, videos = damaged
    rows = (world / "avspeech.csv").read_text() + csv_path.read_text()
    for video in list((world / "videos").glob("*.mp4")):
        shutil.copy(video, videos / video.name)
    both = tmp_path / "all.csv"
    both.write_text(rows)
    command = [sys.executable, "-m", "speech2face", "prepare", "--avspeech", str(both), "--videos", str(videos),
               "--shard-size", "2", "-q", "--workers", "2"]
    reference = tmp_path / "reference"
    start = time.perf_counter()
    assert subprocess.run([*command, "--out", str(reference)], capture_output=True).returncode == 0
    full_run = time.perf_counter() - start
    out = tmp_path / "killed"
    timer = random.Random(0)
    kills, shards_seen = 0, []

    def finished_shards() -> int:
        return len(list((out / "shards").glob("*.stats.json")))

    for _ in range(4):  # each run is killed once it has finished a shard of its own, mid-way through the next
        before = finished_shards()
        process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.perf_counter() + 2 * full_run
        while process.poll() is None and finished_shards() == before and time.perf_counter() < deadline:
            time.sleep(0.05)
        time.sleep(timer.uniform(0.0, 0.1) * full_run)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the workers too, mid-shard
            kills += 1
        process.wait()
        shards_seen.append(finished_shards())
    assert kills >= 2 and shards_seen[0] < len(list((reference / "shards").glob("*.stats.json")))
    assert subprocess.run([*command, "--out", str(out)], capture_output=True).returncode == 0
    expected, got = samples_of(reference), samples_of(out)
    assert set(got) == set(expected) and len(expected) > 10
    assert failures_of(out) == failures_of(reference)
    for key in expected:
        np.testing.assert_allclose(got[key]["feature"], expected[key]["feature"], atol=1e-5)
    assert not list((out / "shards").glob(".*.tmp"))


def test_cli(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["prepare", "--avspeech", str(world / "avspeech.csv"), "--videos", str(world / "videos"),
                 "--out", str(out), "-q", "--shard-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "8 of 8 segments ok -> 8 samples" in printed
    assert {s["meta"]["speaker"] for s in samples_of(out).values()} == {f"syn0000{i}" for i in range(4)}
    assert main(["prepare", "--out", str(tmp_path / "x")]) == 2
    assert "give exactly one input" in capsys.readouterr().err
    assert main(["prepare", "--avspeech", str(tmp_path / "none.csv"), "--videos", str(tmp_path),
                 "--out", str(tmp_path / "y")]) == 2
    assert "no such CSV file" in capsys.readouterr().err
