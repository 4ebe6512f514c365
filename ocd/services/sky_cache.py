"""Sky spans kept between starts of OCD, in OCD's cache folder.

Why: the first decision of a process needs a sky span
(:mod:`ocd.core.scheduler`): the apparent sidereal time and the Sun's altitude
on a 28-hour grid and the apparent place of every shot. Computing it costs
about a second of CPU at every start of ``ocd run`` and ``twistd ocd``
(importing astropy's coordinates, handing it its IERS table, the Sun over
the grid), the second a restarted OCD spends before it decides again. A span
is built on a whole hour (:func:`ocd.core.scheduler.sky_origin`), so a start
within the same hour as an earlier one needs the very numbers that start
computed: they are kept in a file and read back (a few milliseconds), and
astropy is not even imported.

What is kept, per span: the time grid (``sky-*.npz`` with kind
``time_grid``) and, per shot list, the apparent places of its shots (kind
``apparent_places``, keyed by a hash of the right ascensions and
declinations). The key, in the file and hashed into its name, holds every
input of the numbers: the hour, the site, the grid's step and extent, the
versions of astropy, pyerfa, numpy and ``astropy-iers-data``, the IERS
files (path, size, modification time) and a hash of the code of OCD's
modules that compute a span. A file made by anything else is not
used. Files follow :mod:`ocd.services.cache_files` (``.npz`` without pickles,
our own files only, written atomically); a file that cannot be used is
computed again and written over; a folder that cannot be written costs only
the time it would have saved. Files older than :data:`PRUNE_AGE` are
removed when a new one is written, so the folder keeps about a week of them
(a few tens of kilobytes a day).

When the cache cannot be trusted to match astropy (a ``finals2000A.all`` in
the working directory, which astropy then reads instead of its bundled
tables), spans are computed and neither read nor written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from twisted.application.service import Service
from twisted.logger import Logger

from ocd.core import scheduler
from ocd.core.scheduler import AstropySky, SkySource, TimeGrid
from ocd.core.site import HET_HEIGHT, HET_LATITUDE, HET_LONGITUDE
from ocd.services.cache_files import CacheUnusable, check_owner, open_npz, write_npz
from ocd.services.earth_orientation import CWD_FINALS, iers_files, install

log = Logger(namespace="ocd.sky_cache")

#: Bumped when what is written changes: older files are then ignored.
FORMAT = 1
#: Sky files not touched for this long are removed when a new one is written, s.
PRUNE_AGE = 8 * 86400.0
#: The distributions whose code or data makes the numbers.
DISTRIBUTIONS = ("astropy", "pyerfa", "numpy", "astropy-iers-data")
#: OCD's modules whose code makes the numbers: a span kept by another version
#: of them (an upgrade, a change under test) is computed again.
CODE_MODULES = ("ocd.core.scheduler", "ocd.core.astro", "ocd.core.site")


@functools.cache
def software_key() -> dict[str, Any]:
    """Everything but the hour and the shots that the numbers depend on.

    Read without importing astropy (that import is most of what a cache
    hit saves): versions from the installed distributions' metadata, the
    IERS files (:func:`~ocd.services.earth_orientation.iers_files`), and a hash of
    OCD's own modules that compute a span (:data:`CODE_MODULES`).
    """
    from importlib import metadata
    from importlib.util import find_spec

    code = hashlib.sha256()
    for name in CODE_MODULES:  # their files, read: importing ocd.core.astro imports astropy
        spec = find_spec(name)
        assert spec is not None and spec.origin is not None, name
        code.update(Path(spec.origin).read_bytes())
    return {
        "format": FORMAT,
        "versions": {name: metadata.version(name) for name in DISTRIBUTIONS},
        "code": code.hexdigest(),
        "iers_files": iers_files(),
        "site": [HET_LATITUDE, HET_LONGITUDE, HET_HEIGHT],
        "grid": [scheduler.GRID_STEP, scheduler.SPAN_BEFORE, scheduler.SPAN_AFTER],
    }


def places_digest(ra_hours: np.ndarray, dec_deg: np.ndarray) -> str:
    """A hash of a shot list's places, in the key of its apparent places."""
    data = np.ascontiguousarray(ra_hours, dtype="<f8").tobytes()
    data += np.ascontiguousarray(dec_deg, dtype="<f8").tobytes()
    return hashlib.sha256(data).hexdigest()


