"""The training loop's cost: samples/s of `s2f train-decoder` and `s2f train` through the one loop
(`train.loop.fit`: shards streamed and decoded, autocast, clipping, logging, checkpoints) against the bare
step of the same task on batches already in memory (forward + loss + backward + Adam), in the same run.
The ratio says what the loop and its data stream cost on top of the arithmetic.

    python benchmarks/train_loop.py                       # builds a small synthetic world first (~1 min)
    python benchmarks/train_loop.py --data SHARDS [--steps 60 --batch 16 --device cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from speech2face import distributed
from speech2face.data.dataset import collate
from speech2face.devices import pick_device
from speech2face.train.decoder import DecoderTask, DecoderTraining, train_decoder
from speech2face.train.voice import VoiceTask, VoiceTraining, train_voice


def small_world(root: Path) -> Path:
    from speech2face.data import PrepareSettings, manifests, prepare
    from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world

    world = make_world(root / "world", WorldSettings(identities=24, clips=2, seed=0), progress=False)
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, root / "data", PrepareSettings(val=0.2, test=0.1), workers=2, progress=False, synthetic=True)
    return root / "data"


def bare_rate(task: DecoderTask | VoiceTask, batch: int, steps: int) -> float:
    """Samples/s of the task's step alone, on `steps` batches taken from its stream beforehand."""
    loader = torch.utils.data.DataLoader(task.stream(0, 1, 0), batch_size=batch, collate_fn=collate)
    batches = [b for _, b in zip(range(steps), loader, strict=False)]
    optimizer, _ = task.optimizer()
    device = next(task.model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step(b: dict[str, torch.Tensor]) -> None:
        with autocast:
            total = task.loss(task.model, b)["total"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    step(batches[0])  # warm up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches:
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * len(batches) / (time.perf_counter() - start)


def loop_rate(run: Path) -> float:
    """The loop's own throughput, as it logs it (setup excluded)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "samples_per_s" in row][-1]["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a s2f prepare folder (default: build a small synthetic world)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="small", choices=("small", "paper"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        data = Path(args.data) if args.data else small_world(root)
        schedule = {"steps": args.steps, "batch_size": args.batch, "size": args.size, "device": str(device),
                    "eval_every": 10**9, "checkpoint_every": 10**9, "log_every": args.steps}
        print(f"device {device}; {args.size} size, batch {args.batch}, {args.steps} steps; data {data}")
        decoder_settings = DecoderTraining(**schedule)
        train_decoder(data, root / "decoder", decoder_settings, progress=False)
        voice_settings = VoiceTraining(**schedule, distill="none")
        train_voice(data, root / "decoder", root / "voice", voice_settings, progress=False)
        context = distributed.setup(str(device))
        tasks = {"train-decoder": (DecoderTask(data, root / "bare", decoder_settings, device, resume=False),
                                   root / "decoder"),
                 "train": (VoiceTask(data, root / "decoder", voice_settings, context), root / "voice")}
        for name, (task, run) in tasks.items():
            bare, looped = bare_rate(task, args.batch, args.steps), loop_rate(run)
            print(f"  {name:<14} loop {looped:8.1f} samples/s   bare step {bare:8.1f} samples/s   "
                  f"loop / bare {looped / bare:.2f}x")


if __name__ == "__main__":
    main()
