"""astropy's Earth-orientation (IERS) table, kept between starts of OCD.

Why: the first apparent sidereal time a process asks astropy for needs
UT1-UTC, so astropy builds its default table, ``IERS_Auto.open()``: it
parses the bundled ``finals2000A.all`` and IERS-B text files
(``astropy-iers-data``) with ``astropy.io.ascii`` and merges them. That is
about 0.75 s of CPU on every start of ``ocd run`` and ``twistd ocd`` (the
first decision builds the sky), for a table that only changes when astropy
or its IERS data package is upgraded. The table as built is kept in a file
and handed back to astropy on the next start through its public API
(``astropy.utils.iers.earth_orientation_table.set``): about 0.02 s.

What is kept: every column of the table astropy built (values, units,
masks) and its ``meta`` (the index of the first predicted row, which
astropy's own checks read), so the table given back is the one astropy
would have built: ``tests/test_earth_orientation.py`` compares every
column and the sidereal times of a cold and a warm start.

The format is numpy's ``.npz`` read with ``allow_pickle=False``, never a
pickle: loading a file cannot run code, whoever wrote it. A file is used
only when it and its folder belong to the user running OCD (a table
planted by someone else would move every pointing), and only when it was
made from the same astropy, the same ``astropy-iers-data`` and the same
bundled files (path, size and modification time; the key is in the file
and, hashed, in its name, so two installations side by side keep one file
each). Anything else (a corrupt, truncated or foreign file, a file of
another version) is ignored, and the table is built by astropy as before
and written again. A cache that cannot be written costs only the time it
would have saved. A ``finals2000A.all`` in the working directory is what
astropy reads then (its old behaviour, with a deprecation warning): the
cache is not used at all.

Where: :func:`ocd.sim.cache.cache_dir`, OCD's one folder of generated files
that can be thrown away (``OCD_CACHE_DIR``, else ``$XDG_CACHE_HOME/ocd`` or
``~/.cache/ocd``): it is per user and per machine like the table, it is
where the sample nights already go, and tests point it at their own folder.
No configuration option: where a cache lives is not a site setting.

The table is handed to astropy by :mod:`ocd.services.sky_cache` right
before the first sky span a process must compute: a start that finds its
span kept from an earlier start, or that fails before its first decision
(a URL that cannot be bound, a bad state database), does not pay for
astropy at all. The pure core (:mod:`ocd.core.scheduler`) never sees any of
this: it asks astropy, which has the table already.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ocd.services.cache_files import CacheUnusable, check_owner, open_npz, write_npz

#: Bumped when what is written changes: older files are then ignored.
FORMAT = 1
#: The file astropy reads instead of its bundled one when it is in the
#: working directory (``astropy.utils.iers.IERS_A.read``).
CWD_FINALS = "finals2000A.all"

#: Set once the table was handed to astropy in this process.
_installed: str | None = None


def iers_files() -> list[list[Any]]:
    """``[path, size, modification time]`` of the IERS files astropy bundles.

    The paths are ``astropy_iers_data``'s (the ones ``astropy.utils.iers``
    reads), read without importing astropy: the sky cache's key needs them
    on every start, including those that never import astropy.
    """
    import astropy_iers_data

    files = []
    for path in (astropy_iers_data.IERS_A_FILE, astropy_iers_data.IERS_A_README,
                 astropy_iers_data.IERS_B_FILE, astropy_iers_data.IERS_B_README):
        info = os.stat(path)
        files.append([str(path), info.st_size, info.st_mtime_ns])
    return files


def cache_key() -> dict[str, Any]:
    """What the table depends on: astropy, its IERS data, the bundled files."""
    import astropy
    import astropy_iers_data

    return {"format": FORMAT, "astropy": astropy.__version__,
            "astropy_iers_data": astropy_iers_data.__version__, "files": iers_files()}


def cache_file(folder: Path, key: dict[str, Any]) -> Path:
    """The file of ``key`` in ``folder`` (the key's hash in the name)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"iers-{digest}.npz"


def save_table(table: Any, path: Path, key: dict[str, Any]) -> None:
    """Write ``table`` (an astropy IERS table) to ``path``, atomically.

    Written to a temporary file in the same folder and renamed over
    ``path``: a reader (another OCD starting, a parallel test) sees the old
    file or the new one, never half of one. :class:`CacheUnusable` when the
    table holds something this format does not keep (a newer astropy).
    """
    import numpy as np
    from astropy import units as u
    from astropy.table import MaskedColumn

    arrays: dict[str, Any] = {}
    columns = []
    for i, name in enumerate(table.colnames):
        column = table[name]
        if isinstance(column, u.Quantity):
            if getattr(column, "mask", None) is not None:
                raise CacheUnusable(f"column {name} is a masked quantity")
            columns.append({"name": name, "kind": "quantity", "unit": column.unit.to_string()})
            arrays[f"c{i}"] = column.value
        elif isinstance(column, MaskedColumn):
            columns.append({"name": name, "kind": "masked"})
            arrays[f"c{i}"] = column.data.data
            arrays[f"m{i}"] = np.ma.getmaskarray(column)
        elif type(column).__name__ == "Column":
            columns.append({"name": name, "kind": "column"})
            arrays[f"c{i}"] = np.asarray(column)
        else:
            raise CacheUnusable(f"column {name} is a {type(column).__name__}")
        if arrays[f"c{i}"].dtype.hasobject:
            raise CacheUnusable(f"column {name} holds Python objects")
    meta: dict[str, Any] = {}
    for i, (name, value) in enumerate(table.meta.items()):
        if isinstance(value, np.generic):
            meta[name] = {"array": f"meta{i}"}
            arrays[f"meta{i}"] = np.asarray(value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            meta[name] = {"json": value}
        else:
            raise CacheUnusable(f"meta {name} is a {type(value).__name__}")
    header = {"key": key, "class": type(table).__name__, "columns": columns, "meta": meta}
    arrays["header"] = np.array(json.dumps(header))
    write_npz(path, arrays)


def load_table(path: Path, key: dict[str, Any]) -> Any:
    """The ``IERS_Auto`` table kept in ``path`` for ``key``.

    :class:`CacheUnusable` (or :class:`OSError` when there is no file) for
    a file that is not ours, not a cache of ``key``, or not readable.
    """
    from astropy import units as u
    from astropy.table import Column, MaskedColumn
    from astropy.utils import iers

    data_file = open_npz(path)
    try:
        with data_file as data:
            header = json.loads(str(data["header"][()]))
            if header.get("key") != key:
                raise CacheUnusable("it was made for another astropy or other IERS files")
            if header.get("class") != "IERS_Auto":
                raise CacheUnusable(f"it holds a {header.get('class')!r} table")
            columns: dict[str, Any] = {}
            for i, spec in enumerate(header["columns"]):
                name, kind, values = spec["name"], spec["kind"], data[f"c{i}"]
                if kind == "quantity":
                    columns[name] = u.Quantity(values, spec["unit"], copy=False)
                elif kind == "masked":
                    columns[name] = MaskedColumn(values, mask=data[f"m{i}"], name=name)
                elif kind == "column":
                    columns[name] = Column(values, name=name)
                else:
                    raise CacheUnusable(f"column {name} has an unknown kind {kind!r}")
            meta = {name: (data[spec["array"]][()] if "array" in spec else spec["json"])
                    for name, spec in header["meta"].items()}
    except CacheUnusable:
        raise
    except Exception as exc:  # a corrupt or foreign file: whatever numpy or json raise
        raise CacheUnusable(f"it cannot be read ({type(exc).__name__}: {exc})") from None
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1 or "MJD" not in columns:
        raise CacheUnusable("its columns do not make a table")
    return iers.IERS_Auto(columns, meta=meta, copy=False)


def cached_table(folder: Path) -> tuple[Any, str]:
    """The IERS table for this astropy: from ``folder``'s cache or built and kept.

    Returns ``(table, how)``; ``how`` says where it came from, for the log.
    Does not change astropy's state (:func:`install` does). A folder that
    belongs to another user is neither read nor written.
    """
    import ocd.core.astro  # noqa: F401  (offline set-up before astropy reads anything)
    from astropy.utils import iers

    key = cache_key()
    path = cache_file(folder, key)
    try:
        check_owner(folder, "cache folder")
    except FileNotFoundError:
        pass  # save_table makes it
    except (CacheUnusable, OSError) as exc:
        return iers.IERS_Auto.open(), f"read from astropy's IERS files (cache not used: {exc})"
    problem = "no cache file yet"
    try:
        return load_table(path, key), f"from the cache file {path}"
    except FileNotFoundError:
        pass
    except (CacheUnusable, OSError) as exc:
        problem = f"the cache file was ignored: {exc}"
    table = iers.IERS_Auto.open()
    try:
        save_table(table, path, key)
    except (CacheUnusable, OSError) as exc:
        return table, (f"read from astropy's IERS files ({problem}); it cannot be kept "
                       f"in {path}: {exc}")
    return table, f"read from astropy's IERS files ({problem}) and kept in {path}"


def install(folder: Path | None = None) -> str:
    """Hand astropy its IERS table, from the cache when it can; says what it did.

    Once per process, and only while astropy has not built the table itself
    (then there is nothing left to save). ``folder`` defaults to
    :func:`ocd.sim.cache.cache_dir`. Never raises for a cache problem: the
    worst case is astropy reading its files, as it always did.
    """
    global _installed
    if _installed is not None:
        return _installed
    from astropy.utils import iers

    if iers.IERS_Auto.iers_table is not None:
        _installed = "already read by astropy in this process"
    elif os.path.exists(CWD_FINALS):
        _installed = (f"not cached: astropy reads {CWD_FINALS} from the working "
                      f"directory {os.getcwd()}")
    else:
        try:
            if folder is None:
                from ocd.sim.cache import cache_dir

                folder = cache_dir()
            table, how = cached_table(folder)
        except OSError as exc:  # no cache folder at all (a read-only home)
            _installed = f"not cached: {exc}"
        else:
            iers.earth_orientation_table.set(table)
            _installed = how
    return _installed
