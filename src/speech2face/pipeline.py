"""`Speech2Face`: a trained voice encoder and face decoder, from any recording to a face.

    model = Speech2Face.from_pretrained("demo")        # a registered name, or a folder
    prediction = model.predict("voice.wav")             # a path, a 16 kHz float array, or a file's bytes
    prediction.image.save("face.png")
    for speaker in prediction.speakers:                  # one face per speaker, each from its own speech only
        speaker.label, speaker.turns, speaker.image

The way through: the recording read in 60 s blocks (`voice/stream.py`; never held whole, so an hour costs the
memory a minute does) -> speech check -> 6 s windows -> spectrogram -> voice encoder -> one feature -> face
decoder -> image + landmarks.

Windows: a recording up to 6 s is repeated to 6 s (the paper's input length). A longer one is read as
WINDOWS_MAX 6 s windows at most, spread evenly from its start to its end (consecutive windows overlap only
when the recording is shorter than WINDOWS_MAX x 6 s); windows with under 0.5 s of speech (the detector's
regions) are dropped, and the features of the others are averaged (their mean, before the decoder).
Silence, noise, tones or music -> AudioError, never a face.

Speakers: `predict` first tells the speakers apart (`diarize`: the pretrained speaker encoder over 1.5 s
windows of speech, clustered). One speaker: the whole recording as above. Several: each speaker's turns are
joined and read as above, so each face comes from one voice; the returned Prediction is the speaker with
the most speech, and `.speakers` holds everyone's. `speakers=N` forces N; `speakers=1` reads the whole
recording as one voice.

A model folder (`save_pretrained`; its format: `model_folder.py`) holds `speech2face.json` (the model
card: name, whether it was trained on synthetic data, its evaluation), `voice/` and `decoder/` (each
config.json + model.safetensors). `from_pretrained` also takes a `s2f train` run folder (its decoder named
in training.json) or a `s2f demo` output folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .devices import pick_device
from .errors import AudioError, ModelError
from .images import to_uint8
from .model_folder import DECODER_DIR, VOICE_DIR, ModelCard, locate
from .models import FaceDecoder, load_voice_encoder
from .models.voice_encoder import encode_waves
from .registry import resolve
from .voice import audio
from .voice.activity import Activity, SpeechDetector
from .voice.diarize import speakers_from, turns_json, window_reader, windows_in
from .voice.speakers import WindowEmbedder
from .voice.stream import Blocks, Collect, Cutter, Recording, Span, Tee, read, sample_range

WINDOWS_MAX = 8
MIN_WINDOW_SPEECH_SECONDS = 0.5  # a 6 s window with less speech than this is skipped
# A face needs this much speech per speaker (the paper read 6 s clips): below it a recording, or one of its
# speakers, gets no face. Music, animals and noise that fool the detector for a moment stay under it.
MIN_SPEECH_SECONDS = 2.0
# The longest recording read (refused on its declared length before decoding where the file states one): generous,
# but a file of a few MB that decodes to days of audio stops here
MAX_RECORDING_SECONDS = 6 * 3600.0
AudioInput = str | os.PathLike | bytes | np.ndarray


@dataclass
class Voice:
    """One speaker's speech in a recording, cut into the model's windows."""

    clips: np.ndarray  # (W, 96000)
    voiced_seconds: float
    label: str = "speaker1"
    turns: tuple[tuple[float, float], ...] = ()  # (start, end) in seconds of the recording
    speech: dict[str, Any] = field(default_factory=dict)  # the detector's evidence on the whole recording


@dataclass
class Prediction:
    """A face from a voice. `landmarks` in pixels of `image`; `feature` the predicted face feature; `label` and
    `turns` say whose voice and when; `speakers` (from `predict`) every speaker's Prediction, first heard first."""

    image: Any  # PIL.Image.Image, RGB
    feature: np.ndarray  # (D,)
    landmarks: np.ndarray  # (68, 2)
    windows: int  # 6 s windows averaged
    voiced_seconds: float
    model: str
    label: str = "speaker1"
    turns: tuple[tuple[float, float], ...] = ()
    speakers: list[Prediction] = field(default_factory=list)
    speech: dict[str, Any] = field(default_factory=dict)  # the detector's evidence on the whole recording

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "label": self.label, "windows": self.windows,
                "voiced_seconds": round(self.voiced_seconds, 3), "turns": turns_json(self.turns),
                "speech": self.speech, "feature": self.feature.round(6).tolist(),
                "landmarks": self.landmarks.round(3).tolist()}


