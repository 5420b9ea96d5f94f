"""`prepare`: segments -> webdataset shards of (speech, aligned face, landmarks, face feature, metadata).

Work is planned, not discovered: the manifest's segments go to nodes by a hash of their key
(`--shard-id i --num-shards n`: no overlap, no coordination), then per split (train/val/test, by a hash
of the SPEAKER) into shards of `shard_size` segments, named `<split>-<node>-<index>.tar`. A shard is the
unit of work and of resumption: its tar, its failures and its stats appear only complete (temp file +
rename; the stats last), so a run killed at any moment and started again redoes only unfinished shards,
and every good segment ends up in exactly one shard.

Segments longer than 6 s are cut into 6 s windows (a last piece shorter than 3 s is dropped), each a
sample with a face from its own frames: the voice encoder reads 6 s, and cutting keeps all the speech of
long segments instead of throwing most of it away. Face choice: see `choose.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..audio import SAMPLE_RATE, load_audio
from ..errors import AudioError, DataError, Speech2FaceError
from ..files import PREPARE_HEADER, atomic_write, claim_folder, write_json
from .choose import FrameFace, frame_face
from .manifests import Segment
from .media import encode_flac, media_duration, read_frames
from .shards import Sample, write_shard

log = logging.getLogger(__name__)

WINDOW_SECONDS = 6.0
MIN_LAST_WINDOW = 3.0  # a remainder shorter than this is dropped
MIN_SECONDS = 1.0  # shorter segments are failures
END_TOLERANCE = 0.5  # a segment may end this far past the file's end (rounding in manifests) and is trimmed
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PrepareSettings:
    encoder: str = "dlib-torch"
    frames: int = 3  # sampled per window
    shard_size: int = 100  # segments per shard
    detector: str = "hog"
    val: float = 0.1  # fractions of SPEAKERS
    test: float = 0.1
    split_seed: int = 0
    jpeg_quality: int = 95
    device: str = "cpu"

    def check(self) -> None:
        if self.frames < 1 or self.shard_size < 1:
            raise DataError("--frames and --shard-size must be at least 1")
        if not (self.val >= 0 and self.test >= 0 and self.val + self.test < 1):
            raise DataError(f"val {self.val} + test {self.test} must leave some training speakers")
        if self.detector not in ("hog", "mmod"):
            raise DataError(f"detector must be hog or mmod, got {self.detector!r}")


class SegmentFailure(Exception):
    """A segment (or one of its windows) that cannot become a sample: `reason` is a short tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def split_of(speaker: str, val: float, test: float, seed: int = 0) -> str:
    """train / val / test for a speaker: a hash, so every node and every run agrees."""
    digest = hashlib.sha256(f"{seed}:{speaker}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


def node_of(key: str, num_shards: int) -> int:
    return zlib.crc32(key.encode()) % num_shards


def windows(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end) cut into WINDOW_SECONDS pieces; a short remainder is dropped unless it is all there is."""
    pieces = []
    t = start
    while end - t > 1e-6:
        piece_end = min(t + WINDOW_SECONDS, end)
        if pieces and piece_end - t < MIN_LAST_WINDOW:
            break
        pieces.append((t, piece_end))
        t = piece_end
    return pieces


@dataclass(frozen=True)
class ShardJob:
    name: str
    segments: tuple[Segment, ...]


def plan(segments: list[Segment], settings: PrepareSettings, shard_id: int = 0, num_shards: int = 1) -> list[ShardJob]:
    """This node's shards: its segments by split, in manifest order, `shard_size` per shard."""
    if not 0 <= shard_id < num_shards:
        raise DataError(f"--shard-id must be in [0, {num_shards}), got {shard_id}")
    mine = [s for s in segments if node_of(s.key, num_shards) == shard_id]
    jobs = []
    for split in SPLITS:
        part = [s for s in mine if split_of(s.speaker, settings.val, settings.test, settings.split_seed) == split]
        for index in range(0, len(part), settings.shard_size):
            name = f"{split}-{shard_id:03d}-{index // settings.shard_size:05d}"
            jobs.append(ShardJob(name, tuple(part[index:index + settings.shard_size])))
    return jobs


# ---------------------------------------------------------------------------------------------------
# one segment

def _audio(segment: Segment, end: float) -> np.ndarray:
    try:
        wave = load_audio(segment.source, offset=segment.start, duration=end - segment.start)
    except AudioError as error:
        reason = "no-audio" if "no audio stream" in str(error) else "bad-audio"
        raise SegmentFailure(reason, str(error)) from error
    if len(wave) < (end - segment.start - 0.1) * SAMPLE_RATE:
        raise SegmentFailure("truncated", f"{len(wave) / SAMPLE_RATE:.2f} s of audio where "
                                          f"{end - segment.start:.2f} s were expected")
    return wave


def _frame_times(start: float, end: float, count: int) -> list[float]:
    return [start + (i + 0.5) * (end - start) / count for i in range(count)]


def _window_faces(segment: Segment, pieces: list[tuple[float, float]], settings: PrepareSettings,
                  ) -> list[list[FrameFace] | str]:
    """Per window, its good frame faces, or the reason it has none."""
    near = (segment.x, segment.y) if segment.x is not None and segment.y is not None else None
    if segment.image is not None:  # pairs: one photo serves every window
        from PIL import Image, UnidentifiedImageError

        try:
            photo = np.asarray(Image.open(segment.image).convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise SegmentFailure("bad-image", f"{segment.image}: {error}") from error
        face = frame_face(photo, 0.0, None, settings.detector)
        return [[face] if isinstance(face, FrameFace) else face for _ in pieces]
    times = [t for a, b in pieces for t in _frame_times(a, b, settings.frames)]
    try:
        frames = read_frames(segment.source, times)
    except DataError as error:
        raise SegmentFailure("bad-video", str(error)) from error
    if not frames:
        raise SegmentFailure("bad-video", "no frame could be decoded in the segment")
    results: list[list[FrameFace] | str] = []
    for a, b in pieces:
        inside = [(t, image) for t, image in frames if a - 0.05 <= t < b]
        found = [frame_face(image, t, near, settings.detector) for t, image in inside]
        good = [f for f in found if isinstance(f, FrameFace)]
        reasons = Counter(f for f in found if isinstance(f, str))
        results.append(good or (reasons.most_common(1)[0][0] if reasons else "no-frames"))
    return results


def process_segment(segment: Segment, settings: PrepareSettings, encoder: Any) -> tuple[list[Sample], list[dict]]:
    """The samples of one segment (one per usable window) and the failures of its other windows.
    Raises SegmentFailure when nothing of the segment is usable."""
    if segment.error is not None:
        reason, _, detail = segment.error.partition(": ")
        raise SegmentFailure(reason, detail)
    if not Path(segment.source).is_file():
        raise SegmentFailure("missing-file", segment.source)
    if segment.image is not None and not Path(segment.image).is_file():
        raise SegmentFailure("missing-file", segment.image)
    try:
        duration = media_duration(segment.source)
    except DataError as error:
        raise SegmentFailure("bad-video", str(error)) from error
    end = duration if segment.end is None else segment.end
    if segment.start >= duration - MIN_SECONDS / 2 or end > duration + END_TOLERANCE:
        raise SegmentFailure("past-end", f"segment {segment.start:.2f}-{end:.2f} s, file {duration:.2f} s")
    end = min(end, duration)
    if end - segment.start < MIN_SECONDS:
        raise SegmentFailure("too-short", f"{end - segment.start:.2f} s")
    wave = _audio(segment, end)
    pieces = windows(segment.start, end)
    per_window = _window_faces(segment, pieces, settings)
    good_windows = [(i, f) for i, f in enumerate(per_window) if not isinstance(f, str)]
    if not good_windows:
        reason = Counter(f for f in per_window if isinstance(f, str)).most_common(1)[0][0]
        raise SegmentFailure(str(reason), f"no usable face in {len(pieces)} window(s)")
    crops = np.stack([face.crop.image for _, found in good_windows for face in found])
    features = encoder.embed(crops)
    samples, failures, row = [], [], 0
    for index, found in enumerate(per_window):
        a, b = pieces[index]
        key = segment.key if len(pieces) == 1 else f"{segment.key}-w{index}"
        if isinstance(found, str):
            failures.append(failure_record(segment, found, "window without a usable face", key, a, b))
            continue
        feature = features[row:row + len(found)].mean(axis=0)
        row += len(found)
        best = min(found, key=lambda face: abs(face.yaw))
        first = round((a - segment.start) * SAMPLE_RATE)
        audio = wave[first:first + round((b - a) * SAMPLE_RATE)]
        meta = {"key": key, "speaker": segment.speaker, "source": Path(segment.source).name,
                "start": round(a, 4), "end": round(b, 4), "segment_start": segment.start,
                "segment_end": round(end, 4), "point": None if segment.x is None else [segment.x, segment.y],
                "face_box": [round(v, 1) for v in (best.box.x0, best.box.y0, best.box.x1, best.box.y1)],
                "frame_time": round(best.time, 4), "frames_used": [round(f.time, 4) for f in found],
                "encoder": encoder.name, "image": segment.image and Path(segment.image).name}
        samples.append(Sample(key, encode_flac(audio), _jpeg(best.crop.image, settings.jpeg_quality),
                              best.crop.landmarks, feature.astype(np.float32), meta))
    return samples, failures


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def failure_record(segment: Segment, reason: str, detail: str, key: str | None = None,
                   start: float | None = None, end: float | None = None) -> dict:
    return {"key": key or segment.key, "speaker": segment.speaker, "source": segment.source,
            "start": segment.start if start is None else round(start, 4),
            "end": segment.end if end is None else round(end, 4), "reason": reason, "detail": detail}


# ---------------------------------------------------------------------------------------------------
# one shard

def shard_files(out: Path, name: str) -> tuple[Path, Path, Path]:
    folder = out / "shards"
    return folder / f"{name}.tar", folder / f"{name}.failures.jsonl", folder / f"{name}.stats.json"


def shard_done(out: Path, name: str) -> bool:
    tar, _, stats = shard_files(out, name)
    return tar.is_file() and stats.is_file()


def make_encoder(settings: PrepareSettings) -> Any:
    from ..faces import get_encoder

    return get_encoder(settings.encoder, device=settings.device)


def process_shard(job: ShardJob, settings: PrepareSettings, out: Path, threads: int | None = None) -> dict:
    """Process, write and return the stats of one shard (its tar, failures and stats files)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    encoder = make_encoder(settings)
    samples: list[Sample] = []
    failures: list[dict] = []
    ok = 0
    for segment in job.segments:
        try:
            made, lost = process_segment(segment, settings, encoder)
            samples += made
            failures += lost
            ok += 1
        except SegmentFailure as failure:
            failures.append(failure_record(segment, failure.reason, failure.detail))
        except Speech2FaceError as error:  # a model or data problem the checks above did not foresee
            failures.append(failure_record(segment, "error", str(error)))
    tar, failures_path, stats_path = shard_files(out, job.name)
    write_shard(tar, samples)
    atomic_write(failures_path, lambda t: t.write_text("".join(json.dumps(f) + "\n" for f in failures)))
    stats = {"shard": job.name, "segments": len(job.segments), "segments_ok": ok, "samples": len(samples),
             "failed": dict(Counter(f["reason"] for f in failures)),
             "speech_seconds": round(sum(s.meta["end"] - s.meta["start"] for s in samples), 3),
             "wall_seconds": round(time.perf_counter() - start_wall, 3),
             "cpu_seconds": round(time.process_time() - start_cpu, 3), "encoder": settings.encoder}
    write_json(stats_path, stats)  # last: marks the shard done
    return stats


# ---------------------------------------------------------------------------------------------------
# a run

def manifest_digest(segments: list[Segment]) -> str:
    digest = hashlib.sha256()
    for segment in segments:
        digest.update(json.dumps(asdict(segment), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def prepare(segments: list[Segment], out: str | Path, settings: PrepareSettings | None = None, *,
            workers: int = 1, shard_id: int = 0, num_shards: int = 1, progress: bool = True,
            synthetic: bool = False) -> dict:
    """Turn segments into shards under `out/shards`; resumable; returns this node's summary (also
    written to `out/summary-<node>.json`; every failure of every finished shard in `out/failures.jsonl`).
    `synthetic`: the videos come from `s2f synth` (recorded, so that every later report says so)."""
    settings = settings or PrepareSettings()
    settings.check()
    out = Path(out)
    header = {"format_version": FORMAT_VERSION, "settings": asdict(settings), "num_shards": num_shards,
              "segments": len(segments), "manifest": manifest_digest(segments), "synthetic": synthetic}
    claim_folder(out, PREPARE_HEADER, header, "prepared shards", _ours)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for stale in (out / "shards").glob(f".*-{shard_id:03d}-*.tmp"):  # this node's leftovers of a killed run
        stale.unlink(missing_ok=True)
    speakers = sorted({s.speaker for s in segments if s.error is None})
    splits = {speaker: split_of(speaker, settings.val, settings.test, settings.split_seed) for speaker in speakers}
    write_json(out / "splits.json", {"val": settings.val, "test": settings.test, "seed": settings.split_seed,
                                     "counts": dict(Counter(splits.values())), "speakers": splits}, indent=1)
    jobs = plan(segments, settings, shard_id, num_shards)
    todo = [job for job in jobs if not shard_done(out, job.name)]
    start = time.perf_counter()
    bar = tqdm(total=sum(len(j.segments) for j in todo), desc="prepare", unit="segment", disable=not progress)
    if todo:
        log.info("%d of %d shards to do (%d segments)", len(todo), len(jobs), bar.total)
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        for job in todo:
            process_shard(job, settings, out)
            bar.update(len(job.segments))
    else:
        context = multiprocessing.get_context("spawn")  # safe with torch and CUDA in the parent
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(process_shard, job, settings, out, 1): job for job in todo}
            for future in as_completed(futures):
                future.result()
                bar.update(len(futures[future].segments))
    bar.close()
    return summarize(out, jobs, shard_id, time.perf_counter() - start)


def summarize(out: Path, jobs: list[ShardJob], shard_id: int, wall: float) -> dict:
    stats = [json.loads(shard_files(out, job.name)[2].read_text()) for job in jobs if shard_done(out, job.name)]
    failed: Counter[str] = Counter()
    for item in stats:
        failed.update(item["failed"])
    speech = sum(item["speech_seconds"] for item in stats)
    cpu = sum(item["cpu_seconds"] for item in stats)
    summary = {"node": shard_id, "shards": len(stats), "segments": sum(i["segments"] for i in stats),
               "segments_ok": sum(i["segments_ok"] for i in stats), "samples": sum(i["samples"] for i in stats),
               "failed": dict(sorted(failed.items())), "speech_hours": round(speech / 3600, 4),
               "wall_seconds_this_run": round(wall, 2),
               "speech_seconds_per_cpu_second": round(speech / cpu, 2) if cpu else None}
    write_json(out / f"summary-{shard_id:03d}.json", summary)
    lines = []
    for path in sorted((out / "shards").glob("*.failures.jsonl")):
        lines.append(path.read_text())
    atomic_write(out / "failures.jsonl", lambda t: t.write_text("".join(lines)))
    return summary


def _ours(name: str) -> bool:
    """Files another node may already have written into a folder it shares with this one."""
    return name in ("shards", "splits.json", "failures.jsonl") or name.startswith(
        (".prepare.json.", ".splits.json.", ".failures.jsonl.", "summary-", ".summary-"))

