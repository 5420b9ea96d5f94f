"""Write a talking-face clip: H.264 video + AAC audio in an mp4, with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..files import atomic_write
from ..voice.audio import SAMPLE_RATE

FPS = 25
AUDIO_BITRATE = 64_000


AAC_FRAME = 1024  # samples per AAC frame: decoders return whole frames


def padded_length(samples: int) -> int:
    """The audio length a decoder returns: whole AAC frames (the end is padded with silence)."""
    return -(-samples // AAC_FRAME) * AAC_FRAME


def write_clip(path: Path, frames: np.ndarray, wave: np.ndarray, fps: int = FPS, crf: int = 23) -> None:
    """frames (T, H, W, 3) uint8 RGB at `fps`; wave (N,) float32 mono at 16 kHz, padded with silence to
    whole AAC frames so that decoders return exactly `padded_length(N)` samples. Written atomically.
    Single-threaded encoders, so the same input gives the same file."""
    def write(temporary: Path) -> None:
        with av.open(str(temporary), "w", format="mp4") as container:
            video = container.add_stream("libx264", rate=fps)
            video.width, video.height = frames.shape[2], frames.shape[1]
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
            video.codec_context.thread_count = 1
            audio = container.add_stream("aac", rate=SAMPLE_RATE)
            audio.layout = "mono"
            audio.bit_rate = AUDIO_BITRATE
            for image in frames:
                container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(video.encode())
            samples = np.zeros((1, padded_length(len(wave))), np.float32)
            samples[0, :len(wave)] = np.clip(wave, -1, 1)
            chunk = audio.codec_context.frame_size or AAC_FRAME
            for start in range(0, samples.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]),
                                                   format="fltp", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = start
                frame.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(audio.encode(frame))
            container.mux(audio.encode())

    atomic_write(path, write)
