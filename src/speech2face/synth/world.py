"""`make_world`: N synthetic identities x K talking-face clips, written as an AVSpeech-style dataset.

    DIR/videos/<ytid>.mp4    H.264 + AAC; the video is as long as its speech (plus < 64 ms of silence
                             that completes the last AAC frame); the face drifts slightly
    DIR/avspeech.csv         ytid,start,end,x,y (no header; x, y the face centre in the first frame, 0..1)
    DIR/clips.csv            ytid,speaker_id,clip,seconds,text
    DIR/attributes.csv       per identity: attributes (read from its photo, or drawn for portraits), its face
                             (photo keys or portrait mix), measured craniofacial ratios, look, voice parameters
    DIR/world.json           the settings, what is real (the photo collection or portraits; every source
                             speaker with licence and median F0) and what is synthetic (pairing, transformations)

ytid = <speaker_id>_<clip>, so speaker-disjoint splits can group by the part before the underscore.
Each clip is written atomically and skipped when a rerun finds it, so an interrupted run resumes; the
CSVs are rewritten (they are cheap and deterministic).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.manifests import WORLD_FILE
from ..data.photos import CELEBA_999, CELEBA_TERMS, is_packaged
from ..errors import DataError
from ..files import atomic_write, claim_folder
from ..voice.audio import SAMPLE_RATE
from . import recorded
from .attributes import Identity, rng, sample_identity
from .photo_faces import PORTRAITS, FacePhoto, photo_base, photo_identities
from .portraits import (
    BUILTIN,
    PortraitSpec,
    craniofacial_measures,
    frame_transforms,
    load_bases,
    render_frames,
    render_identity,
)
from .speech import VoiceBank, clip_text
from .video import FPS, padded_length, write_clip

FORMAT_VERSION = 2
# espeak-ng lists at most 349 voices per data folder, its stock voices included: one private folder per
# this many speakers (400 in one folder failed; 200 works)
VOICES_PER_BANK = 200
CLIP_PURPOSE = 100  # generator keys (seed, identity, CLIP_PURPOSE + clip): one stream per clip
VOICES = ("recorded", "espeak")
SPEAKER_SETS = {"all": None, "recorded": recorded.RECORDED_ONLY}  # --speakers: which real speakers lend utterances


@dataclass(frozen=True)
class WorldSettings:
    identities: int = 20
    clips: int = 4
    seed: int = 0
    strength: float = 1.0  # how much the voice follows the face's attributes: 1 full, 0 independent
    frame_size: int = 256
    face_noise: float = 1.0  # face variation no attribute explains (shape noise, morph split, skin tone, light)
    voices: str = "recorded"  # recorded speakers transformed by Praat, or "espeak" (fast, for tests)
    speakers: str = "all"  # recorded voices' sources: all (recorded + synthesisers of real speakers) or recorded
    faces: str = CELEBA_999  # a photo collection (name or folder; photo_faces.py), or "portraits" (the six built-in)
    face_labels: str = ""  # the collection's CSV of file,identity,sex,age (s2f prepare --images's --labels)
    val: float = 0.15  # the split `s2f prepare` will use on this world (--val/--test): its val/test identities
    test: float = 0.15  # take photos no decoder trained on (photo worlds)
    seconds: float = recorded.MIN_SECONDS  # of speech per clip, at least (recorded voices)

    @property
    def photos(self) -> bool:
        return self.faces != PORTRAITS

    def check(self) -> None:
        if not (self.val >= 0 and self.test >= 0 and self.val + self.test < 1):
            raise DataError(f"val {self.val} + test {self.test} must leave some training identities")
        if self.speakers not in SPEAKER_SETS:
            raise DataError(f"speakers must be one of {', '.join(SPEAKER_SETS)}, got {self.speakers!r}")
        if self.voices not in VOICES:
            raise DataError(f"voices must be one of {', '.join(VOICES)}, got {self.voices!r}")
        if not 1.0 <= self.seconds <= 60.0:
            raise DataError(f"seconds per clip must be in [1, 60], got {self.seconds}")
        if self.identities < 1 or self.clips < 1:
            raise DataError(f"need at least one identity and one clip, got {self.identities} x {self.clips}")
        if not 0.0 <= self.strength <= 1.0:
            raise DataError(f"strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.face_noise <= 2.0:
            raise DataError(f"face noise must be in [0, 2], got {self.face_noise}")
        if self.frame_size < 96:
            raise DataError(f"frame size {self.frame_size} is too small for the face detector (>= 96)")


@dataclass(frozen=True)
class ClipRow:
    ytid: str
    speaker_id: str
    clip: int
    seconds: float
    x: float
    y: float
    text: str


def identity_clips(identity: Identity, faces: tuple[PortraitSpec, ...] | tuple[FacePhoto, ...],
                   settings: WorldSettings, voices_root: Path | None, speakers: tuple[recorded.Source, ...],
                   videos: Path) -> tuple[dict[str, object], list[ClipRow]]:
    """Render one identity's clips (skipping files already there); its attributes row and clip rows. Its face:
    its photos `faces` (photo worlds) or a morph of the portraits and the user's extra portraits `faces`. Voices
    come from espeak-ng's folder `voices_root`, or (None) from the recorded `speakers`."""
    if settings.photos:
        bases = {photo.key: photo_base(photo) for photo in faces}
    else:
        bases = {base.name: base for base in load_bases(faces)}
    portrait, points = render_identity(bases, identity.shape, identity.look)
    rows = []
    for clip in range(settings.clips):
        clip_rng = rng(settings.seed, identity.index, CLIP_PURPOSE + clip)
        if voices_root is None:
            wave, text = recorded.speak(speakers, identity.voice, clip_rng, settings.seconds)
        else:
            text = clip_text(clip_rng)
            wave = VoiceBank(voices_root).say(identity.speaker_id, identity.voice, text)
        frames = math.ceil(padded_length(len(wave)) / SAMPLE_RATE * FPS)  # the video covers all the audio
        transforms = frame_transforms(points, portrait.shape[:2], identity.look, frames, settings.frame_size,
                                      clip_rng)
        ytid = f"{identity.speaker_id}_{clip:02d}"
        path = videos / f"{ytid}.mp4"
        if not path.exists():
            write_clip(path, render_frames(portrait, transforms, settings.frame_size), wave)
        centre = transforms[0] @ np.append(points.mean(axis=0), 1.0) / settings.frame_size
        rows.append(ClipRow(ytid, identity.speaker_id, clip, len(wave) / SAMPLE_RATE, float(centre[0]),
                            float(centre[1]), text))
    face = {"face": ("photo" if len(identity.look.mix) == 1 else "morph of two photos") if settings.photos
            else "morph of portraits"}
    row = identity.row() | face | {"strength": settings.strength} | craniofacial_measures(points)
    return row, rows


