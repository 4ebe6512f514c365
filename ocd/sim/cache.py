"""Where generated files (sample nights) are kept between runs.

The package ships generators, not large binary files: the first use writes
the file here, later uses reuse it. ``OCD_CACHE_DIR`` overrides the folder;
otherwise ``$XDG_CACHE_HOME/ocd`` or ``~/.cache/ocd``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(create: bool = True) -> Path:
    """The cache folder (created unless ``create`` is false)."""
    override = os.environ.get("OCD_CACHE_DIR")
    if override:
        folder = Path(override).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base).expanduser() / "ocd"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_path(name: str) -> Path:
    """A file name inside the cache folder."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"cache file name {name!r} must be a plain file name")
    return cache_dir() / name
