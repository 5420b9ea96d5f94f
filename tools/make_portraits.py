"""Rebuild the portraits shipped in src/speech2face/synth/photos from their source, the face_recognition 1.3.0
sdist on PyPI (official US government portraits: public domain).

    python tools/make_portraits.py            # fetches the sdist with pip into a temporary folder

Each photo is aligned to the world's canonical canvas (the face template of `faces.align`, padding 0.9,
400 px) and saved as JPEG quality 92, so the package carries ~40 KB per portrait instead of ~1.5 MB.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from speech2face.synth.portraits import PHOTOS_DIR, canonical_canvas

SDIST = "face_recognition-1.3.0.tar.gz"
MEMBERS = {name: f"face_recognition-1.3.0/tests/test_images/{name}.jpg"
           for name in ("obama", "obama2", "obama3", "biden")}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "face_recognition==1.3.0", "-d", folder], check=True)
        with tarfile.open(Path(folder) / SDIST) as archive:
            for name, member in MEMBERS.items():
                with archive.extractfile(member) as handle:  # type: ignore[union-attr]
                    image = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
                Image.fromarray(canonical_canvas(image)).save(PHOTOS_DIR / f"{name}.jpg", quality=92)
                print(f"{PHOTOS_DIR / name}.jpg")


if __name__ == "__main__":
    main()
