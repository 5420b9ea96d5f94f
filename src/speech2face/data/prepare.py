"""`prepare`: segments -> webdataset shards of (speech, aligned face, landmarks, face feature, metadata).

Work is planned, not discovered: the manifest's segments go to nodes by a hash of their key
(`--shard-id i --num-shards n`: no overlap, no coordination), then per split (train/val/test, by a hash
of the SPEAKER) into shards of `shard_size` segments, named `<split>-<node>-<index>.tar`. A shard is the
unit of work and of resumption: its tar, its failures and its stats appear only complete (temp file +
rename; the stats last), so a run killed at any moment and started again redoes only unfinished shards,
and every good segment ends up in exactly one shard.

Segments longer than 6 s are cut into 6 s windows (`segment.py`; a last piece shorter than 3 s is dropped), each a
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
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..errors import DataError, Speech2FaceError
from ..faces import get_encoder
from ..files import PREPARE_HEADER, atomic_write, claim_folder, write_json
from ..voice.activity import SpeechDetector
from .manifests import Segment
from .photos import Photo, judge_or_none, photo_failure, process_photos
from .ray_engine import check_engine, ray_session, run_on_ray
from .segment import SegmentFailure, failure_record, process_segment
from .shards import Sample, write_shard
from .splits import split_of

log = logging.getLogger(__name__)

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


def node_of(key: str, num_shards: int) -> int:
    return zlib.crc32(key.encode()) % num_shards


@dataclass(frozen=True)
class ShardJob:
    name: str
    segments: tuple[Segment | Photo, ...]  # talking-face segments, or photos (prepare --images)


def plan(segments: list[Segment] | list[Photo], settings: PrepareSettings, shard_id: int = 0,
         num_shards: int = 1) -> list[ShardJob]:
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
# one shard

def shard_files(out: Path, name: str) -> tuple[Path, Path, Path]:
    folder = out / "shards"
    return folder / f"{name}.tar", folder / f"{name}.failures.jsonl", folder / f"{name}.stats.json"


def shard_done(out: Path, name: str) -> bool:
    tar, _, stats = shard_files(out, name)
    return tar.is_file() and stats.is_file()


def make_encoder(settings: PrepareSettings) -> Any:
    return get_encoder(settings.encoder, device=settings.device)


def process_shard(job: ShardJob, settings: PrepareSettings, out: Path, threads: int | None = None) -> dict:
    """Process, write and return the stats of one shard (its tar, failures and stats files). Samples go into the
    tar as they are made: an hour-long video's windows are never all in memory."""
    if threads is not None:

        torch.set_num_threads(threads)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    encoder = make_encoder(settings)
    photos = [item for item in job.segments if isinstance(item, Photo)]
    segments = [item for item in job.segments if isinstance(item, Segment)]
    tally = _Tally()
    tar, failures_path, stats_path = shard_files(out, job.name)
    write_shard(tar, tally.counted(_shard_samples(photos, segments, settings, encoder, tally)))
    atomic_write(failures_path, lambda t: t.write_text("".join(json.dumps(f) + "\n" for f in tally.failures)))
    stats = {"shard": job.name, "segments": len(job.segments), "segments_ok": tally.ok, "samples": tally.samples,
             "photos": len(photos), "failed": dict(Counter(f["reason"] for f in tally.failures)),
             "speech_seconds": round(tally.speech_seconds, 3),
             "wall_seconds": round(time.perf_counter() - start_wall, 3),
             "cpu_seconds": round(time.process_time() - start_cpu, 3), "encoder": settings.encoder}
    write_json(stats_path, stats)  # last: marks the shard done
    return stats


@dataclass
class _Tally:
    """A shard's samples counted as they pass into its tar, its good segments and photos, and its failures."""

    samples: int = 0
    speech_seconds: float = 0.0
    ok: int = 0
    failures: list[dict] = field(default_factory=list)

    def counted(self, samples: Iterator[Sample]) -> Iterator[Sample]:
        for sample in samples:
            self.samples += 1
            self.speech_seconds += sample.meta.get("end", 0) - sample.meta.get("start", 0)
            yield sample


