"""`download`: fetch the speech segments of an AVSpeech CSV with yt-dlp (for users with internet access).

AVSpeech segments last 3-10 s in videos that run for minutes, so by default only the SECTIONS are fetched:
each segment widened by `margin` seconds on both sides, overlapping or touching ones of a video merged,
each section cut by ffmpeg (through yt-dlp's download ranges: a seek with HTTP range requests and a stream
copy, no re-encoding) into `<ytid>+<start ms>-<end ms>.<ext>`. In that file time 0 is the section's start up
to a packet: the audio is the whole video's shifted by 0-144 ms and the frames are the whole video's or their
neighbours (measured in tests/test_download.py; the margin keeps the segment inside). `manifests.read_avspeech`
maps each CSV row to the section that holds it. `whole_videos=True` fetches `<ytid>.<ext>` instead.

Parallel and polite: `workers` threads fetch different videos (or, with `engine='ray'`, a Ray task per video
anywhere in a cluster); every request to one host waits for the host's turn (`sleep` seconds between
requests, all workers together: one HostLimiter, in a Ray actor on a cluster) and `rate_limit` caps the
host's average bandwidth across workers. Resumable: a file already in the folder (complete: yt-dlp writes
`.part` files first and renames them) is not fetched again. Every failure is appended to `download_failures.jsonl`
(ytid, url, reason, the sections still missing, time) and the run goes on; a rerun tries them again.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from ..errors import DataError
from .manifests import VIDEO_SUFFIXES, section_stem
from .ray_engine import check_engine, ray_actor, ray_session, run_on_ray

YOUTUBE = "https://www.youtube.com/watch?v={ytid}"
FAILURES = "download_failures.jsonl"

Span = tuple[float, float]


@dataclass(frozen=True)
class DownloadSettings:
    url_template: str = YOUTUBE
    rate_limit: str | None = None  # bytes per second per host, all workers together, yt-dlp style: "500K", "2M"
    sleep: float = 1.0  # seconds between two requests to one host (all workers together)
    retries: int = 3
    max_height: int = 720  # video quality cap: faces need no more
    margin: float = 0.5  # seconds kept on each side of a segment
    whole_videos: bool = False  # fetch whole videos instead of the segments' sections
    workers: int = 4  # videos fetched at once

    def check(self) -> None:
        if "{ytid}" not in self.url_template:
            raise DataError(f"--url-template must contain {{ytid}}, got {self.url_template!r}")
        if self.workers < 1 or self.retries < 0 or self.max_height < 1:
            raise DataError("--workers and --max-height must be at least 1, --retries at least 0")
        if not (math.isfinite(self.margin) and self.margin >= 0 and math.isfinite(self.sleep) and self.sleep >= 0):
            raise DataError("--margin and --sleep must be finite and not negative")
        parse_rate(self.rate_limit)


def segments_of(csv_path: str | Path) -> dict[str, list[Span]]:
    """ytid -> its segments (start, end), for the usable rows of an AVSpeech CSV, videos in order of first
    appearance (rows `read_avspeech` would refuse are left to it to record)."""
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    spans: dict[str, list[Span]] = {}
    with path.open(newline="", errors="replace") as handle:
        for row in csv.reader(handle):
            if len(row) != 5 or not row[0].strip():
                continue
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                continue
            if math.isfinite(start) and math.isfinite(end) and 0 <= start < end:
                spans.setdefault(row[0].strip(), []).append((start, end))
    return spans


def ytids_of(csv_path: str | Path) -> list[str]:
    """The distinct ytids of an AVSpeech CSV, in order of first appearance."""
    return list(segments_of(csv_path))


def sections(spans: list[Span], margin: float) -> list[Span]:
    """Segments widened by `margin` (not before 0), overlapping or touching ones merged; in ms steps."""
    widened = sorted((max(0.0, start - margin), end + margin) for start, end in spans)
    merged: list[list[float]] = []
    for start, end in widened:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    # float noise (10.3 - 0.5 = 9.8000000000000007) must not cost a millisecond
    return [(math.floor(round(start * 1000, 6)) / 1000, math.ceil(round(end * 1000, 6)) / 1000)
            for start, end in merged]


def finished_file(folder: Path, stem: str) -> Path | None:
    """`folder/<stem>.<a video suffix>` if it is there (yt-dlp's temporary names never match exactly)."""
    for suffix in VIDEO_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def have_video(folder: Path, ytid: str) -> bool:
    return finished_file(folder, ytid) is not None


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def parse_rate(text: str | None) -> float | None:
    """'500K' / '2M' / '1000' -> bytes per second."""
    if not text:
        return None
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    try:
        rate = float(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else float(text)
    except ValueError as error:
        raise DataError(f"bad rate limit {text!r}: use e.g. 500K or 2M") from error
    if not (math.isfinite(rate) and rate > 0):
        raise DataError(f"bad rate limit {text!r}: it must be positive")
    return rate


class HostLimiter:
    """Turns for the workers on each host: a request starts `sleep` s after the host's previous one, and
    after the bytes a download brought (`charge`), the host rests until its average is back under `rate`."""

    def __init__(self, sleep: float, rate: float | None) -> None:
        self.sleep, self.rate = sleep, rate
        self.next_start: dict[str, float] = defaultdict(float)
        self.lock = threading.Lock()

    def reserve(self, host: str) -> float:
        """Take the next turn on `host`: the seconds to wait for it."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start[host])
            self.next_start[host] = start + self.sleep
        return start - now

    def wait(self, host: str) -> None:
        time.sleep(self.reserve(host))

    def charge(self, host: str, size: int) -> None:
        if self.rate:
            with self.lock:
                self.next_start[host] = max(self.next_start[host], time.monotonic()) + size / self.rate


class SharedTurns:
    """A HostLimiter for tasks on many machines: the limiter lives in one Ray actor, every task asks it."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def wait(self, host: str) -> None:
        import ray

        time.sleep(ray.get(self.actor.reserve.remote(host)))

    def charge(self, host: str, size: int) -> None:
        import ray

        ray.get(self.actor.charge.remote(host, size))


@dataclass(frozen=True)
class VideoJob:
    """One video to fetch: its ytid (`name`) and its segments."""

    name: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Fetched:
    """What one video's fetch did: files written, the bytes written, and why it failed."""

    ytid: str
    url: str
    written: int = 0
    size: int = 0
    reason: str | None = None
    missing: tuple[Span, ...] = ()


def download(csv_path: str | Path, out: str | Path, settings: DownloadSettings | None = None,
             progress: bool = True, *, engine: str = "local", address: str | None = None) -> dict[str, int]:
    """Fetch the sections (or whole videos) of the CSV into `out`; returns counts: videos downloaded /
    skipped (all there) / failed, files written, and the bytes written. `engine` 'local': `workers`
    threads; 'ray': a Ray task per video (see ray_engine.py; on the cluster at `address`, else a local
    instance of `workers` CPUs), the per-host turns shared through one actor, `out` on shared storage."""
    try:
        import yt_dlp  # noqa: F401 (checked here: the workers import it too)
    except ImportError as error:
        raise DataError("yt-dlp is not installed: pip install 'speech2face[download]'") from error
    settings = settings or DownloadSettings()
    settings.check()
    check_engine(engine)
    if not settings.whole_videos and shutil.which("ffmpeg") is None:
        raise DataError("cutting sections needs ffmpeg on the PATH (apt-get install ffmpeg), or use --whole-videos")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [VideoJob(ytid, tuple(spans)) for ytid, spans in segments_of(csv_path).items()]
    counts = {"downloaded": 0, "skipped": 0, "failed": 0, "files": 0, "bytes": 0}
    with ExitStack() as stack, (out / FAILURES).open("a") as failures:
        if engine == "ray" and jobs:
            stack.enter_context(ray_session(address, settings.workers))
            turns = SharedTurns(ray_actor(HostLimiter, settings.sleep, parse_rate(settings.rate_limit)))
            results = (fetched for _, fetched in run_on_ray(fetch_video, jobs, out, settings, turns))
        else:
            results = _in_threads(jobs, out, settings, HostLimiter(settings.sleep, parse_rate(settings.rate_limit)))
        for fetched in tqdm(results, total=len(jobs), desc="download", unit="video", disable=not progress):
            _count(fetched, counts, failures)
    return counts


def _in_threads(jobs: list[VideoJob], out: Path, settings: DownloadSettings,
                limiter: HostLimiter) -> Iterator[Fetched]:
    pool = ThreadPoolExecutor(settings.workers)
    try:
        futures = [pool.submit(fetch_video, job, out, settings, limiter) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:  # after Ctrl-C: the videos under way finish (their files stay whole), no new one starts
        pool.shutdown(wait=False, cancel_futures=True)


def _count(fetched: Fetched, counts: dict[str, int], failures: TextIO) -> None:
    counts["files"] += fetched.written
    counts["bytes"] += fetched.size
    if fetched.reason is not None:
        counts["failed"] += 1
        failures.write(json.dumps({"ytid": fetched.ytid, "url": fetched.url, "reason": fetched.reason,
                                   "missing": [list(span) for span in fetched.missing],
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        failures.flush()
    elif fetched.written:
        counts["downloaded"] += 1
    else:
        counts["skipped"] += 1


def fetch_video(job: VideoJob, out: Path, settings: DownloadSettings, limiter: HostLimiter | SharedTurns,
                ) -> Fetched:
    """One video's sections (or the whole video) into `out`; never raises for a download problem."""
    import yt_dlp

    ytid = job.name
    url = settings.url_template.format(ytid=ytid)
    wanted = [(0.0, math.inf)] if settings.whole_videos else sections(list(job.spans), settings.margin)
    names = [ytid] if settings.whole_videos else [section_stem(ytid, *span) for span in wanted]
    todo = [index for index, name in enumerate(names) if finished_file(out, name) is None]
    if not todo:
        return Fetched(ytid, url)
    host = urllib.parse.urlsplit(url).netloc
    options = _options(out, settings, [wanted[i] for i in todo], [names[i] for i in todo])
    limiter.wait(host)
    reason = None
    try:
        with yt_dlp.YoutubeDL(options) as downloader:
            info = downloader.extract_info(url, download=False)
            info["id"] = ytid  # name the file by the CSV's id, whatever the site calls it
            limiter.wait(host)
            downloader.process_ie_result(info, download=True)
    except yt_dlp.utils.YoutubeDLError as error:
        reason = str(error).replace("ERROR: ", "").strip().splitlines()[0][:300] or type(error).__name__
    finished = {i: finished_file(out, names[i]) for i in todo}
    for i, path in finished.items():
        if path is None:  # a cut that failed half-way leaves <name>.mp4.part, <name>.temp.mp4 and the like
            for leftover in out.glob(f"{_glob_escape(names[i])}.*"):
                leftover.unlink(missing_ok=True)
    done = [i for i, path in finished.items() if path is not None]
    size = sum(path.stat().st_size for path in finished.values() if path is not None)
    limiter.charge(host, size)
    missing = tuple(wanted[i] for i in todo if i not in done and not settings.whole_videos)
    if reason is None and len(done) < len(todo):  # yt-dlp said nothing, yet a file is not there
        reason = "no file was written"
    return Fetched(ytid, url, written=len(done), size=size,
                   reason=reason, missing=missing)


def _options(out: Path, settings: DownloadSettings, spans: list[Span], names: list[str]) -> dict[str, Any]:
    rate = parse_rate(settings.rate_limit)
    height = settings.max_height
    options: dict[str, Any] = {
        "quiet": True, "no_warnings": True, "noprogress": True, "retries": settings.retries, "noplaylist": True,
        "ratelimit": rate / settings.workers if rate else None,  # the limiter keeps the host's average
        "format": f"bestvideo[height<={height}]+bestaudio/best[height<={height}]/best",
        "merge_output_format": "mp4", "logger": _Silent(),
    }
    if settings.whole_videos:
        options["outtmpl"] = str(out / "%(id)s.%(ext)s")
    else:
        ranges = [{"start_time": start, "end_time": end, "title": name}
                  for (start, end), name in zip(spans, names, strict=True)]
        options["outtmpl"] = str(out / "%(section_title)s.%(ext)s")
        options["download_ranges"] = lambda info, downloader: ranges
    return options


class _Silent:
    """yt-dlp logger that keeps its messages out of the progress bar (failures are recorded instead)."""

    def debug(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass
