"""Manifests: the speech segments of a dataset, whatever its layout, as one list of `Segment`s.

    read_avspeech(csv, videos)    AVSpeech: `ytid,start,end,x,y` rows (no header) + a folder of videos
                                  named by ytid (any container), or of the sections `s2f download` cuts
                                  (`<ytid>+<start ms>-<end ms>.<ext>`); speaker = ytid, or a regex group of it
    read_voxceleb2(root)          VoxCeleb2: root/id*/video_id/*.mp4; speaker = the id folder
    read_folder(root)             any talking-face videos under root; speaker = parent folder or file stem
    read_pairs(csv)               already cut data: `audio,image,speaker` rows (header optional)

A row that cannot be used becomes a Segment with `.error` set, so that it is recorded in failures.jsonl
by the same path as every other failure (and exactly once when the work is split across nodes).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SECTION = re.compile(r"^(.+)\+(\d+)-(\d+)$")
SECTION_TOLERANCE = 0.002  # seconds: section bounds are whole milliseconds
# a synthetic world (`s2f synth`): its header file, and how its ytids (<speaker_id>_<clip>) name their speaker
WORLD_FILE = "world.json"
SPEAKER_PATTERN = r"^(.+)_\d+$"


@dataclass(frozen=True)
class Segment:
    """One speech segment: `source` (a video, or the audio of a pair) from `start` to `end` seconds
    (end None: the end of the file), the face near the normalised point (x, y) (None: the largest),
    or in `image` for pairs. `key` is unique and has no dots (webdataset splits names at dots)."""

    key: str
    speaker: str
    source: str
    start: float = 0.0
    end: float | None = None
    x: float | None = None
    y: float | None = None
    image: str | None = None
    error: str | None = None  # a manifest problem: the segment is recorded as failed, not processed


def safe_key(text: str) -> str:
    """A key for any text: unsafe characters replaced, plus a short hash when anything was replaced."""
    cleaned = _UNSAFE.sub("_", text).strip("_") or "x"
    if cleaned == text:
        return cleaned
    return f"{cleaned[-80:]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def section_stem(ytid: str, start: float, end: float) -> str:
    """The file name (without extension) of the part of video `ytid` from `start` to `end` seconds."""
    return f"{ytid}+{round(start * 1000)}-{round(end * 1000)}"


def _index_sections(files: dict[str, Path]) -> dict[str, list[tuple[float, float, Path]]]:
    """ytid -> its section files as (start, end, path), from an index of files by stem."""
    found: dict[str, list[tuple[float, float, Path]]] = {}
    for stem, path in files.items():
        match = _SECTION.match(stem)
        if match:
            found.setdefault(match.group(1), []).append((int(match.group(2)) / 1000, int(match.group(3)) / 1000,
                                                         path))
    return found


def _locate(ytid: str, start: float, end: float, files: dict[str, Path],
            cut: dict[str, list[tuple[float, float, Path]]]) -> tuple[Path, float] | None:
    """The file holding a segment and the time in it of the video's time 0: the whole video, else a
    section that covers the segment (its time 0 is the section's start)."""
    if ytid in files:
        return files[ytid], 0.0
    for first, last, path in cut.get(ytid, ()):
        if first - SECTION_TOLERANCE <= start and end <= last + SECTION_TOLERANCE:
            return path, first
    return None


def _index_files(root: Path, suffixes: set[str]) -> dict[str, Path]:
    """stem -> path for every file with one of `suffixes` under root (the shallowest wins)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*"), key=lambda p: (len(p.parts), str(p))):
        if path.suffix.lower() in suffixes and path.is_file():
            found.setdefault(path.stem, path)
    return found


def read_avspeech(csv_path: str | Path, videos: str | Path, speaker_pattern: str | None = None) -> list[Segment]:
    """AVSpeech rows -> segments. `speaker_pattern`: a regex whose first group, searched in the ytid,
    is the speaker (AVSpeech has no speaker labels; by default each video is its own speaker)."""
    csv_path, videos = Path(csv_path), Path(videos)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such CSV file")
    if not videos.is_dir():
        raise DataError(f"{videos}: no such folder of videos")
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    files = _index_files(videos, VIDEO_SUFFIXES)
    cut = _index_sections(files)
    segments = []
    with csv_path.open(newline="", errors="replace") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            where = f"{csv_path.name}:{line}"
            try:
                ytid = row[0].strip()
                start, end, x, y = (float(value) for value in row[1:5])
                if len(row) != 5 or not ytid:
                    raise ValueError("expected 5 columns: ytid,start,end,x,y")
                if not all(math.isfinite(v) for v in (start, end, x, y)) or not 0 <= start < end:
                    raise ValueError(f"bad times {start}..{end}")
                if not (0 <= x <= 1 and 0 <= y <= 1):
                    raise ValueError(f"face centre ({x}, {y}) outside [0, 1]")
            except (ValueError, IndexError) as error:
                segments.append(Segment(safe_key(f"row{line}_{','.join(row)[:40]}"), "?", where,
                                        error=f"bad-row: {error}"))
                continue
            speaker = ytid
            if pattern is not None:
                match = pattern.search(ytid)
                speaker = match.group(1) if match and match.groups() else ytid
            key = safe_key(f"{ytid}_{round(start * 1000):08d}")
            found = _locate(ytid, start, end, files, cut)
            if found is None:
                segments.append(Segment(key, speaker, str(videos / ytid), start, end, x, y,
                                        error=f"missing-file: no video named {ytid}.* nor a section of it "
                                              f"holding {start:g}-{end:g} s in {videos}"))
            else:
                path, offset = found
                segments.append(Segment(key, speaker, str(path), max(0.0, round(start - offset, 6)),
                                        round(end - offset, 6), x, y))
    return _unique(segments)


def read_voxceleb2(root: str | Path) -> list[Segment]:
    """root/<speaker id>/<video id>/<clip>.mp4 (also .m4a-free layouts with any video container)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    segments = _video_segments(root, root.glob("*/*/*"), lambda path: path.parts[-3])
    if not segments:
        raise DataError(f"{root}: no videos in the VoxCeleb2 layout <speaker>/<video>/<clip>.mp4")
    return _unique(segments)


def read_folder(root: str | Path, speaker_from: str = "folder") -> list[Segment]:
    """Every video under root. speaker_from: 'folder' (the parent folder's name) or 'file' (the file
    name up to its first '_' or '-')."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    if speaker_from not in ("folder", "file"):
        raise DataError(f"speaker_from must be 'folder' or 'file', got {speaker_from!r}")
    segments = _video_segments(root, root.rglob("*"), lambda path: path.parent.name if speaker_from == "folder"
                               else re.split(r"[_-]", path.stem)[0])
    if not segments:
        raise DataError(f"{root}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return _unique(segments)


def _video_segments(root: Path, paths: Iterable[Path], speaker_of: Callable[[Path], str]) -> list[Segment]:
    """A whole-file segment per video among `paths`, keyed by its path under root."""
    segments = []
    for path in sorted(paths):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            relative = path.relative_to(root).with_suffix("")
            segments.append(Segment(safe_key("_".join(relative.parts)), speaker_of(path) or "?", str(path)))
    return segments


def read_pairs(csv_path: str | Path) -> list[Segment]:
    """Rows `audio,image,speaker` (paths relative to the CSV's folder or absolute; a header row is skipped)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such CSV file")
    segments = []
    with csv_path.open(newline="", errors="replace") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if line == 1 and [c.strip().lower() for c in row[:3]] == ["audio", "image", "speaker"]:
                continue
            where = f"{csv_path.name}:{line}"
            if len(row) != 3 or not all(c.strip() for c in row):
                segments.append(Segment(safe_key(f"row{line}"), "?", where,
                                        error="bad-row: expected 3 columns: audio,image,speaker"))
                continue
            audio, image = (Path(c.strip()) for c in row[:2])
            audio, image = (p if p.is_absolute() else csv_path.parent / p for p in (audio, image))
            segments.append(Segment(safe_key(f"{row[2].strip()}_{audio.stem}"), row[2].strip(), str(audio),
                                    image=str(image)))
    return _unique(segments)


def _unique(segments: list[Segment]) -> list[Segment]:
    """Keys made unique (a repeated row gets a numbered key), order kept."""
    seen: dict[str, int] = {}
    out = []
    for segment in segments:
        count = seen.get(segment.key, 0)
        seen[segment.key] = count + 1
        if count:
            segment = Segment(**{**segment.__dict__, "key": f"{segment.key}-{count}"})
        out.append(segment)
    return out


def read_sources(*, avspeech: str | Path | None = None, videos: str | Path | None = None,
                 voxceleb2: str | Path | None = None, folder: str | Path | None = None,
                 pairs: str | Path | None = None, speaker_pattern: str | None = None,
                 speaker_from: str = "folder") -> tuple[list[Segment], bool]:
    """The segments of exactly one input (what `s2f prepare` reads), and whether it is a synthetic world
    (an AVSpeech CSV beside a world.json of `s2f synth`, whose speakers are read from its ytids)."""
    given = {"--avspeech": avspeech, "--voxceleb2": voxceleb2, "--folder": folder, "--pairs": pairs}
    if sum(value is not None for value in given.values()) != 1:
        raise DataError("give exactly one input: --avspeech CSV (with --videos DIR), --voxceleb2 DIR, "
                        "--folder DIR, --pairs CSV or --images DIR|NAME")
    if avspeech is not None:
        if videos is None:
            raise DataError("--avspeech needs --videos DIR, the folder of downloaded videos")
        synthetic = (Path(avspeech).parent / WORLD_FILE).is_file()
        if speaker_pattern is None and synthetic:
            speaker_pattern = SPEAKER_PATTERN
        return read_avspeech(avspeech, videos, speaker_pattern), synthetic
    if voxceleb2 is not None:
        return read_voxceleb2(voxceleb2), False
    if folder is not None:
        return read_folder(folder, speaker_from), False
    assert pairs is not None  # exactly one input was given
    return read_pairs(pairs), False
