"""Silero VAD (v6, MIT) in plain PyTorch, its weights read from the initializers of the `silero-vad`
package's `silero_vad_16k_op15.onnx` with our protobuf reader (no TorchScript, no pickle, no onnx package,
none of silero-vad's code runs). The package's `silero_vad_16k.safetensors` holds older (v5) weights that
do not match its ONNX and TorchScript models, so it is not used.

The network reads 16 kHz audio in chunks of CHUNK samples (32 ms), each with the CONTEXT samples before
it: a learned STFT (a strided convolution, 129 bins of magnitude), four 1-D convolutions, an LSTM whose
state runs from chunk to chunk, and a sigmoid: the probability that the chunk is speech. All chunks of all
recordings go through at once; the LSTM runs over each recording's chunks in one fused call.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ... import protobuf
from ...errors import ModelError
from ...package_data import package_file

SAMPLE_RATE = 16_000
CHUNK = 512  # samples per decision: 32 ms
CONTEXT = 64  # samples of the previous chunk each chunk sees
N_FFT, STFT_HOP, REFLECT_PAD = 256, 128, 64
HIDDEN = 128
WEIGHTS = "silero_vad_16k_op15.onnx"
ONNX_NAMES = {  # initializer -> parameter of SileroVad
    "model.stft.forward_basis_buffer": "stft_conv.weight",
    **{f"model.encoder.{i}.reparam_conv.{p}": f"conv{i + 1}.{p}" for i in range(4) for p in ("weight", "bias")},
    **{f"model.decoder.rnn.{p}": f"lstm.{p}_l0" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "model.decoder.decoder.2.weight": "final_conv.weight", "model.decoder.decoder.2.bias": "final_conv.bias",
}
ONNX_FLOAT = 1
LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (1, B, HIDDEN)
INSTALL_HINT = "pip install --no-deps 'silero-vad>=6' (its weights; the project needs none of its dependencies)"


def weights_path() -> Path:
    """The safetensors file inside the installed `silero-vad` package (found without importing it)."""
    return package_file("silero_vad", "data", WEIGHTS, distribution="silero-vad", install_hint=INSTALL_HINT)


class SileroVad(nn.Module):
    """Chunks with context (B, N, CONTEXT + CHUNK) -> speech probability per chunk (B, N)."""

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 2 * (N_FFT // 2 + 1), N_FFT, stride=STFT_HOP, bias=False)
        self.conv1 = nn.Conv1d(N_FFT // 2 + 1, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, HIDDEN, 3, padding=1)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)  # silero's LSTM cell, stepped over the chunks
        self.final_conv = nn.Conv1d(HIDDEN, 1, 1)

    @classmethod
    def from_package(cls, device: str | torch.device = "cpu") -> SileroVad:
        path = weights_path()
        state = {ONNX_NAMES[name]: tensor for name, tensor in onnx_initializers(path).items() if name in ONNX_NAMES}
        model = cls()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelError(f"{path}: weights do not fit the Silero VAD network ({error})") from error
        return model.to(device).eval().requires_grad_(False)

    def features(self, chunks: torch.Tensor) -> torch.Tensor:
        """(M, CONTEXT + CHUNK) -> (M, HIDDEN): everything before the LSTM, for independent chunks."""
        x = F.pad(chunks, (0, REFLECT_PAD), mode="reflect")[:, None]
        x = self.stft_conv(x)
        bins = N_FFT // 2 + 1
        x = (x[:, :bins] ** 2 + x[:, bins:] ** 2).sqrt()
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        return x.squeeze(-1)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """(B, N, CONTEXT + CHUNK) -> (B, N); the state runs through the recording from zeros, as in the original."""
        return self.stream(chunks)[0]

    def stream(self, chunks: torch.Tensor, state: LstmState | None = None) -> tuple[torch.Tensor, LstmState]:
        """One stretch of a recording: its chunks (B, N, CONTEXT + CHUNK) and the LSTM state the stretch before
        it ended with (None at the start) -> (B, N) speech probabilities and the state to carry on with. A
        recording read stretch by stretch gives what it gives read at once."""
        batch, count, width = chunks.shape
        features = self.features(chunks.reshape(batch * count, width)).view(batch, count, HIDDEN)
        hidden, state = self.lstm(features, state)
        return torch.sigmoid(self.final_conv(torch.relu(hidden).transpose(1, 2))).squeeze(1), state


def onnx_initializers(path: Path) -> dict[str, torch.Tensor]:
    """The float initializers of an ONNX model's main graph, by name."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{path}: unreadable ({error})") from error
    graph = next((value for number, value in protobuf.fields(data) if number == 7), None)  # ModelProto.graph
    if not isinstance(graph, memoryview):
        raise ModelError(f"{path}: not an ONNX model (no graph)")
    out = {}
    for number, value in protobuf.fields(graph):
        if number == 5 and isinstance(value, memoryview):  # GraphProto.initializer: a TensorProto
            name, tensor = _onnx_tensor(value)
            if tensor is not None:
                out[name] = tensor
    return out


def _onnx_tensor(message: memoryview) -> tuple[str, torch.Tensor | None]:
    dims: list[int] = []
    name, kind, raw, floats = "", 0, b"", []
    for number, value in protobuf.fields(message):
        if number == 1:
            dims += protobuf.packed_varints(value)
        elif number == 2 and isinstance(value, int):
            kind = value
        elif number == 4:  # float_data: packed fixed32, or one
            floats += [protobuf.as_float(value)] if isinstance(value, int) else \
                list(memoryview(bytes(value)).cast("f"))
        elif number == 8:
            name = protobuf.text(value)
        elif number == 9 and isinstance(value, memoryview):
            raw = bytes(value)
    if kind != ONNX_FLOAT:
        return name, None
    values = torch.frombuffer(bytearray(raw), dtype=torch.float32) if raw else torch.tensor(floats)
    return name, values.reshape(dims).clone()