def _run_identity(job: tuple[Identity, tuple, WorldSettings, Path | None,
                              tuple[recorded.Source, ...], Path]) -> tuple[dict[str, object], list[ClipRow]]:
    return identity_clips(*job)


def world_header(settings: WorldSettings, portraits: tuple[PortraitSpec, ...],
                 speakers: tuple[recorded.Source, ...] = ()) -> dict[str, object]:
    """world.json: the settings, and what in the world is real (with sources, licences, the voices' measured
    median F0) and what is synthetic."""
    if settings.photos:
        real: dict[str, object] = {"faces": {
            "collection": settings.faces, "labels": settings.face_labels or None,
            "licence": CELEBA_TERMS if is_packaged(settings.faces) else "given by the user",
            "use": "each identity's face is one real photo (or a same-sex morph of two), shown as it is"}}
    else:
        real = {"portraits": [{"name": s.info.name, "sex": s.info.sex, "source": s.origin, "licence": s.licence}
                              for s in BUILTIN] + [{"name": p.path.stem, "sex": p.sex, "source": str(p.path),
                                                    "licence": "given by the user"} for p in portraits]}
    if settings.voices == "recorded":
        real["voices"] = [source_entry(source) for source in speakers]
    faces = ("the morphs of two photos (worlds larger than the collection)" if settings.photos
             else "the faces (morphs and warps of the portraits)")
    synthetic = ["the pairing of every voice with a face", faces,
                 "the voices (Praat 'Change gender' of the recordings)" if settings.voices == "recorded"
                 else "the voices (espeak-ng)"]
    return {"format_version": FORMAT_VERSION, "synthetic": True, "note": world_note(settings),
            "settings": settings.__dict__, "real": real, "synthetic_parts": synthetic, "fps": FPS,
            "sample_rate": SAMPLE_RATE}


def world_note(settings: WorldSettings) -> str:
    faces = ("faces are real photos of real people" if settings.photos
             else "faces are morphs of real public-domain portraits")
    voices = ("voices are real speakers (recorded, or synthesisers built from their recordings) transformed (pitch, "
              "formants, rate) to targets set from what the face shows" if settings.voices == "recorded"
              else "voices are espeak-ng speech whose parameters are set from what the face shows")
    return f"SYNTHETIC pairing: {faces} and {voices}; no real person's voice belongs to any face here."


