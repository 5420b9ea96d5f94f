"""Face decoder speed on CPU (or CUDA): training images/s (forward + backward through the warp and the
perceptual encoder) and decode latency per face, small, medium and paper configs, with the warp's share and the
model's FLOP utilisation against the machine's fp32 matmul peak measured in the same run; for the medium config
also a training step with the demo's augmentation (flips 0.5, same-sex morphs 0.3: the teacher re-embeds those
faces), and the time of the demo's 2500-step run that follows from it.

    python benchmarks/face_decoder.py [--batch 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from speech2face.demo import PHOTO_DECODER_STEPS
from speech2face.devices import pick_device
from speech2face.faces import get_encoder
from speech2face.losses import decoder_losses
from speech2face.models import FaceDecoder, FaceDecoderConfig
from speech2face.models.warp import warp_image
from speech2face.train.augment import AUGMENT_DRAWS, Augmentation, augment_batch
from timing import matmul_peak, seconds_per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device()
    peak = matmul_peak(device)
    print(f"device {device}, {torch.get_num_threads()} threads; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    teacher = get_encoder("dlib-torch", device=device)
    embed = teacher.module
    for name in ("small", "medium", "paper"):
        config = FaceDecoderConfig.named(name, 128)
        decoder = FaceDecoder(config).to(device)
        features = torch.randn(args.batch, 128, device=device)
        faces = torch.rand(args.batch, 3, config.image_size, config.image_size, device=device)
        landmarks = decoder.mean_landmarks + 0.01 * torch.randn(args.batch, 68, 2, device=device)
        optimizer = torch.optim.Adam(decoder.parameters())

        def step(decoder: FaceDecoder = decoder, optimizer: torch.optim.Optimizer = optimizer,
                 features: torch.Tensor = features, faces: torch.Tensor = faces,
                 landmarks: torch.Tensor = landmarks) -> None:
            losses = decoder_losses(decoder(features), faces, landmarks, decoder.mean_landmarks, embed)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()

        train = seconds_per_call(step, args.repeats, 1.0)
        with torch.no_grad():
            one = seconds_per_call(lambda decoder=decoder, first=features[:1]: decoder(first), args.repeats, 0.5)
            batch = seconds_per_call(lambda decoder=decoder, features=features: decoder(features), args.repeats, 0.5)
            texture = torch.rand_like(faces)
            warp = seconds_per_call(lambda texture=texture, landmarks=landmarks, decoder=decoder: warp_image(
                texture, decoder.mean_landmarks.expand_as(landmarks), landmarks), args.repeats, 0.5)
        flops = count_flops(decoder, features[:1])
        print(f"{name} ({config.image_size} px, {sum(p.numel() for p in decoder.parameters()) / 1e6:.1f} M params, "
              f"{flops / 1e9:.2f} GFLOP/face forward):")
        print(f"  train  {args.batch / train:8.1f} images/s (with the perceptual encoder)")
        print(f"  decode {one * 1000:8.1f} ms per face at batch 1; {batch / args.batch * 1000:6.2f} ms per face at "
              f"batch {args.batch} = {flops * args.batch / batch / peak:.0%} of the matmul peak; "
              f"warp {warp / batch:.0%} of the batch decode")
        if name == "medium":
            augmented = seconds_per_call(lambda step=step, features=features: augmented_step(step, teacher, args.batch,
                                                                                             features),
                                         args.repeats, 1.0)
            print(f"  train with augmentation {args.batch / augmented:8.1f} images/s: {PHOTO_DECODER_STEPS} steps "
                  f"of {args.batch} (s2f demo --decoder-only) in {PHOTO_DECODER_STEPS * augmented / 60:.0f} min")


def augmented_step(step: Callable[[], None], teacher: object, batch: int, features: torch.Tensor) -> None:
    """The augmentation of a batch of 224 px crops (half of them male), then the training step."""
    generator = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, generator=generator)
    landmarks = torch.full((batch, 68, 2), 0.5) + 0.05 * torch.rand(batch, 68, 2, generator=generator)
    draws = torch.rand(batch, AUGMENT_DRAWS, generator=generator)
    augment_batch({"face": crops, "landmarks": landmarks, "feature": features.cpu(), "draws": draws,
                   "male": torch.arange(batch) % 2}, Augmentation(flip=0.5, morph=0.3), teacher)
    step()


def count_flops(module: torch.nn.Module, features: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(features)
    return float(counter.get_total_flops())


if __name__ == "__main__":
    main()
