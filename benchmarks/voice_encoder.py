"""Voice encoder speed: forward and forward+backward samples/s for both configs, and model FLOP
utilisation (MFU) = achieved FLOP/s / the fp32 matmul FLOP/s of this machine, measured in this run.

    python benchmarks/voice_encoder.py [--sizes paper small] [--batch 8] [--compile]

FLOPs per clip come from `VoiceEncoder.flops()` (2 per multiply-add, counted by torch's FLOP counter).
Target: paper config, forward, batch 8 >= 50 % MFU on CPU.
"""

from __future__ import annotations

import argparse

import torch

from speech2face.models import VoiceEncoder, VoiceEncoderConfig
from speech2face.voice.audio import CLIP_FRAMES, N_FREQ
from timing import matmul_peak, seconds_per_call


def measure(config: VoiceEncoderConfig, batch: int, device: torch.device, compile_model: bool,
            repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = VoiceEncoder(config).to(device)
    spec = torch.randn(batch, 2, CLIP_FRAMES, N_FREQ, device=device)
    forward_model = torch.compile(model) if compile_model else model
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.inference_mode():
            forward_model(spec)
        sync()

    def train_step() -> None:
        forward_model(spec).square().mean().backward()
        sync()

    model.eval()
    forward_time = seconds_per_call(forward, repeats)
    model.train()
    train_time = seconds_per_call(train_step, repeats)
    return {"forward_rate": batch / forward_time, "train_rate": batch / train_time,
            "forward_flops": model.flops() * batch / forward_time,
            "train_flops": model.flops(backward=True) * batch / train_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["paper", "small"], choices=["paper", "small"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)

    peak = matmul_peak(device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, 6 s clips, "
          f"compile={args.compile}")
    print(f"fp32 matmul peak (best of 1024^3..4096^3, same run): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'config':<8}{'fwd clips/s':>13}{'fwd GFLOP/s':>13}{'fwd MFU':>9}"
          f"{'train clips/s':>15}{'train GFLOP/s':>15}{'train MFU':>11}")
    for name in args.sizes:
        result = measure(VoiceEncoderConfig.named(name), args.batch, device, args.compile, args.repeats)
        print(f"{name:<8}{result['forward_rate']:>13.2f}{result['forward_flops'] / 1e9:>13.1f}"
              f"{result['forward_flops'] / peak:>9.1%}{result['train_rate']:>15.2f}"
              f"{result['train_flops'] / 1e9:>15.1f}{result['train_flops'] / peak:>11.1%}")


if __name__ == "__main__":
    main()