def source_entry(source: recorded.Source) -> dict[str, object]:
    """world.json's entry of a source speaker, with the median F0 of its first utterances (Praat)."""
    speaker = source.speaker
    waves = [wave for _, wave in recorded.readable(source.files, np.arange(min(len(source.files), F0_UTTERANCES)),
                                                   recorded.SAMPLE_RATE // 4)]
    f0 = float(np.nanmedian([recorded.median_f0(wave) for wave in waves])) if waves else float("nan")
    return {"name": speaker.name, "sex": speaker.sex, "language": speaker.language, "kind": speaker.kind,
            "package": speaker.package, "licence": speaker.licence, "utterances": len(source.files),
            "median_f0_hz": round(f0, 1)}


F0_UTTERANCES = 12
NOTE = world_note(WorldSettings())


def make_world(out: str | Path, settings: WorldSettings | None = None, *, workers: int | None = None,
               portraits: list[PortraitSpec] | None = None, progress: bool = True) -> Path:
    """Generate (or finish) the synthetic world in `out`; returns `out`. `workers`: processes (default:
    the CPU count; 1 runs here). `portraits`: extra base portraits besides the built-in ones (portrait worlds)."""
    settings = settings or WorldSettings()
    settings.check()
    out = Path(out)
    extra = tuple(portraits or ())
    if extra and settings.photos:
        raise DataError("--portrait adds to the built-in portraits: use it with --faces portraits")
    # found once (a missing Debian package or parselmouth fails here, before any work), then passed to every job
    speakers = recorded.sources(SPEAKER_SETS[settings.speakers]) if settings.voices == "recorded" else ()
    # the faces too (a photo collection without a usable face, an unreadable portrait), before anything is written
    identities, faces_of = world_identities(settings, extra, progress)
    claim_folder(out, WORLD_FILE, world_header(settings, extra, speakers), "a synthetic world")
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        jobs = []
        for first in range(0, len(identities), VOICES_PER_BANK):
            bank = stack.enter_context(VoiceBank()) if settings.voices == "espeak" else None
            for identity in identities[first:first + VOICES_PER_BANK]:
                if bank is not None:
                    bank.add(identity.speaker_id, identity.voice)
                jobs.append((identity, faces_of[identity.speaker_id], settings, bank.root if bank else None,
                             speakers, videos))
        results = list(tqdm(_map(jobs, workers), total=len(jobs), desc="synth", unit="identity",
                            disable=not progress))
    attribute_rows = [row for row, _ in results]
    clip_rows = [clip for _, clips in results for clip in clips]
    _write_csv(out / "avspeech.csv", [[c.ytid, "0.000000", f"{c.seconds:.6f}", f"{c.x:.6f}", f"{c.y:.6f}"]
                                      for c in clip_rows])
    _write_csv(out / "clips.csv", [["ytid", "speaker_id", "clip", "seconds", "text"]]
               + [[c.ytid, c.speaker_id, c.clip, f"{c.seconds:.6f}", c.text] for c in clip_rows])
    columns = list(attribute_rows[0])
    _write_csv(out / "attributes.csv", [columns] + [[row[k] for k in columns] for row in attribute_rows])
    return out


def world_identities(settings: WorldSettings, extra: tuple[PortraitSpec, ...], progress: bool,
                     ) -> tuple[list[Identity], dict[str, tuple]]:
    """The world's identities, and per speaker id what its job renders the face from: its photos (photo worlds)
    or the user's extra portraits (beside the built-in ones)."""
    if settings.photos:
        identities, used = photo_identities(settings.identities, settings.seed, settings.strength, settings.val,
                                            settings.test, settings.faces, settings.face_labels or None, progress)
        return identities, {i.speaker_id: tuple(used[key] for key, _ in i.look.mix) for i in identities}
    infos = [base.info for base in load_bases(extra)]
    identities = [sample_identity(settings.seed, i, settings.strength, infos, settings.face_noise)
                  for i in range(settings.identities)]
    return identities, dict.fromkeys((i.speaker_id for i in identities), extra)


def _map(jobs: list, workers: int | None) -> Iterator:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        yield from map(_run_identity, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_run_identity, jobs)


def _write_csv(path: Path, rows: list[list[object]]) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)

    atomic_write(path, write)
