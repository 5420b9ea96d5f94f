"""The model registry: checksummed downloads from a real local HTTP server, the cache, offline use."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from speech2face.cli import main
from speech2face.errors import ModelError
from speech2face.pipeline import Speech2Face
from speech2face.registry import pack, resolve


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("S2F_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("S2F_MODELS", str(tmp_path / "models.json"))
    return tmp_path / "models.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def test_download_verify_cache_and_load_offline(tiny_model: Path, registry: Path, server: tuple[str, Path],
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, root = server
    digest = pack(tiny_model, root / "tiny.tar.gz")
    registry.write_text(json.dumps({"tiny": {"url": f"{url}/tiny.tar.gz", "sha256": digest,
                                             "description": "a test model", "synthetic": True}}))
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "tiny [SYNTHETIC]" in listing and "demo [SYNTHETIC]" in listing and f"from {url}" in listing
    folder = resolve("tiny", progress=False)
    assert folder.parent == tmp_path / "cache" and (folder / "speech2face.json").is_file()
    (root / "tiny.tar.gz").unlink()  # the server no longer has it: the cache must serve
    model = Speech2Face.from_pretrained("tiny", device="cpu")
    assert model.card.name == "tiny" and model.card.synthetic
    assert main(["models"]) == 0 and f"cached: {folder}" in capsys.readouterr().out


def test_a_wrong_checksum_installs_nothing(tiny_model: Path, registry: Path, server: tuple[str, Path],
                                           tmp_path: Path) -> None:
    url, root = server
    pack(tiny_model, root / "tiny.tar.gz")
    registry.write_text(json.dumps({"tiny": {"url": f"{url}/tiny.tar.gz", "sha256": "0" * 64}}))
    with pytest.raises(ModelError, match="checksum mismatch"):
        resolve("tiny", progress=False)
    assert not any(p.name.startswith("tiny") for p in (tmp_path / "cache").iterdir())
    registry.write_text(json.dumps({"gone": {"url": f"{url}/missing.tar.gz", "sha256": "0" * 64}}))
    with pytest.raises(ModelError, match="download failed"):
        resolve("gone", progress=False)


def test_unsafe_archives_and_bad_registries_are_refused(registry: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../outside.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    registry.write_text(json.dumps({"evil": {"url": str(archive), "sha256": digest}}))
    with pytest.raises(ModelError, match="unsafe archive member"):
        resolve("evil", progress=False)
    assert not (tmp_path / "cache" / "outside.txt").exists()
    registry.write_text("{not json")
    assert main(["models"]) == 2
    registry.write_text(json.dumps({"short": {"url": "x", "sha256": "abc"}}))
    with pytest.raises(ModelError, match="64 hex digits"):
        resolve("short")


def test_a_missing_shipped_demo_is_an_error_that_names_its_build_and_trains_nothing(
        registry: Path, spoken: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The registry resolves names to folders and never trains: without the shipped folder, `--model demo` is one
    line naming `s2f demo --quick --ship`, exit 2, nothing written to the cache."""
    import dataclasses

    from speech2face import registry as models

    gone = tmp_path / "not-installed"
    monkeypatch.setattr(models, "BUILTIN", tuple(dataclasses.replace(entry, shipped=gone) for entry in models.BUILTIN))
    out = tmp_path / "faces"
    assert main(["predict", str(spoken["short"]), "--model", "demo", "-o", str(out), "-q"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "s2f demo --quick --ship" in error[0] and str(gone) in error[0]
    assert not (tmp_path / "cache").exists() and not any(out.glob("*.png"))
    assert main(["models"]) == 0 and "missing: build it with `s2f demo --quick --ship`" in capsys.readouterr().out
