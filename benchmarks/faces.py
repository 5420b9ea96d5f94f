"""Face pipeline speed on a real portrait: faces/s for detect (HOG, MMOD), landmarks, align and each
encoder, one at a time and batched. The torch port of dlib's ResNet is not built yet; when it is,
it is measured here against dlib in the same run.

    python benchmarks/faces.py [--repeats 3] [--batch 16]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import skimage.data

from speech2face import faces
from timing import seconds_per_call


def rate(run: Callable[[], object], items: int, repeats: int) -> float:
    """Items per second of `run`, which handles `items` faces per call."""
    return items / seconds_per_call(run, repeats, min_seconds=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
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
    for name, value in rows.items():
        print(f"  {name:<28}{value:10.1f}")


if __name__ == "__main__":
    main()
