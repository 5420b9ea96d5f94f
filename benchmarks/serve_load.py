"""`s2f serve` under load, on loopback: many visitors at once, identical and different uploads, a slow upload and an
upload cut off halfway. Every request must be answered; prints latency percentiles and the server's peak memory.

    python benchmarks/serve_load.py [--model demo] [--clients 20] [--requests 400] [--seconds 600]
    python benchmarks/serve_load.py --bare-gradio 3000        # the client library's race, without speech2face

Each client is a visitor of its own (one gradio_client session, as one browser tab is): one Client shared by many
threads loses a request now and then to the client library itself (its shared event stream can close under a
request just submitted: concurrent.futures.CancelledError; reproduced with a bare Gradio app and no speech2face
at all: 2 of 3000 requests in one run, 0 in another, against 0 of 6000 with a Client per thread: `--bare-gradio
3000`). Half the requests send one recording that every client shares (Gradio stores identical uploads at one
path, which the server deletes once answered), half a recording of their own. Meanwhile a slow visitor trickles
an upload at ~8 KB/s and another cuts an upload off halfway and hangs up. Exit 1 on any failure.
tests/test_serve.py runs a small version.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave as wavefile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

API = "gradio_api"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wav_bytes(wave: np.ndarray, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wavefile.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def recordings(folder: Path, count: int) -> list[Path]:
    """`count` distinct recordings of real-sounding speech (espeak-ng), each at its own level."""
    source = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(source), "The quick brown fox jumps over the lazy dog, then it runs "
                    "far away into the woods."], check=True)
    from speech2face import load_audio

    speech = load_audio(source)
    paths = []
    for index in range(count):
        path = folder / f"visitor{index}.wav"
        path.write_bytes(wav_bytes(speech * (0.3 + 0.6 * index / max(count, 1))))
        paths.append(path)
    return paths


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the process's peak resident set
            return int(line.split()[1]) / 1024
    return float("nan")


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = "s2fload" + os.urandom(8).hex()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


def slow_visitor(port: int, data: bytes, rate: int = 8192) -> str:
    """Upload at `rate` bytes/s (a streamed body), then ask for the face through Gradio's REST API."""
    import httpx

    body, boundary = multipart(data, "slow.wav")

    def trickle() -> Iterator[bytes]:
        for start in range(0, len(body), rate // 4):
            yield body[start:start + rate // 4]
            time.sleep(0.25)

    base = f"http://127.0.0.1:{port}/{API}"
    with httpx.Client(timeout=300) as http:
        uploaded = http.post(f"{base}/upload", content=trickle(),
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        uploaded.raise_for_status()
        event = http.post(f"{base}/call/predict", json={"data": [{"path": uploaded.json()[0],
                                                                  "meta": {"_type": "gradio.FileData"}}]})
        stream = http.get(f"{base}/call/predict/{event.json()['event_id']}").text
    return "ok" if "event: complete" in stream and "data:image/png" in stream else f"slow visitor: {stream[-300:]}"


def cut_off_visitor(port: int, data: bytes) -> str:
    """Start an upload, send half of it, hang up."""
    body, boundary = multipart(data, "cut.wav")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall((f"POST /{API}/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                            f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        connection.sendall(body[:len(body) // 2])
        time.sleep(0.5)
    return "ok"


def run(model: str, clients: int, requests: int, seconds: float, slow: bool, cut_off: bool) -> int:
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="s2f-load-"))
    uploads = work / "server-tmp"
    uploads.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(uploads), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--model", model, "--port", str(port),
                               "--device", "cpu", "--max-upload-mb", "1", "--max-seconds", "40"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"the server did not start: {server.stdout.read()[-2000:] if server.stdout else ''}")
                    return 1
                time.sleep(0.5)
        files = recordings(work, requests)
        shared = files[0]
        local = threading.local()
        started = time.monotonic()

        def visit(index: int) -> tuple[str, float]:
            if time.monotonic() - started > seconds:
                return "not sent: the time bound", 0.0
            if not hasattr(local, "client"):
                local.client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            path = shared if index % 2 == 0 else files[index]
            begin = time.perf_counter()
            try:
                page, _ = local.client.predict(handle_file(str(path)), api_name="/predict")
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown, none is hidden
                return f"{type(error).__name__}: {error}", time.perf_counter() - begin
            return ("ok" if page.count("data:image/png;base64,") == 1 else f"no face: {page[:200]}",
                    time.perf_counter() - begin)

        extra = ThreadPoolExecutor(2)
        side = []
        if slow:
            side.append(("slow upload", extra.submit(slow_visitor, port, files[-1].read_bytes())))
        if cut_off:
            side.append(("upload cut off", extra.submit(cut_off_visitor, port, files[-2].read_bytes())))
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(visit, range(requests)))
        visits = time.monotonic() - started
        side_results = [(name, future.result(timeout=max(60.0, seconds))) for name, future in side]
        extra.shutdown()
        wall = time.monotonic() - started
        failures = [r for r, _ in results if r != "ok"] + [f"{n}: {r}" for n, r in side_results if r != "ok"]
        latencies = np.array([t for r, t in results if r == "ok"])
        alive = server.poll() is None
        peak = peak_rss_mb(server.pid) if alive else float("nan")
        left = [p.name for p in uploads.rglob("*") if p.is_file() and p.suffix == ".wav"]
        print(f"{requests} requests from {clients} concurrent visitors (half one shared recording, half their own)"
              + (", a slow upload" if slow else "") + (", an upload cut off" if cut_off else "")
              + f": {len(failures)} failures; {len(latencies)} answers in {visits:.1f} s "
              f"({len(latencies) / visits:.1f}/s; everything {wall:.1f} s); latency p50 "
              f"{np.percentile(latencies, 50):.2f} s, p95 {np.percentile(latencies, 95):.2f} s, max "
              f"{latencies.max():.2f} s; server peak RSS {peak:.0f} MB; alive after: {alive}; uploaded recordings "
              f"left on disk: {len(left)}")
        for failure in failures[:5]:
            print(f"  failure: {failure}")
        return 0 if not failures and alive else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def bare_gradio(requests: int, threads: int = 50) -> None:
    """A Gradio app with an instant function and nothing of speech2face: `requests` from `threads` threads through
    one shared gradio_client.Client, then through a Client per thread; the failures of each."""
    import gradio as gr
    from gradio_client import Client

    with gr.Blocks() as app:
        text, shown = gr.Textbox(), gr.Textbox()
        gr.Button().click(str.upper, text, shown, api_name="upper", concurrency_limit=2)
    port = free_port()
    app.queue().launch(prevent_thread_lock=True, server_port=port, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        shared = Client(url, verbose=False)
        for per_thread in (False, True):
            own = threading.local()

            def call(index: int, per_thread: bool = per_thread, own: threading.local = own) -> str:
                client = shared
                if per_thread:
                    if not hasattr(own, "client"):
                        own.client = Client(url, verbose=False)
                    client = own.client
                try:
                    return "ok" if client.predict(f"x{index}", api_name="/upper") == f"X{index}" else "wrong"
                except Exception as error:  # noqa: BLE001 - counted and named
                    return type(error).__name__

            with ThreadPoolExecutor(threads) as pool:
                answers = list(pool.map(call, range(requests)))
            failed = [a for a in answers if a != "ok"]
            print(f"bare Gradio, {requests} requests from {threads} threads, "
                  f"{'a Client per thread' if per_thread else 'one shared Client'}: {len(failed)} failed "
                  f"{sorted(set(failed))}")
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="a model folder or a registered name (default demo)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent visitors, each a session of its own")
    parser.add_argument("--requests", type=int, default=400, help="requests in all")
    parser.add_argument("--seconds", type=float, default=600, help="no new request after this long")
    parser.add_argument("--no-slow", dest="slow", action="store_false", help="without the slow upload")
    parser.add_argument("--no-cut-off", dest="cut_off", action="store_false", help="without the upload cut off")
    parser.add_argument("--bare-gradio", type=int, metavar="N", help="instead: N requests to a bare Gradio app, one "
                                                                     "shared Client vs a Client per thread")
    args = parser.parse_args()
    if args.bare_gradio:
        bare_gradio(args.bare_gradio)
        return 0
    return run(args.model, args.clients, args.requests, args.seconds, args.slow, args.cut_off)


if __name__ == "__main__":
    sys.exit(main())
