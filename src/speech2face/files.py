"""Files that survive crashes: atomic writes, and output folders that a rerun resumes instead of mixing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DataError

PREPARE_HEADER = "prepare.json"  # what `s2f prepare` wrote: settings (face encoder), synthetic or not
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else set and restored at once
    under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def plain_mode(path: Path) -> int:
    """The permission bits a plain open(path, "w") would leave: an existing file keeps its own, a new one gets
    0o666 less the umask. (A private temporary file has 0o600, which a rename would otherwise carry over.)"""
    try:
        if path.is_file():
            return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        pass
    return 0o666 & ~current_umask()


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call `write(temp_path)`, then rename the result onto `path`: a crash never leaves half a file, and the file
    gets the mode a plain open() would give it (`plain_mode`). An operating-system error names `path` (a full
    disk's has no file name of its own). A device or pipe (a `path` that exists and is not a regular file, as
    /dev/stdout) is written in place, never replaced."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        _naming(path, write, path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        _naming(path, write, Path(temp_name))
        os.chmod(temp_name, plain_mode(path))
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _naming(path: Path, write: Callable[[Path], Any], target: Path) -> None:
    """`write(target)`, its OSError about no file or about `target` re-raised as about `path`."""
    try:
        write(target)
    except OSError as error:
        if error.filename is not None and str(error.filename) != str(target):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=indent) + "\n"))


def read_header(folder: str | os.PathLike, filename: str) -> dict[str, Any]:
    """The JSON header a job wrote into its folder (`claim_folder`), or {} if there is none."""
    path = Path(folder) / filename
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error}); delete it or use another --out") from error


def claim_folder(out: Path, filename: str, header: dict[str, Any], what: str,
                 ours: Callable[[str], bool] = lambda name: False) -> None:
    """Make `out` the home of one job described by `header` (saved as `out/filename`): a new or empty
    folder is claimed; a folder whose header matches is resumed; anything else is a DataError. Files for
    which `ours(name)` holds may already be there (another node claiming the same folder right now)."""
    path = out / filename
    if path.exists():
        existing = read_header(out, filename)
        wanted = json.loads(json.dumps(header))
        if existing != wanted:
            changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
            raise DataError(f"{out} holds {what} made with other settings ({', '.join(changed)} differ); "
                            "use another --out or delete it")
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name != filename and not ours(p.name)) if out.exists() else []
    if foreign:
        raise DataError(f"{out} is not empty ({', '.join(foreign[:3])}) and holds no {what}; "
                        "use an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, header)