def window_ranges(samples: int) -> list[tuple[int, int]]:
    """The sample ranges of the 6 s windows a wave of `samples` samples is read by: the whole of it up to 6 s
    (repeated to 6 s by `SpeechWindows.clips`), else up to WINDOWS_MAX spread evenly from its start to its end."""
    if samples <= audio.CLIP_SAMPLES:
        return [(0, samples)]
    count = min(WINDOWS_MAX, math.ceil(samples / audio.CLIP_SAMPLES))
    starts = np.linspace(0, samples - audio.CLIP_SAMPLES, count).round().astype(int)
    return [(int(start), int(start) + audio.CLIP_SAMPLES) for start in starts]


class SpeechWindows:
    """A reader that cuts a recording's 6 s windows (`window_ranges`) as it passes; `clips()` keeps those with
    MIN_WINDOW_SPEECH_SECONDS of speech or more (by `activity`, known before the pass or set after it)."""

    def __init__(self, samples: int, activity: Activity | None = None) -> None:
        self.ranges = window_ranges(samples)
        self.activity = activity
        self.pieces = Collect()
        self.cutter = Cutter(self.ranges, self.pieces)

    def add(self, samples: np.ndarray) -> None:
        self.cutter.add(samples)

    def finish(self) -> None:
        self.cutter.finish()

    def clips(self) -> np.ndarray:
        """(W, 96000): the windows with speech; speech spread thin: the one window that holds the most."""
        if len(self.ranges) == 1:
            return audio.fit_length(self.pieces.pieces[0])[None]
        assert self.activity is not None
        seconds = [a / audio.SAMPLE_RATE for a, _ in self.ranges]
        speech = np.array([self.activity.speech_in(start, start + audio.CLIP_SECONDS) for start in seconds])
        keep = np.flatnonzero(speech >= MIN_WINDOW_SPEECH_SECONDS)
        if len(keep) == 0:
            keep = np.array([int(speech.argmax())])
        return np.stack([self.pieces.pieces[i] for i in keep])


class OwnSpeech:
    """A reader that keeps one speaker's speech as the recording passes: its turns joined, as if the speaker had
    spoken alone, heard by the detector and cut into windows; `clips()` after the pass."""

    def __init__(self, turns: tuple[tuple[float, float], ...], samples: int, detector: SpeechDetector) -> None:
        cuts = [(start, min(stop, samples)) for start, stop in (sample_range(*turn) for turn in turns)]
        self.listening = detector.stream()
        self.windows = SpeechWindows(sum(stop - start for start, stop in cuts))
        self.reader = Span(cuts, Blocks(Tee(self.listening, self.windows)))  # the turns joined as they pass

    def add(self, samples: np.ndarray) -> None:
        self.reader.add(samples)

    def finish(self) -> None:
        self.reader.finish()
        self.windows.activity = self.listening.activity

    def clips(self) -> np.ndarray:
        return self.windows.clips()


class Speech2Face:
    """A voice encoder and the face decoder it was trained with, in eval mode on one device."""

    def __init__(self, voice: torch.nn.Module, decoder: torch.nn.Module, card: ModelCard,
                 device: str | torch.device | None = None, min_speech: float = MIN_SPEECH_SECONDS,
                 max_seconds: float = MAX_RECORDING_SECONDS) -> None:
        if not min_speech > 0 or not max_seconds > 0:
            raise ValueError(f"min_speech and max_seconds must be above 0 seconds, got {min_speech}, {max_seconds}")
        self.device = pick_device(device)
        self.voice, self.decoder = voice.to(self.device).eval(), decoder.to(self.device).eval()
        self.card = card
        self.min_speech = min_speech  # seconds of speech a face needs, per speaker
        self.max_seconds = max_seconds  # the longest recording read
        self.detector = SpeechDetector(self.device)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        progress: bool = True, min_speech: float = MIN_SPEECH_SECONDS,
                        max_seconds: float = MAX_RECORDING_SECONDS) -> Speech2Face:
        """A model folder, a `s2f train` run, a `s2f demo` output folder, or a registered name (`s2f models`);
        `min_speech`: the seconds of speech a face needs (per speaker); `max_seconds`: the longest recording."""
        path = Path(name_or_path)
        if not path.exists():
            if os.sep in str(name_or_path) or "/" in str(name_or_path):
                raise ModelError(f"{name_or_path}: no such model folder")
            path = resolve(str(name_or_path), progress=progress)
        voice_dir, decoder_dir, card = locate(path)
        return cls(load_voice_encoder(voice_dir), FaceDecoder.from_pretrained(decoder_dir), card, device, min_speech,
                   max_seconds)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """`speech2face.json` + `voice/` + `decoder/`; what `from_pretrained` and the registry read."""
        directory = Path(directory)
        self.voice.save_pretrained(directory / VOICE_DIR)
        self.decoder.save_pretrained(directory / DECODER_DIR)
        self.card.write(directory)
        return directory

    def clips(self, source: AudioInput) -> tuple[np.ndarray, float]:
        """The 6 s windows this model reads from a recording (W, 96000), and its seconds of speech.
        Raises AudioError for what cannot be decoded, and where the detector finds no speech (silence,
        noise, tones, music)."""
        voice = self.voices(source, speakers=1)[0]  # the whole recording as one voice
        return voice.clips, voice.voiced_seconds

    def voices(self, source: AudioInput, speakers: int | None = None, progress: bool = False) -> list[Voice]:
        """A recording's speakers (first heard first), each cut into windows of its own speech only; one Voice
        over the whole recording when one speaker is found or `speakers` is 1. A speaker with less than
        `min_speech` seconds of speech gets no Voice. AudioError as `clips`, and when no speaker has enough.
        The recording is read a block at a time, never whole: once for its speech, once for its speakers'
        windows (and the whole recording's), and once more for each speaker's own speech when there are several.
        `progress`: a bar per pass (on stderr) once a pass runs longer than a couple of seconds."""
        if speakers is not None and speakers < 1:
            raise ValueError(f"speakers must be 1 or more, got {speakers}")
        recording = Recording(source, self.max_seconds)
        activity = self._speech(recording, "finding speech" if progress else None)
        samples = round(activity.seconds * audio.SAMPLE_RATE)
        windows = SpeechWindows(samples, activity)
        # speech in pieces too short to tell voices apart is one voice, as is a recording read as one
        spans = windows_in(activity.regions) if speakers != 1 else []
        embedder = WindowEmbedder(self.device)
        read(recording, Tee(windows, window_reader(spans, embedder)), "telling speakers apart" if progress else None)
        found = speakers_from(embedder.vectors, spans, activity, speakers) if spans else []
        evidence = activity.evidence()
        if len(found) <= 1:
            turns = found[0].turns if found else activity.regions
            return [Voice(windows.clips(), activity.speech_seconds, turns=turns, speech=evidence)]
        enough = [speaker for speaker in found if speaker.voiced_seconds >= self.min_speech]
        if not enough:
            heard = ", ".join(f"{s.label} {s.voiced_seconds:.1f} s" for s in found)
            raise AudioError(f"{recording.name}: too little speech for a face from any of its "
                             f"{len(found)} speakers ({heard}); a face needs {self.min_speech:g} s (--min-speech)")
        own = [OwnSpeech(speaker.turns, samples, self.detector) for speaker in enough]
        read(recording, Tee(*own), "each speaker's own speech" if progress else None)
        return [Voice(mine.clips(), speaker.voiced_seconds, speaker.label, speaker.turns, evidence)
                for mine, speaker in zip(own, enough, strict=True)]

    def _speech(self, recording: Recording, progress: str | None = None) -> Activity:
        """Where a recording's speech is (one pass over it); AudioError without speech, or with less than
        `min_speech` seconds of it (how much the detector found, and how sure it was, in the message)."""
        listening = self.detector.stream()
        read(recording, listening, progress)
        activity = listening.activity
        assert activity is not None
        name = recording.name
        if not activity.has_speech:
            raise AudioError(f"{name}: no speech found: {activity.describe()}")
        if activity.speech_seconds < self.min_speech:
            raise AudioError(f"{name}: too little speech for a face: {activity.speech_seconds:.1f} s found in "
                             f"{activity.seconds:.1f} s (speech probability at most {activity.peak:.2f}, "
                             f"{activity.confidence:.2f} on average where found); a face needs "
                             f"{self.min_speech:g} s (--min-speech)")
        return activity

    def features(self, clips: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """Per recording (its windows (W, 96000)) -> the mean of its windows' features; (N, D)."""
        out = encode_waves(self.voice, torch.from_numpy(np.concatenate(clips)), batch)
        bounds = np.cumsum([0, *(len(c) for c in clips)])
        return torch.stack([out[a:b].mean(0) for a, b in itertools.pairwise(bounds)]).numpy()

    @torch.no_grad()
    def draw(self, features: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """Face features (N, D) -> [(PIL image, landmarks in pixels)]."""
        from PIL import Image

        decoded = self.decoder(torch.from_numpy(np.asarray(features, np.float32)).to(self.device))
        images = to_uint8(decoded.image)
        size = np.array(images.shape[2:0:-1], np.float32)  # (W, H)
        return [(Image.fromarray(img), points * size) for img, points in zip(images, decoded.landmarks.cpu().numpy(),
                                                                              strict=True)]

    def predict(self, source: AudioInput, speakers: int | None = None) -> Prediction:
        """One recording -> the face of its main speaker (the most speech), with every speaker's face in
        `.speakers`. `source`: a path (any audio or video file), bytes, or a 16 kHz wave; `speakers`: None to
        find them, N to force N, 1 for the whole recording as one voice."""
        return self.predict_voices([self.voices(source, speakers)])[0]

    def predict_voices(self, recordings: Sequence[Sequence[Voice]], batch: int = 16) -> list[Prediction]:
        """THE way to predictions, which the other entry points call: per recording its voices (`voices`) ->
        its main speaker's Prediction (the most speech) holding every voice's in `.speakers`; every window of
        every recording batched together through the networks."""
        flat = [voice for voices in recordings for voice in voices]
        if not flat:
            return []
        features = self.features([v.clips for v in flat], batch)
        each = [Prediction(image=image, feature=feature, landmarks=points, windows=len(v.clips),
                           voiced_seconds=v.voiced_seconds, model=self.card.label, label=v.label, turns=v.turns,
                           speech=v.speech)
                for (image, points), feature, v in zip(self.draw(features), features, flat, strict=True)]
        bounds = np.cumsum([0, *(len(voices) for voices in recordings)])
        out = []
        for a, b in itertools.pairwise(bounds):
            mine = each[a:b]
            out.append(dataclasses.replace(max(mine, key=lambda p: p.voiced_seconds), speakers=mine))
        return out

    def predict_batch(self, sources: Sequence[AudioInput], batch: int = 16) -> list[Prediction]:
        """Several recordings, each read as one voice (no speakers told apart), their windows batched through the
        networks; AudioError on the first bad one."""
        prepared = [self.clips(source) for source in sources]
        return self.predict_clips([c for c, _ in prepared], [v for _, v in prepared], batch)

    def predict_clips(self, clips: Sequence[np.ndarray], voiced: Sequence[float], batch: int = 16,
                      ) -> list[Prediction]:
        """Recordings already cut by `clips`, each one voice -> predictions (what batch jobs call after checking
        each input)."""
        return self.predict_voices([[Voice(windows, seconds)] for windows, seconds in zip(clips, voiced, strict=True)],
                                   batch)
