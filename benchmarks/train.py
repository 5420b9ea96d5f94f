"""Voice-encoder training speed: samples/s and model FLOP utilisation (MFU, against this machine's fp32
matmul peak measured in the same run) of one training step (spectrogram input -> encoder -> the paper's
loss through a decoder first layer -> backward -> Adam), small and paper configs, with one process using
every core vs two processes (DDP over gloo, one thread each, global batch norm) on the same global batch.

    python benchmarks/train.py [--sizes small paper] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from speech2face.losses import voice_losses
from speech2face.models import VoiceEncoder, VoiceEncoderConfig
from speech2face.models.voice_encoder import count_flops
from speech2face.voice.audio import CLIP_FRAMES, N_FREQ
from timing import matmul_peak


def steps_per_second(config: VoiceEncoderConfig, batch: int, steps: int, distributed: bool) -> float:
    """Training steps/s on this process's share of the batch (after 1 warm-up step)."""
    torch.manual_seed(0)
    model = VoiceEncoder(config)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        from speech2face.distributed import global_batchnorm

        model = DistributedDataParallel(global_batchnorm(model))
    first = torch.nn.Linear(config.output_dim, 1000).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-4)
    spec = torch.randn(batch, 2, CLIP_FRAMES, N_FREQ)
    target = torch.randn(batch, config.output_dim)

    def step() -> None:
        loss = voice_losses(model(spec), target, first, None)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def _worker(rank: int, config: VoiceEncoderConfig, batch: int, steps: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    rate = steps_per_second(config, batch // 2, steps, distributed=True)
    if rank == 0:
        Path(out).write_text(str(rate))
    torch.distributed.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    peak = matmul_peak(torch.device("cpu"))
    print(f"CPU, {threads} threads: fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; global batch {args.batch}, 6 s clips")
    for name in args.sizes:
        config = VoiceEncoderConfig.named(name)
        flops = count_flops(config, CLIP_FRAMES, backward=True)
        steps = 5 if name == "small" else 1
        one = steps_per_second(config, args.batch, steps, distributed=False) * args.batch
        with tempfile.TemporaryDirectory() as folder:
            out = str(Path(folder) / "rate")
            mp.spawn(_worker, args=(config, args.batch, steps, 29600 + len(name), out), nprocs=2, join=True)
            two = float(Path(out).read_text()) * args.batch
        for label, rate in ((f"1 process x {threads} threads", one), ("2 processes x 1 thread (DDP, gloo)", two)):
            print(f"  {name:<6}{label:<38}{rate:8.2f} samples/s  {rate * flops / 1e9:7.1f} GFLOP/s  "
                  f"MFU {rate * flops / peak:5.1%}")
        print(f"  {name:<6}2 processes / 1 process: {two / one:.2f}x ({flops / 1e9:.1f} GFLOP per sample, train)")


if __name__ == "__main__":
    main()
