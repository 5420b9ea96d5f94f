"""Prediction speed: a 6 s recording -> a face, per stage; the whole `s2f predict` process; the web server.

    python benchmarks/predict.py [--size small|paper] [--server-requests 50]

Rows: each stage of `Speech2Face.predict` on one 6 s espeak-ng wav (decode, speech check, spectrogram,
voice encoder, decoder, PNG), their sum against the model forward alone (the ratio says what the
plumbing costs), and the voice encoder's FLOP utilisation against the fp32 matmul peak measured in the
same run. Then the wall time of `s2f predict` as a new process (import + model load + predict), and
`s2f serve`'s requests/s for N concurrent clients on loopback. Weights are random (speed does not
depend on them); the model is the size named.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from speech2face import load_audio, spectrogram
from speech2face.model_folder import ModelCard
from speech2face.models import FaceDecoder, FaceDecoderConfig, VoiceEncoder, VoiceEncoderConfig
from speech2face.models.voice_encoder import count_flops
from speech2face.pipeline import Speech2Face
from speech2face.voice import audio
from speech2face.voice.activity import periodicity
from timing import matmul_peak, seconds_per_call


def make_model(config: str, folder: Path) -> Path:
    voice = VoiceEncoder(VoiceEncoderConfig.named(config, 128 if config == "small" else 4096))
    decoder = FaceDecoder(FaceDecoderConfig.named(config, voice.config.output_dim))
    return Speech2Face(voice, decoder, ModelCard(name=f"random-{config}", synthetic=True), "cpu").save_pretrained(
        folder)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_rate(model_dir: Path, voice: Path, requests: int) -> float:
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--model", str(model_dir), "--port",
                                str(port), "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        visitors = threading.local()  # a session per visitor: a shared Client loses requests (serve_load.py)

        def visit(path: Path) -> object:
            if not hasattr(visitors, "client"):
                visitors.client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            return visitors.client.predict(handle_file(str(path)), api_name="/predict")

        wave = load_audio(voice)
        files = []
        for index in range(requests):  # distinct recordings, as from distinct visitors
            path = voice.with_name(f"visitor{index}.wav")
            path.write_bytes(_wav_bytes(wave * (0.5 + index / (2 * requests))))
            files.append(path)
        client.predict(handle_file(str(files[0])), api_name="/predict")
        start = time.perf_counter()
        with ThreadPoolExecutor(requests) as pool:
            list(pool.map(visit, files))
        return requests / (time.perf_counter() - start)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wav_bytes(wave: np.ndarray) -> bytes:
    import wave as wavefile

    buffer = io.BytesIO()
    with wavefile.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(audio.SAMPLE_RATE)
        handle.writeframes((np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "paper"), default="small")
    parser.add_argument("--server-requests", type=int, default=50, help="0: skip the server")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    peak = matmul_peak(torch.device("cpu"))
    print(f"cpu, {torch.get_num_threads()} threads; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; size {args.size}")
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        voice_file = root / "voice.wav"
        text = "The quick brown fox jumps over the lazy dog, and then it runs away into the woods."
        subprocess.run(["espeak-ng", "-w", str(voice_file), text], check=True)
        wave = audio.fit_length(load_audio(voice_file))
        model_dir = make_model(args.size, root / "model")
        model = Speech2Face.from_pretrained(model_dir, device="cpu")
        spec = spectrogram(torch.from_numpy(wave)[None])
        feature = model.voice(spec)
        decoded = model.decoder(feature)
        image = model.draw(feature.numpy())[0][0]
        stages = {
            "decode file": lambda: load_audio(voice_file),
            "speech check": lambda: model.detector(wave),  # Silero VAD, loaded once with the model
            "(periodicity)": lambda: periodicity.speech_activity(wave),  # the fallback, for comparison
            "spectrogram": lambda: spectrogram(torch.from_numpy(wave)[None]),
            "voice encoder": lambda: model.voice(spec),
            "face decoder": lambda: model.decoder(feature),
            "png encode": lambda: image.save(io.BytesIO(), format="PNG"),
        }
        timings = {name: seconds_per_call(run, args.repeats, 0.5) for name, run in stages.items()}
        whole = seconds_per_call(lambda: model.predict(voice_file), args.repeats, 0.5)
        forward = timings["voice encoder"] + timings["face decoder"]
        total = sum(value for name, value in timings.items() if not name.startswith("("))
        for name, seconds in timings.items():
            share = "   (not a stage)" if name.startswith("(") else f"{100 * seconds / total:5.1f} % of the stages' sum"
            print(f"  {name:14s} {1000 * seconds:8.1f} ms  {share}")
        print(f"speech check: {model.detector.method}, {audio.CLIP_SECONDS / timings['speech check']:.0f}x real time")
        flops = count_flops(model.voice.config, audio.CLIP_FRAMES)
        print(f"predict() on a 6 s file: {1000 * whole:.1f} ms = {whole / forward:.2f}x the model forward alone "
              f"({1000 * forward:.1f} ms); voice encoder at {flops / timings['voice encoder'] / peak:.0%} of the "
              f"matmul peak ({flops / 1e9:.1f} GFLOP per clip)")
        del decoded
        one_voice = seconds_per_call(lambda: model.predict(voice_file, speakers=1), args.repeats, 0.5)
        print(f"telling speakers apart (speaker vectors of 1.5 s windows, clustering) adds "
              f"{1000 * (whole - one_voice):.1f} ms to predict() on 6 s ({1000 * one_voice:.1f} ms with speakers=1)")
        conversation = np.tile(wave, 5)  # 30 s
        long_whole = seconds_per_call(lambda: model.predict(conversation), args.repeats, 0.5)
        long_one = seconds_per_call(lambda: model.predict(conversation, speakers=1), args.repeats, 0.5)
        print(f"on 30 s: predict() {1000 * long_whole:.0f} ms, speakers=1 {1000 * long_one:.0f} ms")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speech2face", "predict", str(voice_file), "--model", str(model_dir),
                        "-o", str(root / "faces"), "-q", "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
        process = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import speech2face.cli, speech2face.pipeline, torch"], check=True)
        imports = time.perf_counter() - start
        print(f"s2f predict as a new process: {process:.2f} s ({imports:.2f} s of it starting Python and importing "
              f"torch + speech2face; {process / whole:.0f}x predict())")
        if args.server_requests:
            rate = server_rate(model_dir, voice_file, args.server_requests)
            print(f"s2f serve, {args.server_requests} concurrent clients on loopback: {rate:.1f} requests/s "
                  f"({rate * whole:.2f}x the 1 / predict() rate of one in-process caller)")


if __name__ == "__main__":
    main()
