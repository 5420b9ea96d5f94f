"""`s2f download`: bytes and seconds per hour of speech segments, sections vs whole videos (the baseline, run
in the same process), from a local HTTP server that honours range requests as video sites do.

    python benchmarks/download.py [--minutes 10] [--videos 2] [--segments 8] [--height 360] [--workers 2]

The videos are generated (a moving test pattern with noise and a tone, H.264 at a YouTube-like bitrate,
a keyframe every 2 s, AAC 44.1 kHz); each gets `--segments` AVSpeech-like segments of 3-10 s at random
times (AVSpeech: ~290 k videos, 4,700 h of segments, ~1 min of segments per video). "Bytes" are what the
server sent, counting data in flight when ffmpeg closes a connection after a seek (its send buffer is
64 KB); the requests are listed. Seconds are wall-clock on this machine with a server that is not
bandwidth-limited: the saving on a real link follows the bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speech2face.data.download import DownloadSettings, download, sections

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from range_server import range_server  # a test helper, found beside the tests


def make_video(path: Path, minutes: float, height: int) -> None:
    width = height * 16 // 9 // 2 * 2
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={width}x{height}:rate=25,noise=alls=12:allf=t", "-f", "lavfi", "-i",
                    "sine=frequency=300:sample_rate=44100", "-t", str(minutes * 60), "-c:v", "libx264",
                    "-preset", "ultrafast", "-b:v", f"{height * 3}k", "-g", "50", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--segments", type=int, default=8, help="segments per video")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--margin", type=float, default=DownloadSettings.margin)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "site").mkdir()
        rows = []
        for index in range(args.videos):
            make_video(root / "site" / f"video{index}.mp4", args.minutes, args.height)
            for _ in range(args.segments):
                length = rng.uniform(3, 10)
                start = rng.uniform(0, args.minutes * 60 - length)
                rows.append(f"video{index},{start:.3f},{start + length:.3f},0.5,0.5\n")
        (root / "avspeech.csv").write_text("".join(rows))
        speech = sum(float(r.split(",")[2]) - float(r.split(",")[1]) for r in rows)
        video_bytes = sum(p.stat().st_size for p in (root / "site").glob("*.mp4"))
        by_video: dict[str, list[tuple[float, float]]] = {}
        for row in rows:
            ytid, start, end = row.split(",")[:3]
            by_video.setdefault(ytid, []).append((float(start), float(end)))
        kept = sum(b - a for spans in by_video.values() for a, b in sections(spans, args.margin))
        print(f"{args.videos} videos x {args.minutes:g} min at {args.height}p ({video_bytes / 1e6:.1f} MB), "
              f"{len(rows)} segments = {speech:.0f} s of speech; sections ask for {kept:.0f} s "
              f"(margin {args.margin} s); {args.workers} workers")
        with range_server(root / "site") as (template, served):
            results = {}
            for whole in (True, False):
                settings = DownloadSettings(url_template=template, sleep=0.0, retries=0, whole_videos=whole,
                                            workers=args.workers, margin=args.margin)
                before, requests = served.bytes_sent, len(served.requests)
                began = time.perf_counter()
                counts = download(root / "avspeech.csv", root / ("whole" if whole else "sections"), settings,
                                  progress=False)
                seconds = time.perf_counter() - began
                assert counts["failed"] == 0, counts
                sent = served.bytes_sent - before
                results[whole] = (sent, seconds)
                per_hour = 3600 / speech
                print(f"{'whole videos' if whole else 'sections':>12}: {sent / 1e6:8.1f} MB sent in "
                      f"{len(served.requests) - requests:3d} requests, {counts['bytes'] / 1e6:7.1f} MB on disk, "
                      f"{seconds:6.1f} s -> per hour of segments {sent * per_hour / 1e9:6.2f} GB, "
                      f"{seconds * per_hour / 60:6.1f} min")
        (whole_bytes, whole_seconds), (cut_bytes, cut_seconds) = results[True], results[False]
        print(f"sections vs whole videos: {whole_bytes / cut_bytes:.1f}x fewer bytes, "
              f"{whole_seconds / cut_seconds:.1f}x less time")


if __name__ == "__main__":
    main()
