"""`s2f download` against a local HTTP server on 127.0.0.1 serving generated videos."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from speech2face.cli import main
from speech2face.data.download import DownloadSettings, download, parse_rate
from speech2face.synth import WorldSettings, make_world


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    """http://127.0.0.1:PORT/<name>.mp4 for the clips of a one-identity world; the request paths seen."""
    world = make_world(tmp_path_factory.mktemp("world") / "w", WorldSettings(identities=1, clips=2, seed=5),
                       workers=1, progress=False)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(world / "videos"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{ytid}}.mp4", world, requests
    httpd.shutdown()


def test_downloads_resumes_and_records_failures(server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    template, world, requests = server
    (tmp_path / "avspeech.csv").write_text(
        "syn00000_00,0,2,0.5,0.5\nsyn00000_00,2,4,0.5,0.5\nsyn00000_01,0,2,0.5,0.5\nnot_there,0,2,0.5,0.5\n")
    settings = DownloadSettings(url_template=template, sleep=0.0, retries=0, rate_limit="10M")
    out = tmp_path / "videos"
    counts = download(tmp_path / "avspeech.csv", out, settings, progress=False)
    assert counts == {"downloaded": 2, "skipped": 0, "failed": 1}
    for name in ("syn00000_00", "syn00000_01"):
        assert (out / f"{name}.mp4").read_bytes() == (world / "videos" / f"{name}.mp4").read_bytes()
    failure = json.loads((out / "download_failures.jsonl").read_text().splitlines()[0])
    assert failure["ytid"] == "not_there" and "404" in failure["reason"]
    before = len(requests)
    counts = download(tmp_path / "avspeech.csv", out, settings, progress=False)
    assert counts == {"downloaded": 0, "skipped": 2, "failed": 1}
    assert all("not_there" in path for path in requests[before:])  # finished videos are not fetched again


def test_cli_and_bad_settings(server: tuple[str, Path, list[str]], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    template, _, _ = server
    (tmp_path / "a.csv").write_text("syn00000_01,0,2,0.5,0.5\n")
    assert main(["download", "--avspeech", str(tmp_path / "a.csv"), "--out", str(tmp_path / "v"),
                 "--url-template", template, "--sleep", "0", "-q"]) == 0
    assert "1 downloaded, 0 already there, 0 failed" in capsys.readouterr().out
    assert main(["download", "--avspeech", str(tmp_path / "a.csv"), "--out", str(tmp_path / "v"),
                 "--url-template", "http://127.0.0.1/no-placeholder"]) == 2
    assert "must contain {ytid}" in capsys.readouterr().err
    assert parse_rate("500K") == 500_000 and parse_rate("2M") == 2_000_000 and parse_rate(None) is None