def sky_file(folder: Path, key: dict[str, Any]) -> Path:
    """The file of ``key`` in ``folder`` (the key's hash in the name)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"sky-{digest}.npz"


class SkyCache:
    """A :class:`~ocd.core.scheduler.SkySource` that keeps what it computes (module doc).

    ``before_compute`` runs once before the first span this process must
    compute (the service hands astropy its IERS table there: a start that
    finds its span in the cache never reads it). ``hits`` and ``computed``
    count spans for the log and the tests.
    """

    def __init__(self, folder: Path, compute: SkySource | None = None,
                 before_compute: Callable[[], object] | None = None) -> None:
        self.folder = Path(folder)
        self.compute = compute if compute is not None else AstropySky()
        self._before_compute = before_compute
        self._memo: dict[str, dict[str, np.ndarray]] = {}
        self._unkeyed = False
        self.hits = 0
        self.computed = 0

    def time_grid(self, origin: float) -> TimeGrid:
        def compute() -> dict[str, np.ndarray]:
            grid = self.compute.time_grid(origin)
            return {"times": grid.times, "last": grid.last, "rate": np.asarray(grid.rate),
                    "sun_alt": grid.sun_alt}

        arrays = self._arrays("time_grid", origin, {}, compute)
        for name in ("times", "last", "sun_alt"):
            arrays[name].setflags(write=False)
        return TimeGrid(arrays["times"], arrays["last"], float(arrays["rate"]), arrays["sun_alt"])

    def apparent_places(self, origin: float, ra_hours: np.ndarray,
                        dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(ra_hours):
            return self.compute.apparent_places(origin, ra_hours, dec_deg)

        def compute() -> dict[str, np.ndarray]:
            ra, dec = self.compute.apparent_places(origin, ra_hours, dec_deg)
            return {"ra": np.asarray(ra), "dec": np.asarray(dec)}

        arrays = self._arrays("apparent_places", origin, {
            "places": places_digest(ra_hours, dec_deg), "count": len(ra_hours)}, compute)
        if arrays["ra"].shape != (len(ra_hours),) or arrays["dec"].shape != (len(ra_hours),):
            arrays = compute()  # a file under this key that holds something else
        return arrays["ra"].copy(), arrays["dec"].copy()

    # -- the files ------------------------------------------------------------
    def _arrays(self, kind: str, origin: float, extra: dict[str, Any],
                compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The arrays of this span: from the memo, the folder, or ``compute`` (then kept).

        Never raises for a cache problem: the decision that asked must be made.
        """
        try:
            key = dict(software_key(), kind=kind, origin=float(origin), **extra)
        except (OSError, ImportError, ValueError) as exc:  # a broken installation
            if not self._unkeyed:
                self._unkeyed = True
                log.info("sky spans are not kept: their key cannot be made ({why})",
                         why=f"{type(exc).__name__}: {exc}")
            self._prepare()
            return compute()
        path = sky_file(self.folder, key)
        memo = self._memo.get(path.name)
        if memo is not None:
            return memo
        trusted = not os.path.exists(CWD_FINALS)
        arrays = self._read(path, key) if trusted else None
        if arrays is None:
            self._prepare()
            arrays = compute()
            self.computed += 1
            if trusted:
                self._write(path, key, arrays)
        else:
            self.hits += 1
        self._memo[path.name] = arrays
        return arrays

    def _prepare(self) -> None:
        """``before_compute``, once."""
        if self._before_compute is not None:
            prepare, self._before_compute = self._before_compute, None
            prepare()

    def _read(self, path: Path, key: dict[str, Any]) -> dict[str, np.ndarray] | None:
        try:
            check_owner(self.folder, "cache folder")
            with open_npz(path) as data:
                if json.loads(str(data["key"][()])) != key:
                    raise CacheUnusable("it was made for another sky")
                arrays = {name: data[name] for name in data.files if name != "key"}
        except FileNotFoundError:
            return None
        except Exception as exc:  # whatever a damaged file raises (a bad CRC is zipfile's own)
            log.info("sky span cache file {path} not used: {why}", path=str(path),
                     why=f"{type(exc).__name__}: {exc}")
            return None
        log.debug("sky span from the cache file {path}", path=str(path))
        return arrays

    def _write(self, path: Path, key: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            if self.folder.exists():
                check_owner(self.folder, "cache folder")
            write_npz(path, dict(arrays, key=np.array(json.dumps(key, sort_keys=True))))
            self._prune(keep=path)
        except Exception as exc:  # a cache that cannot be written costs only its saving
            log.info("sky span not kept in {path}: {why}", path=str(path),
                     why=f"{type(exc).__name__}: {exc}")

    def _prune(self, keep: Path) -> None:
        """Remove sky files older than :data:`PRUNE_AGE` (module doc)."""
        limit = time.time() - PRUNE_AGE
        for old in self.folder.glob("sky-*.npz"):
            try:
                if old != keep and old.stat().st_mtime < limit:
                    old.unlink()
            except OSError:
                pass  # another OCD pruned it first


def log_install(folder: Path | None = None) -> str:
    """Hand astropy its IERS table (:func:`ocd.services.earth_orientation.install`) and log how."""
    how = install(folder)
    if how.startswith("from the cache"):
        log.debug("earth orientation (IERS) table {how}", how=how)
    else:
        log.info("earth orientation (IERS) table {how}", how=how)
    return how


def keep_sky_spans() -> SkySource | None:
    """Make this process's sky spans come from, and go to, OCD's cache folder.

    Returns the source there was, to put back (``None`` when the folder is
    unusable: spans are then computed as before, with the IERS table handed
    to astropy now). The IERS table is otherwise handed over only when a
    span must be computed.
    """
    from ocd.sim.cache import cache_dir

    try:
        folder = cache_dir()
    except OSError as exc:
        log.info("sky spans are not kept: {why}", why=str(exc))
        log_install()
        return None
    return scheduler.use_sky_source(SkyCache(folder, before_compute=lambda: log_install(folder)))


class SkyService(Service):
    """Sets where this process's sky spans come from, before the first decision
    (:func:`keep_sky_spans`). Stopping puts back the source there was: a service
    tree started and stopped in one process, as the tests and ``ocd
    simulate_night`` do, leaves nothing behind.
    """

    name = "sky"

    def __init__(self) -> None:
        self._previous: SkySource | None = None

    def startService(self) -> None:
        Service.startService(self)
        self._previous = keep_sky_spans()

    def stopService(self) -> None:
        Service.stopService(self)
        if self._previous is not None:
            scheduler.use_sky_source(self._previous)
            self._previous = None
