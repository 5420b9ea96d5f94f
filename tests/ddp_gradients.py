"""Run under torchrun: the gradients of the voice loss on half a fixed batch per process, with DDP and
GlobalBatchNorm; rank 0 saves them for tests/test_train.py to compare with one process on the whole batch."""

from __future__ import annotations

import sys

import torch
from torch.nn.parallel import DistributedDataParallel

import speech2face as s2f
from speech2face import distributed
from speech2face.losses import voice_losses
from speech2face.models import VoiceEncoder, VoiceEncoderConfig


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    generator = torch.Generator().manual_seed(1)
    waves = torch.randn(4, 16000, generator=generator) * 0.1
    targets = torch.randn(4, 16, generator=generator)
    first = torch.nn.Linear(16, 8)
    with torch.no_grad():
        first.weight.copy_(torch.randn(8, 16, generator=generator))
        first.bias.zero_()
    return s2f.spectrogram(waves), targets, first.requires_grad_(False)  # type: ignore[return-value]


def gradients(world: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = VoiceEncoder(VoiceEncoderConfig.small(output_dim=16)).double()  # float64: no float-order noise
    spec, targets, first = (t.double() for t in batch())  # to flip max-pool or ReLU choices between runs
    if world:
        context = distributed.setup("cpu")
        half = slice(2 * context.rank, 2 * context.rank + 2)
        spec, targets = spec[half], targets[half]
        trained = DistributedDataParallel(distributed.global_batchnorm(model))
    else:
        trained = model
    predicted = trained(spec)
    # smooth terms only: the L1 term's gradient is a sign, which float-order noise can flip anywhere
    (voice_losses(predicted, targets, first, None)["norm"] + (predicted - targets).pow(2).mean()).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


if __name__ == "__main__":
    grads = gradients(world=True)
    if distributed.setup("cpu").main:
        torch.save(grads, sys.argv[1])
    distributed.teardown()