def _shard_samples(photos: list[Photo], segments: list[Segment], settings: PrepareSettings, encoder: Any,
                   tally: _Tally) -> Iterator[Sample]:
    """The samples of a shard's face photos (one each), then of its talking-face segments, as they are made; the
    others' failures, and how many photos and segments gave a sample, kept in `tally`."""
    for made in process_photos(photos, settings, encoder, judge_or_none()) if photos else ():
        if isinstance(made, Sample):
            tally.ok += 1
            yield made
        else:
            tally.failures.append(photo_failure(*made))
    detector = SpeechDetector("cpu") if segments else None
    for segment in segments:
        try:
            yield from process_segment(segment, settings, encoder, detector, tally.failures)
            tally.ok += 1
        except SegmentFailure as failure:
            tally.failures.append(failure_record(segment, failure.reason, failure.detail))
        except Speech2FaceError as error:  # a model or data problem the checks above did not foresee
            tally.failures.append(failure_record(segment, "error", str(error)))


# ---------------------------------------------------------------------------------------------------
# a run

def manifest_digest(segments: list[Segment] | list[Photo]) -> str:
    digest = hashlib.sha256()
    for segment in segments:
        digest.update(json.dumps(asdict(segment), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def prepare(segments: list[Segment] | list[Photo], out: str | Path, settings: PrepareSettings | None = None, *,
            workers: int = 1, shard_id: int = 0, num_shards: int = 1, progress: bool = True,
            synthetic: bool = False, engine: str = "local", address: str | None = None,
            gpus_per_task: float | None = 0.0) -> dict:
    """Turn segments into shards under `out/shards`; resumable; returns this node's summary (also
    written to `out/summary-<node>.json`; every failure of every finished shard in `out/failures.jsonl`).
    `synthetic`: the videos come from `s2f synth` (recorded, so that every later report says so).
    `engine`: 'local' (`workers` processes on this machine) or 'ray' (a Ray task per shard, see
    ray_engine.py: on the cluster at `address`, else a local instance of `workers` CPUs; `gpus_per_task`
    None: a share of a GPU where the cluster has GPUs); the same shards."""
    settings = settings or PrepareSettings()
    settings.check()
    check_engine(engine)
    if (gpus_per_task is not None and gpus_per_task < 0) or workers < 1:
        raise DataError("--workers must be at least 1 and --gpus-per-task not negative")
    out = Path(out)
    header = {"format_version": FORMAT_VERSION, "settings": asdict(settings), "num_shards": num_shards,
              "segments": len(segments), "manifest": manifest_digest(segments), "synthetic": synthetic}
    claim_folder(out, PREPARE_HEADER, header, "prepared shards", _ours)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    remove_temp_files(out, shard_id)  # this node's leftovers of a killed run
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
    with ExitStack() as stack:
        if engine == "ray" and todo:
            stack.enter_context(ray_session(address, workers))
            finished = run_on_ray(process_shard, todo, settings, out, 1, gpus_per_task=gpus_per_task)
        else:
            finished = run_locally(todo, settings, out, workers)
        for job, _ in finished:
            bar.update(len(job.segments))
    bar.close()
    remove_temp_files(out, shard_id)  # what killed Ray attempts left (every writer of them has finished)
    return summarize(out, jobs, shard_id, time.perf_counter() - start)


def remove_temp_files(out: Path, shard_id: int) -> None:
    """The temporary files of this node's shards (other nodes sharing `out` have other shard ids)."""
    for stale in (out / "shards").glob(f".*-{shard_id:03d}-*.tmp"):
        stale.unlink(missing_ok=True)


def run_locally(jobs: list[ShardJob], settings: PrepareSettings, out: Path, workers: int,
                ) -> Iterator[tuple[ShardJob, dict]]:
    """Every job's shard, in this process (one worker) or in a pool of `workers` processes; yields each
    job and its stats as its shard is written."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        for job in jobs:
            yield job, process_shard(job, settings, out)
        return
    context = multiprocessing.get_context("spawn")  # safe with torch and CUDA in the parent
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(process_shard, job, settings, out, 1): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


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

