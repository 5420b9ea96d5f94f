"""Named models: name -> where to get it (a URL or a local archive, with its sha256) -> a cached folder.

    s2f models                        list them (and which are cached)
    Speech2Face.from_pretrained("demo")

Built in: `demo`, a small model trained by `s2f demo --quick --ship` on the synthetic world (real CelebA
faces, real recorded and synthesised speakers, synthetic pairing). It ships inside the package
(`speech2face/demo_model`, fp16 weights whose sha256 its card lists), so it loads at once, offline. The
registry only resolves names to folders, it never trains: a checkout without the shipped folder gets an
error that names the command which builds it (`s2f demo --quick --ship`).

More entries: a JSON file at $S2F_MODELS (default ~/.config/speech2face/models.json):

    {"my-model": {"url": "https://example.org/my-model.tar.gz", "sha256": "<64 hex>",
                  "description": "paper encoder, VoxCeleb2 train split", "synthetic": false}}

`url` may be https://, http://, file:// or a local path; the archive is a .tar(.gz) of a model folder
(`Speech2Face.save_pretrained`, or `s2f export --format folder`). It is downloaded once into the cache
($S2F_CACHE, default ~/.cache/speech2face), its sha256 checked before anything is unpacked, and unpacked
safely (no absolute paths, links or `..`). Cached models load offline.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import ModelError
from .files import atomic_write, sha256_of
from .model_folder import CARD_FILE, SHIPPED_DEMO


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    synthetic: bool
    url: str | None = None
    sha256: str | None = None
    shipped: Path | None = None  # a model folder inside the installed package: used as it is

    @property
    def folder_name(self) -> str:
        return f"{self.name}-{self.sha256[:12]}" if self.sha256 else self.name


BUILTIN = (
    Entry("demo", "small model trained by `s2f demo --quick --ship` on the synthetic world (real CelebA faces, "
                  "real recorded and synthesised speakers, synthetic pairing); ships with the package", synthetic=True,
          shipped=SHIPPED_DEMO),
)


def cache_dir() -> Path:
    if os.environ.get("S2F_CACHE"):
        return Path(os.environ["S2F_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speech2face"


def user_registry() -> Path:
    if os.environ.get("S2F_MODELS"):
        return Path(os.environ["S2F_MODELS"])
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "speech2face" / "models.json"


def entries() -> dict[str, Entry]:
    """Built-in and user entries by name (a user entry may replace a built-in one)."""
    found = {entry.name: entry for entry in BUILTIN}
    path = user_registry()
    if not path.is_file():
        return found
    try:
        listed = json.loads(path.read_text())
        for name, fields in listed.items():
            url, sha256 = fields["url"], fields["sha256"].lower()
            if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
                raise ValueError(f"{name}: sha256 must be 64 hex digits")
            found[name] = Entry(name, fields.get("description", ""), bool(fields.get("synthetic", False)), url,
                                sha256)
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: not a model registry ({type(error).__name__}: {error}); see `s2f models --help`"
                         ) from error
    return found


def cached_path(entry: Entry) -> Path | None:
    if entry.shipped is not None and (entry.shipped / CARD_FILE).is_file():
        return entry.shipped
    target = cache_dir() / entry.folder_name
    return target if (target / CARD_FILE).is_file() else None


def resolve(name: str, progress: bool = True) -> Path:
    """The folder of a registered model: the shipped one, or the cached download (fetched first if needed)."""
    known = entries()
    if name not in known:
        raise ModelError(f"unknown model {name!r}: not a folder, and not registered ({', '.join(sorted(known))}; "
                         "see `s2f models`)")
    entry = known[name]
    cached = cached_path(entry)
    if cached is not None:
        return cached
    if entry.shipped is not None:
        raise ModelError(f"{name}: the shipped model folder {entry.shipped} is missing from this installation; "
                         "build it with `s2f demo --quick --ship` (about 10 minutes on 2 CPU cores), or reinstall "
                         "speech2face")
    target = cache_dir() / entry.folder_name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert entry.url is not None and entry.sha256 is not None  # entries() guarantees both
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as temp:
        archive = Path(temp) / "model.tar"
        fetch(entry.url, archive, progress)
        digest = sha256_of(archive)
        if digest != entry.sha256:
            raise ModelError(f"{name}: checksum mismatch for {entry.url}: got sha256 {digest}, the registry says "
                             f"{entry.sha256}; nothing was installed")
        unpacked = Path(temp) / "unpacked"
        unpack(archive, unpacked)
        folder = unpacked if (unpacked / CARD_FILE).is_file() else _single_subfolder(unpacked)
        if not (folder / CARD_FILE).is_file():
            raise ModelError(f"{name}: the archive holds no {CARD_FILE}: not a speech2face model")
        shutil.rmtree(target, ignore_errors=True)
        folder.rename(target)
    return target


def fetch(url: str, destination: Path, progress: bool = True) -> None:
    """Copy a URL (http, https, file) or a local path to `destination`, with a progress bar."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a path (a Windows drive letter is one letter)
        source = Path(urllib.parse.urlparse(url).path if scheme == "file" else url)
        if not source.is_file():
            raise ModelError(f"{url}: no such file")
        shutil.copyfile(source, destination)
        return
    if scheme not in ("http", "https"):
        raise ModelError(f"{url}: unsupported URL scheme {scheme!r} (http, https, file or a path)")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise ModelError(f"{url}: download failed ({error})") from error


def unpack(archive: Path, into: Path) -> None:
    """Extract a tar archive, refusing absolute paths, `..`, links and devices."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
                    raise ModelError(f"{archive}: unsafe archive member {member.name!r}")
            into.mkdir(parents=True)
            for member in tar.getmembers():
                destination = into.joinpath(*Path(member.name).parts)
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                with source, destination.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, OSError) as error:
        raise ModelError(f"{archive}: not a readable tar archive ({error})") from error


def _single_subfolder(folder: Path) -> Path:
    children = [p for p in folder.iterdir() if p.is_dir()]
    return children[0] if len(children) == 1 else folder


def pack(model_dir: str | os.PathLike, archive: str | os.PathLike) -> str:
    """A model folder -> a .tar.gz for a registry entry; returns its sha256."""
    model_dir, archive = Path(model_dir), Path(archive)
    if not (model_dir / CARD_FILE).is_file():
        raise ModelError(f"{model_dir}: not a model folder (no {CARD_FILE})")
    if archive.exists() and not archive.is_file():  # its sha256 is read back from it
        raise ModelError(f"{archive}: not a regular file; name a .tar.gz file to write")

    def write(temp: Path) -> None:
        with tarfile.open(temp, "w:gz") as tar:
            for path in sorted(model_dir.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(model_dir)))

    atomic_write(archive, write)
    return sha256_of(archive)
