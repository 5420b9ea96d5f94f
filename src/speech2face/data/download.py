"""`download`: fetch the videos of an AVSpeech CSV with yt-dlp (for users with internet access).

Resumable: a video already in the folder (`<ytid>.<ext>`, complete: yt-dlp writes `.part` files first and
renames them) is skipped. Polite: `rate_limit` caps the bandwidth and `sleep` waits between videos.
Every failure is appended to `download_failures.jsonl` (ytid, url, reason, time) and the run goes on;
a rerun tries the failed ones again.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from .manifests import VIDEO_SUFFIXES

YOUTUBE = "https://www.youtube.com/watch?v={ytid}"
FAILURES = "download_failures.jsonl"


@dataclass(frozen=True)
class DownloadSettings:
    url_template: str = YOUTUBE
    rate_limit: str | None = None  # bytes per second, yt-dlp style: "500K", "2M"
    sleep: float = 1.0  # seconds between videos
    retries: int = 3
    max_height: int = 720  # video quality cap: faces need no more


def ytids_of(csv_path: str | Path) -> list[str]:
    """The distinct ytids of an AVSpeech CSV, in order of first appearance."""
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    seen: dict[str, None] = {}
    with path.open(newline="", errors="replace") as handle:
        for row in csv.reader(handle):
            if row and row[0].strip() and len(row) == 5:
                seen.setdefault(row[0].strip(), None)
    return list(seen)


def have_video(folder: Path, ytid: str) -> bool:
    return any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.glob(f"{ytid}.*"))


def parse_rate(text: str | None) -> float | None:
    """'500K' / '2M' / '1000' -> bytes per second."""
    if not text:
        return None
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    try:
        return float(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else float(text)
    except ValueError as error:
        raise DataError(f"bad rate limit {text!r}: use e.g. 500K or 2M") from error


def download(csv_path: str | Path, out: str | Path, settings: DownloadSettings | None = None,
             progress: bool = True) -> dict[str, int]:
    """Download every video of the CSV into `out`; returns counts of downloaded / skipped / failed."""
    try:
        import yt_dlp
    except ImportError as error:
        raise DataError("yt-dlp is not installed: pip install 'speech2face[download]'") from error
    settings = settings or DownloadSettings()
    if "{ytid}" not in settings.url_template:
        raise DataError(f"--url-template must contain {{ytid}}, got {settings.url_template!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "outtmpl": str(out / "%(id)s.%(ext)s"), "quiet": True, "no_warnings": True, "noprogress": True,
        "retries": settings.retries, "ratelimit": parse_rate(settings.rate_limit), "noplaylist": True,
        "format": f"bestvideo[height<={settings.max_height}]+bestaudio/best[height<={settings.max_height}]/best",
        "merge_output_format": "mp4", "logger": _Silent(),
    }
    counts = {"downloaded": 0, "skipped": 0, "failed": 0}
    ids = ytids_of(csv_path)
    with yt_dlp.YoutubeDL(options) as downloader, (out / FAILURES).open("a") as failures:
        for index, ytid in enumerate(tqdm(ids, desc="download", unit="video", disable=not progress)):
            if have_video(out, ytid):
                counts["skipped"] += 1
                continue
            url = settings.url_template.format(ytid=ytid)
            try:
                info = downloader.extract_info(url, download=False)
                info["id"] = ytid  # name the file by the CSV's id, whatever the site calls it
                downloader.process_info(info)
                counts["downloaded"] += 1
            except yt_dlp.utils.YoutubeDLError as error:
                reason = str(error).replace("ERROR: ", "").strip().splitlines()[0][:300]
                failures.write(json.dumps({"ytid": ytid, "url": url, "reason": reason,
                                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
                failures.flush()
                counts["failed"] += 1
            if settings.sleep and index < len(ids) - 1:
                time.sleep(settings.sleep)
    return counts


class _Silent:
    """yt-dlp logger that keeps its messages out of the progress bar (failures are recorded instead)."""

    def debug(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass
