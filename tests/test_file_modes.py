"""What the verbs write is readable as a plain open() would leave it: under umask 022 a colleague, a web server or a
container user can read the faces, JSON, HTML, shards, model folders, exports and logs; under umask 077 nobody
else can. (Atomic writes go through a private temporary file, mode 0600, which a rename would carry over.)"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_wav

# Each verb a user runs that writes files, in one interpreter under the given umask (the verbs' real code paths,
# in-process, so the setup costs once).
SCRIPT = """
import os, sys
os.umask(int(sys.argv[1], 8))
from speech2face.cli import main
model, data, photos, speech, out = sys.argv[2:7]
runs = [
    ["predict", speech, "--model", model, "-o", f"{out}/faces", "-q"],
    ["evaluate", "--model", f"{model}/voice", "--decoder", f"{model}/decoder", "--data", data, "--out",
     f"{out}/report", "--scorer", "none", "--no-judge", "--device", "cpu"],
    ["prepare", "--images", photos, "--out", f"{out}/photos", "--val", "0", "--test", "0.5", "--workers", "1", "-q"],
    ["train-decoder", "--data", f"{out}/photos", "--out", f"{out}/decoder", "--steps", "2", "--batch-size", "2",
     "--eval-every", "2", "--checkpoint-every", "1", "--log-every", "1", "--workers", "0", "-q"],
    ["export", "--model", model, "--format", "tar", "--out", f"{out}/model.tar.gz"],
]
for run in runs:
    code = main(run)
    assert code == 0, (run, code)
"""


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_every_verb_writes_what_a_plain_open_would(umask: int, tiny_model: Path, prepared: Path,
                                                  spoken: dict[str, Path], photos: dict[str, np.ndarray],
                                                  tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("obama", "biden", "astronaut", "hopper"):
        Image.fromarray(photos[name]).save(folder / f"{name}.jpg")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", SCRIPT, oct(umask), str(tiny_model), str(prepared), str(folder),
                             str(spoken["long"]), str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".png", ".json", ".html", ".tar", ".safetensors", ".jsonl", ".gz"} <= kinds, kinds
    wrong = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o666 & ~umask}
    assert wrong == {}
    folders = [p for p in out.rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o777 & ~umask for p in folders), \
        {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders}


def test_an_existing_file_keeps_its_own_mode(tmp_path: Path) -> None:
    """As open(path, "w") would: a file the user made group-readable only stays so when rewritten."""
    from speech2face.files import atomic_write

    path = write_wav(tmp_path / "x.wav", np.zeros(16, np.int16), 16_000)
    path.chmod(0o640)
    atomic_write(path, lambda temp: temp.write_bytes(b"new"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes() == b"new"
