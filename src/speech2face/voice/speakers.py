"""Who is speaking: a pretrained speaker encoder (GE2E d-vectors, 256-d), ported from Resemblyzer 0.1.4.

    from speech2face.voice import speakers
    vector = speakers.embed("voice.wav")            # (256,) unit vector; a path, bytes or a 16 kHz wave
    vectors = speakers.embed_windows(waves)         # (N, 256): one per window (a list of 16 kHz waves)

The network is Resemblyzer's (Apache-2.0; Wan et al., "Generalized end-to-end loss for speaker
verification", 2018): a 3-layer LSTM (256 units) over 40 mel bands of power (25 ms windows, 10 ms hop),
a linear layer, ReLU and L2 normalisation, run on 1.6 s partial utterances (160 frames, 1.3 per second)
whose embeddings are averaged and normalised again. Its weights are read from the `resemblyzer` package's
`pretrained.pt` with `torch.load(weights_only=True)` (no code of that package runs: its own imports need
webrtcvad and librosa). The mel front end is computed here (a Slaney mel filterbank, as librosa's default).
Same speaker ~0.8-0.9 cosine, different speakers ~0.5-0.7.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..devices import pick_device
from ..errors import ModelError
from ..package_data import package_file
from .audio import SAMPLE_RATE, AudioSource, as_wave

MEL_WINDOW = 400  # samples: 25 ms
MEL_HOP = 160  # samples: 10 ms
MEL_BANDS = 40
PARTIAL_FRAMES = 160  # 1.6 s per partial utterance
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75  # the last partial is kept when it holds at least this share of real audio
HIDDEN = 256
LAYERS = 3
EMBEDDING = 256
TARGET_DBFS = -30.0  # quiet recordings are raised to this loudness (never lowered)
WINDOWS_PER_PASS = 256  # windows embedded at a time (a few MB of mels), however long the recording
UNUSED_WEIGHTS = ("similarity_weight", "similarity_bias")  # the GE2E loss's scale, not part of the network
INSTALL_HINT = "pip install --no-deps resemblyzer==0.1.4 (its weights; none of its code is used)"


def weights_path() -> Path:
    return package_file("resemblyzer", "pretrained.pt", distribution="resemblyzer", install_hint=INSTALL_HINT)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0)


@functools.cache
def mel_filterbank() -> np.ndarray:
    """(MEL_BANDS, MEL_WINDOW // 2 + 1) triangular filters, Slaney-normalised (equal area), 0 to 8 kHz."""
    bins = np.linspace(0, SAMPLE_RATE / 2, MEL_WINDOW // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_BANDS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def dft_basis() -> torch.Tensor:
    """(2 x 201, 1, MEL_WINDOW): the periodic-Hann-windowed cosines and sines of a MEL_WINDOW-point DFT."""
    n = torch.arange(MEL_WINDOW, dtype=torch.float64)
    k = torch.arange(MEL_WINDOW // 2 + 1, dtype=torch.float64)
    window = torch.hann_window(MEL_WINDOW, periodic=True, dtype=torch.float64)
    angle = 2 * np.pi * k[:, None] * n[None] / MEL_WINDOW
    return torch.cat([window * torch.cos(angle), window * torch.sin(angle)]).float()[:, None, :]


def mel_frames(waves: torch.Tensor) -> torch.Tensor:
    """(B, T) 16 kHz -> (B, frames, 40) mel power: centred frames (zero padding), a periodic Hann window. The DFT
    is a strided convolution (an STFT's numbers, and a graph ONNX can hold)."""
    padded = torch.nn.functional.pad(waves[:, None, :], (MEL_WINDOW // 2, MEL_WINDOW // 2))
    parts = torch.nn.functional.conv1d(padded, dft_basis().to(waves.device, waves.dtype), stride=MEL_HOP)
    power = parts[:, :MEL_WINDOW // 2 + 1] ** 2 + parts[:, MEL_WINDOW // 2 + 1:] ** 2  # (B, 201, frames)
    bank = torch.from_numpy(mel_filterbank()).to(waves.device, waves.dtype)
    return torch.einsum("mf,bft->btm", bank, power)


class SpeakerEncoder(torch.nn.Module):
    """The GE2E network: (B, frames, 40) mel power -> (B, 256) unit d-vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(MEL_BANDS, HIDDEN, LAYERS, batch_first=True)
        self.linear = torch.nn.Linear(HIDDEN, EMBEDDING)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def embed_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, T) 16 kHz waves of one length -> (B, 256) unit d-vectors (quiet ones raised, partials averaged)."""
        mels = partial_mels(raise_quiet(waves))  # (B, P, 160, 40)
        summed = self(mels.flatten(0, 1)).view(*mels.shape[:2], -1).sum(dim=1)  # (B, 256)
        return summed / summed.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @classmethod
    def pretrained(cls, device: str | torch.device | None = None) -> SpeakerEncoder:
        """The Resemblyzer weights, loaded strictly (the loss's two scalars set aside by name)."""
        try:
            checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=True)
            state = dict(checkpoint["model_state"])
        except (OSError, RuntimeError, KeyError, TypeError) as error:
            raise ModelError(f"{weights_path()}: not a readable speaker encoder ({error})") from error
        for name in UNUSED_WEIGHTS:
            state.pop(name, None)
        model = cls()
        model.load_state_dict(state, strict=True)
        return model.to(pick_device(device)).eval()


def raise_quiet(waves: torch.Tensor) -> torch.Tensor:
    """(B, T): each wave quieter than TARGET_DBFS (RMS) raised to it; louder ones stay as they are."""
    loudness = 10 * torch.log10(waves.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-20))
    gain = torch.where(loudness < TARGET_DBFS, 10 ** ((TARGET_DBFS - loudness) / 20), torch.ones_like(loudness))
    return (waves * gain).to(waves.dtype)


def partial_starts(samples: int) -> list[int]:
    """First frame of each 1.6 s partial utterance of a `samples`-long wave (Resemblyzer's slicing)."""
    frames = int(np.ceil((samples + 1) / MEL_HOP))
    step = int(np.round(SAMPLE_RATE / PARTIALS_PER_SECOND / MEL_HOP))
    starts = list(range(0, max(1, frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (samples - starts[-1] * MEL_HOP) / (PARTIAL_FRAMES * MEL_HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def partial_mels(waves: torch.Tensor) -> torch.Tensor:
    """(B, T) 16 kHz waves of one length -> (B, P, PARTIAL_FRAMES, MEL_BANDS): the mel power of each 1.6 s partial
    utterance (the last one zero-padded)."""
    starts = partial_starts(waves.shape[1])
    needed = (starts[-1] + PARTIAL_FRAMES) * MEL_HOP
    mels = mel_frames(torch.nn.functional.pad(waves, (0, max(0, needed - waves.shape[1]))))
    return torch.stack([mels[:, start:start + PARTIAL_FRAMES] for start in starts], dim=1)


@functools.cache
def _encoder(device: str) -> SpeakerEncoder:
    """One loaded encoder per device, loaded on first use (0.1 s)."""
    return SpeakerEncoder.pretrained(device)


def embed_windows(waves: Sequence[AudioSource | np.ndarray], device: str | torch.device | None = None,
                  batch: int = 64) -> np.ndarray:
    """(N, 256) unit d-vectors, one per window or utterance: each one's 1.6 s partials, batched together
    through the network, averaged and normalised. Quiet recordings are raised to -30 dBFS first. Read
    WINDOWS_PER_PASS at a time (`WindowEmbedder`), so that the hours of a long recording's windows never sit in
    memory as mels."""
    embedder = WindowEmbedder(device, batch)
    for wave in waves:
        embedder.add(wave)
    embedder.finish()
    return embedder.vectors


class WindowEmbedder:
    """A reader (`stream.Reader`) of windows handed in one at a time, embedded WINDOWS_PER_PASS at a time as they
    come; `.vectors` (N, 256) after `finish`."""

    def __init__(self, device: str | torch.device | None = None, batch: int = 64) -> None:
        self.device, self.batch = device, batch
        self.waiting: list[AudioSource | np.ndarray] = []
        self.done: list[np.ndarray] = []
        self.vectors = np.zeros((0, EMBEDDING), np.float32)

    def add(self, wave: AudioSource | np.ndarray) -> None:
        self.waiting.append(wave)
        if len(self.waiting) >= WINDOWS_PER_PASS:
            self._embed_waiting()

    def finish(self) -> None:
        self._embed_waiting()
        if self.done:
            self.vectors = np.concatenate(self.done)

    def _embed_waiting(self) -> None:
        if self.waiting:
            self.done.append(_embed_group(self.waiting, self.device, self.batch))
        self.waiting = []


def _embed_group(waves: Sequence[AudioSource | np.ndarray], device: str | torch.device | None,
                 batch: int) -> np.ndarray:
    encoder = _encoder(str(pick_device(device)))
    parameter = next(encoder.parameters())
    partials, owners = [], []
    for index, source in enumerate(waves):
        wave = torch.from_numpy(as_wave(source)).to(parameter.device)[None]
        mels = partial_mels(raise_quiet(wave))[0]  # (P, 160, 40)
        partials.append(mels)
        owners += [index] * len(mels)
    if not partials:
        return np.zeros((0, EMBEDDING), np.float32)
    stacked = torch.cat(partials)  # (P, 160, 40)
    with torch.no_grad():
        vectors = torch.cat([encoder(stacked[i:i + batch]) for i in range(0, len(stacked), batch)])
    sums = torch.zeros(len(waves), EMBEDDING, device=vectors.device).index_add_(
        0, torch.tensor(owners, device=vectors.device), vectors)
    return (sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()


def embed(source: AudioSource | np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
    """(256,) unit d-vector of one utterance: a path, bytes, a file object or a 16 kHz wave."""
    return embed_windows([source], device)[0]
