"""Files of OCD's cache folder that hold numpy arrays: written whole, read only if ours.

Two caches keep computed astronomy between starts of OCD (the IERS table,
:mod:`ocd.services.earth_orientation`; sky spans, :mod:`ocd.services.sky_cache`).
Both follow the same rules, kept here once:

- numpy's ``.npz``, read with ``allow_pickle=False``: loading a file cannot
  run code, whoever wrote it;
- a file, and the folder it is in, is used only when it belongs to the user
  running OCD (numbers planted by someone else would move every pointing)
  and is a regular file;
- a file is written to a temporary name in the same folder and renamed over
  the old one: a reader (another OCD starting, a parallel test) sees the old
  file or the new one, never half of one.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Mapping


class CacheUnusable(Exception):
    """The cache file cannot be used (the message says why); it is rebuilt."""


def check_owner(path: Path, what: str, follow: bool = True) -> os.stat_result:
    """``os.stat`` of ``path``; :class:`CacheUnusable` when another user owns it."""
    info = os.stat(path, follow_symlinks=follow)
    if info.st_uid != os.geteuid():
        raise CacheUnusable(f"the {what} belongs to user id {info.st_uid}, not to this user")
    return info


def write_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` to ``path`` as ``.npz``, atomically (module doc)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise


def open_npz(path: Path) -> Any:
    """``numpy.load`` of our own regular file ``path``, without pickles.

    :class:`OSError` (``FileNotFoundError`` when there is none) or
    :class:`CacheUnusable` when the file is not one to read.
    """
    import numpy as np

    info = check_owner(path, "cache file", follow=False)
    if not stat.S_ISREG(info.st_mode):
        raise CacheUnusable("it is not a regular file")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # a corrupt or foreign file: whatever numpy raises
        raise CacheUnusable(f"it cannot be read ({type(exc).__name__}: {exc})") from None
