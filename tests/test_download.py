"""`s2f download` against a local HTTP server on 127.0.0.1 that honours range requests (as video sites do),
serving talking-face videos of the synthetic world: sections vs whole videos, resumption, a video that
disappears mid-run, the per-host turns, and `prepare` on the sections against prepare on the whole video."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import speech2face as s2f
from conftest import TALK
from range_server import Served
from speech2face.cli import main
from speech2face.data import PrepareSettings, manifests, prepare
from speech2face.data.download import DownloadSettings, HostLimiter, download, parse_rate, sections
from speech2face.data.media import media_duration
from test_prepare import samples_of


def same_sound(a: np.ndarray, b: np.ndarray, most: int = 3200) -> bool:
    """Whether b is a, shifted by at most `most` samples (brute force over every shift)."""
    middle = slice(most, min(len(a), len(b)) - most)
    shift = min(range(-most, most + 1), key=lambda k: np.abs(a[middle] - np.roll(b, -k)[middle]).mean())
    print(f"shift {shift} samples")
    return bool(np.abs(a[middle] - np.roll(b, -shift)[middle]).max() < 1e-3)


def test_sections_widen_merge_and_stop_at_zero() -> None:
    assert sections([(0.2, 3.0), (2.5, 6.0), (20.0, 26.0), (26.8, 27.0)], 0.5) == [(0.0, 6.5), (19.5, 27.5)]
    assert sections([(4.35, 7.1), (8.3504, 9.1006)], 0.0) == [(4.35, 7.1), (8.35, 9.101)]  # whole ms, never narrower
    assert sections([], 1.0) == []


def test_sections_hold_the_segments_exactly_and_prepare_agrees_with_whole_videos(
        site: tuple[str, Served, Path], tmp_path: Path) -> None:
    template, _, videos = site
    length = media_duration(videos / f"{TALK}.mp4")
    rows = [(1.2, 4.0), (3.5, 6.3), (10.3, 13.9), (length - 3.4, length - 0.4)]  # merged, alone, near the end
    csv_path = tmp_path / "avspeech.csv"
    csv_path.write_text("".join(f"{TALK},{a:.3f},{b:.3f},0.5,0.5\n" for a, b in rows))
    settings = DownloadSettings(url_template=template, sleep=0.0, retries=0, margin=0.5, workers=2)
    counts = download(csv_path, tmp_path / "sections", settings, progress=False)
    assert counts["downloaded"] == 1 and counts["files"] == 3 and counts["failed"] == 0
    names = sorted(p.name for p in (tmp_path / "sections").glob("*.mp4"))
    assert names == sorted(f"{TALK}+{round(a * 1000)}-{round(b * 1000)}.mp4"
                           for a, b in sections(rows, 0.5))
    last = max((tmp_path / "sections").glob("*.mp4"), key=lambda p: int(p.stem.split("+")[1].split("-")[0]))
    assert abs(media_duration(last) - 3.9) < 0.15  # the video ended before the section's margin did
    # the audio of a section is the whole video's, sample for sample, shifted by at most 0.2 s: ffmpeg's cut
    # without re-encoding starts at a packet (shifts of 0, 48 and 144 ms are seen here)
    whole = s2f.load_audio(videos / f"{TALK}.mp4", offset=10.5, duration=3.0)
    cut = s2f.load_audio(tmp_path / "sections" / f"{TALK}+9800-14400.mp4", offset=0.7, duration=3.0)
    assert same_sound(whole, cut)
    # prepare reads the sections as it reads the whole video: same keys, same speech, the same faces
    by_sections = manifests.read_avspeech(csv_path, tmp_path / "sections")
    assert all(s.error is None and "+" in Path(s.source).name for s in by_sections)
    by_whole = manifests.read_avspeech(csv_path, videos)
    settings = PrepareSettings(shard_size=10, val=0.0, test=0.0)
    prepare(by_sections, tmp_path / "p-sections", settings, progress=False)
    prepare(by_whole, tmp_path / "p-whole", settings, progress=False)
    a, b = samples_of(tmp_path / "p-sections"), samples_of(tmp_path / "p-whole")
    assert sorted(a) == sorted(b) and len(a) == 4
    for key in a:
        assert same_sound(s2f.load_audio(a[key]["audio"]), s2f.load_audio(b[key]["audio"]))
        assert np.linalg.norm(a[key]["feature"] - b[key]["feature"]) < 0.05  # frames within one frame
        assert np.abs(a[key]["landmarks"] - b[key]["landmarks"]).max() < 6  # px of 224: a neighbouring frame


def test_a_video_that_disappears_mid_run_keeps_its_finished_sections(site: tuple[str, Served, Path],
                                                                      tmp_path: Path) -> None:
    template, served, videos = site
    out = tmp_path / "sections"
    (videos / "vanish.mp4").write_bytes((videos / f"{TALK}.mp4").read_bytes())
    csv_path = tmp_path / "avspeech.csv"
    csv_path.write_text("vanish,1.0,4.0,0.5,0.5\nvanish,12.0,15.0,0.5,0.5\n")
    served.vanish_when["vanish.mp4"] = lambda: any(out.glob("vanish+*.mp4"))  # gone once one section is in
    settings = DownloadSettings(url_template=template, sleep=0.0, retries=0)
    counts = download(csv_path, out, settings, progress=False)
    assert counts["failed"] == 1 and counts["files"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["download_failures.jsonl", "vanish+500-4500.mp4"]  # no debris
    assert abs(media_duration(out / "vanish+500-4500.mp4") - 4.0) < 0.15
    failure = json.loads((out / "download_failures.jsonl").read_text())
    assert failure["ytid"] == "vanish" and failure["missing"] == [[11.5, 15.5]] and failure["reason"]
    segments = manifests.read_avspeech(csv_path, out)
    assert segments[0].error is None and segments[1].error.startswith("missing-file")
    # the video is back: a rerun fetches only the missing section
    served.vanish_when.clear()
    served.gone.discard("vanish.mp4")
    counts = download(csv_path, out, settings, progress=False)
    assert counts["downloaded"] == 1 and counts["files"] == 1 and counts["failed"] == 0
    assert all(s.error is None for s in manifests.read_avspeech(csv_path, out))
    before = len(served.requests)
    assert download(csv_path, out, settings, progress=False)["skipped"] == 1
    assert len(served.requests) == before  # nothing is asked for once everything is there


def test_whole_videos_resume_and_record_failures(site: tuple[str, Served, Path], tmp_path: Path) -> None:
    template, served, videos = site
    (tmp_path / "avspeech.csv").write_text(
        "syn00000_00,0,2,0.5,0.5\nsyn00000_00,2,4,0.5,0.5\nsyn00000_01,0,2,0.5,0.5\nnot_there,0,2,0.5,0.5\n")
    settings = DownloadSettings(url_template=template, sleep=0.0, retries=0, rate_limit="50M", whole_videos=True,
                                workers=3)
    out = tmp_path / "videos"
    counts = download(tmp_path / "avspeech.csv", out, settings, progress=False)
    assert (counts["downloaded"], counts["skipped"], counts["failed"], counts["files"]) == (2, 0, 1, 2)
    for name in ("syn00000_00", "syn00000_01"):
        assert (out / f"{name}.mp4").read_bytes() == (videos / f"{name}.mp4").read_bytes()
    failure = json.loads((out / "download_failures.jsonl").read_text().splitlines()[0])
    assert failure["ytid"] == "not_there" and "404" in failure["reason"]
    before = len(served.requests)
    counts = download(tmp_path / "avspeech.csv", out, settings, progress=False)
    assert (counts["downloaded"], counts["skipped"], counts["failed"]) == (0, 2, 1)
    assert all("not_there" in path for path in served.requests[before:])  # finished videos are not fetched again


def test_a_host_gets_turns_and_its_bandwidth_across_workers() -> None:
    limiter = HostLimiter(sleep=0.2, rate=1e6)
    starts: list[float] = []

    def request() -> None:
        limiter.wait("example.org")
        starts.append(time.monotonic())

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gaps = np.diff(sorted(starts))
    assert len(gaps) == 3 and gaps.min() > 0.18  # four workers, one request per 0.2 s
    limiter.charge("example.org", 500_000)  # 0.5 MB at 1 MB/s: the host rests 0.5 s more
    began = time.monotonic()
    limiter.wait("example.org")
    assert time.monotonic() - began > 0.45
    began = time.monotonic()
    limiter.wait("other.org")  # another host does not wait
    assert time.monotonic() - began < 0.1


def test_cli_and_bad_settings(site: tuple[str, Served, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    template, _, _ = site
    (tmp_path / "a.csv").write_text("syn00000_01,0,2,0.5,0.5\n")
    assert main(["download", "--avspeech", str(tmp_path / "a.csv"), "--out", str(tmp_path / "v"),
                 "--url-template", template, "--sleep", "0", "-q"]) == 0
    assert "1 videos downloaded (1 sections," in capsys.readouterr().out
    assert (tmp_path / "v" / "syn00000_01+0-2500.mp4").is_file()
    for options, message in [(["--url-template", "http://127.0.0.1/no-placeholder"], "must contain {ytid}"),
                             (["--workers", "0"], "--workers"), (["--margin", "-1"], "--margin"),
                             (["--margin", "nan"], "--margin"), (["--rate-limit", "fast"], "bad rate limit"),
                             (["--rate-limit=-2M"], "must be positive"),
                             (["--address", "auto"], "--address needs --engine ray")]:
        assert main(["download", "--avspeech", str(tmp_path / "a.csv"), "--out", str(tmp_path / "w"),
                     *options]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["download", "--avspeech", str(tmp_path / "none.csv"), "--out", str(tmp_path / "w")]) == 2
    assert "no such CSV file" in capsys.readouterr().err
    assert parse_rate("500K") == 500_000 and parse_rate("2M") == 2_000_000 and parse_rate(None) is None


def test_sections_without_ffmpeg_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.csv").write_text("abc,0,2,0.5,0.5\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg there
    assert main(["download", "--avspeech", str(tmp_path / "a.csv"), "--out", str(tmp_path / "v")]) == 2
    assert "needs ffmpeg on the PATH" in capsys.readouterr().err
