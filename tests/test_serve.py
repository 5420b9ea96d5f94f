"""`s2f serve` as a real server process: a real browser uploads a voice, 50 concurrent clients, limits."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TERMS, write_wav

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    temp = tmp_path_factory.mktemp("serve_tmp")
    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--model", str(tiny_model), "--port",
                                str(port), "--max-upload-mb", "1", "--max-seconds", "40", "--device", "cpu"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"server did not start: {process.stdout.read()[-2000:]}") from None
            time.sleep(0.5)
    yield {"url": url, "pid": process.pid, "temp": temp, "port": port}
    process.terminate()
    process.wait(timeout=30)


def uploaded_audio(temp: Path) -> list[Path]:
    return [p for p in temp.rglob("*") if p.is_file() and p.suffix.lower() in (".wav", ".mp3", ".flac", ".txt")]


def test_binds_loopback_only(server: dict[str, object]) -> None:
    """The kernel's table of listening TCP sockets: the server's port is bound to 127.0.0.1 alone."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) == server["port"]:
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex; no 0.0.0.0, no IPv6 any


@contextlib.contextmanager
def browser_page(url: str) -> Iterator[object]:
    """A page of headless Chromium (Playwright) on `url`, the draw button ready."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium (apt-get install chromium)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#draw")
        yield page
        browser.close()


FACES_SHOWN = ("(n) => document.querySelectorAll('#face img').length === n && [...document.querySelectorAll("
               "'#face img')].every(i => i.complete && i.naturalWidth > 0)")


def test_a_browser_uploads_a_voice_and_sees_a_face(server: dict[str, object], spoken: dict[str, Path]) -> None:
    with browser_page(str(server["url"])) as page:
        assert "SYNTHETIC MODEL" in page.inner_text("body") and TINY_TERMS in page.inner_text("body")
        page.locator("#voice input[type=file]").set_input_files(str(spoken["short"]))
        page.wait_for_selector("#voice audio, #voice .waveform-container, #voice button", timeout=20_000)
        page.click("#draw")
        page.wait_for_function(FACES_SHOWN, arg=1, timeout=60_000)
        width = page.evaluate("document.querySelector('#face img').naturalWidth")
        details = page.inner_text("#details")
    assert width == 64 and "voiced_seconds" in details
    assert uploaded_audio(server["temp"]) == []  # the upload is gone once answered


def test_the_examples_answer_and_refuse_without_an_upload(server: dict[str, object]) -> None:
    """Real recorded voices (a conversation: two faces) and music (refused, one line), one click each."""
    with browser_page(str(server["url"])) as page:
        assert "SYNTHETIC MODEL" in page.inner_text("body") and "a real recorded voice" in page.inner_text("body")
        page.click("#example-conversation")
        page.wait_for_function(FACES_SHOWN, arg=2, timeout=60_000)
        assert "speaker2" in page.inner_text("#details")
        page.click("#example-music")
        page.wait_for_function("() => document.querySelector('#face').innerText.includes('No face from this "
                               "recording') && document.querySelector('#face').innerText.includes('no speech found')",
                               timeout=60_000)
        assert "Traceback" not in page.inner_text("body") and "SYNTHETIC MODEL" in page.inner_text("body")
    assert uploaded_audio(server["temp"]) == []


def test_fifty_concurrent_requests_all_succeed_in_bounded_memory(server: dict[str, object],
                                                                   spoken: dict[str, Path], tmp_path: Path) -> None:
    """50 different recordings at once, then 50 copies of one (Gradio stores identical uploads at one path), from 50
    visitors, each a gradio_client session of its own as a browser tab is (one Client shared by 50 threads loses a
    request now and then inside the client library: benchmarks/serve_load.py says how that was found)."""
    from speech2face import load_audio

    speech = load_audio(spoken["short"])
    voices = [write_wav(tmp_path / f"{i}.wav", (speech * (0.3 + i / 80) * 32767).astype(np.int16), 16_000)
              for i in range(50)]
    gradio_client.Client(str(server["url"]), verbose=False).predict(gradio_client.handle_file(str(voices[0])),
                                                                    api_name="/predict")  # warm up
    before = rss_mb(int(server["pid"]))
    visitors = threading.local()

    def one(voice: Path) -> dict:
        if not hasattr(visitors, "client"):
            visitors.client = gradio_client.Client(str(server["url"]), verbose=False)
        page, details = visitors.client.predict(gradio_client.handle_file(str(voice)), api_name="/predict")
        assert page.count("data:image/png;base64,") == 1
        return details

    with ThreadPoolExecutor(50) as pool:
        for batch in (voices, [voices[1]] * 50):
            started = time.perf_counter()
            results = list(pool.map(one, batch))
            elapsed = time.perf_counter() - started
            print(f"50 concurrent requests in {elapsed:.1f} s ({50 / elapsed:.1f}/s)")
            assert len(results) == 50 and all(r["windows"] == 1 for r in results)
    after = rss_mb(int(server["pid"]))
    print(f"server RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < 200
    assert uploaded_audio(server["temp"]) == []


def test_the_load_test_runs_without_a_failure(tiny_model: Path) -> None:
    """benchmarks/serve_load.py, small: 4 visitors, 24 requests (half one shared recording), a slow upload and one
    cut off halfway: every request answered, the server alive, no uploaded recording left on disk."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "serve_load.py"
    result = subprocess.run([sys.executable, str(script), "--model", str(tiny_model), "--clients", "4", "--requests",
                             "24", "--seconds", "120"], capture_output=True, text=True, timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ": 0 failures;" in result.stdout and "alive after: True" in result.stdout
    assert "uploaded recordings left on disk: 0" in result.stdout


def test_two_speakers_get_two_faces(server: dict[str, object], tmp_path: Path,
                                    two_speakers: tuple[bytes, list[tuple[float, float, str]]]) -> None:
    """A real 30 s conversation (pyannote.audio's sample): a face per speaker, with their turns."""
    from speech2face import load_audio

    talk = write_wav(tmp_path / "talk.wav", (load_audio(two_speakers[0]) * 32767).astype(np.int16), 16_000)
    client = gradio_client.Client(str(server["url"]), verbose=False)
    page, details = client.predict(gradio_client.handle_file(str(talk)), api_name="/predict")
    assert page.count("data:image/png;base64,") == 2 and "speaker2" in page
    assert [s["label"] for s in details["speakers"]] == ["speaker1", "speaker2"]
    assert all(s["voiced_seconds"] > 3 and s["turns"] for s in details["speakers"])


def test_bad_uploads_get_one_line_and_the_limits_hold(server: dict[str, object], tmp_path: Path) -> None:
    client = gradio_client.Client(str(server["url"]), verbose=False)

    def refusal(path: Path) -> str:
        page, details = client.predict(gradio_client.handle_file(str(path)), api_name="/predict")
        assert "No face from this recording" in page and "<img" not in page
        return details["refused"]

    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    reason = refusal(text)
    assert "not a readable audio" in reason and "Traceback" not in reason and str(text) not in reason
    assert reason.startswith("the recording: ") and "bytes>" not in reason
    silence = write_wav(tmp_path / "silence.wav", np.zeros(32_000, np.int16), 16_000)
    assert "no speech found" in refusal(silence)
    long = write_wav(tmp_path / "long.wav", np.zeros(8_000 * 45, np.int16), 8_000)  # 45 s > 40 s, < 1 MB
    assert "longer than 40 s" in refusal(long)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 << 20))  # 2 MB > the 1 MB cap
    request = urllib.request.Request(f"{server['url']}gradio_api/upload", method="POST",
                                     data=b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.wav\""
                                          b"\r\n\r\n" + big.read_bytes() + b"\r\n--x--\r\n",
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    with pytest.raises(urllib.error.HTTPError) as too_big:
        urllib.request.urlopen(request, timeout=30)
    assert too_big.value.code == 413
    assert uploaded_audio(server["temp"]) == []
