"""The shot list OCD decides on: the shot file as last read well, with its counts kept.

shots.md section 1: the file is read again whenever it changes (its size or
modification time); the remaining ``n_obs`` of each shot live in the state
database (:class:`ocd.services.shot_store.ShotStore`), so a restart or an
edited file never brings back an observation that was taken. A file that is
missing or rejected, or whose counts cannot be kept, changes nothing that
was known: OCD goes on deciding on the last good list (none at start: no
shots). This module only keeps the list; what to say and whom to alert is
the orchestrator's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ocd.core.decide import DecisionSettings
from ocd.core.scheduler import Scheduler
from ocd.core.shots import ShotListError, parse_shot_file
from ocd.services.shot_store import ShotStore, StateDbError

#: The signature of a shot file that cannot be read at all.
MISSING = "missing"


class ShotList:
    """The :class:`~ocd.core.scheduler.Scheduler` of the last good list, and its counts."""

    def __init__(self, settings: DecisionSettings, counters: Any) -> None:
        self.scheduler = Scheduler([], settings)
        self.counters = counters
        #: Where the remaining counts are kept (None: in memory only, as in tests).
        self.store: ShotStore | None = None
        #: Has a valid list been read since start? (A later missing or rejected
        #: file then keeps it.)
        self.have_good_list = False
        self._signature: Any = None

    def file_changed(self, path: Path | None) -> bool:
        """Note the shot file's size and modification time; True when they differ
        from those noted last (a file that appears or goes is a change too)."""
        try:
            stat = os.stat(path) if path is not None else None
            signature = None if stat is None else (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = MISSING
        changed = signature != self._signature
        self._signature = signature
        return changed

    def read(self, path: Path | None, settings: DecisionSettings) -> str | None:
        """Read ``path`` and make it the list in force: None when it was read,
        else what is wrong, for a person (the list in force is then kept)."""
        if path is None or not os.path.exists(path):
            self.counters.increment("shot_file.missing")
            return f"shot file {path} does not exist"
        try:
            shots = parse_shot_file(path)
        except ShotListError as exc:
            self.counters.increment("shot_file.rejected")
            return f"shot file rejected: {exc}"
        if self.store is not None:
            try:
                shots = self.store.sync(shots)
            except StateDbError as exc:
                self.counters.increment("state_db.errors")
                return f"shot file {path} read, but the remaining counts cannot be kept: {exc}"
        self.have_good_list = True
        self.scheduler = Scheduler(shots, settings)
        return None

    def count_down(self, shotid: str) -> None:
        """One observation fewer of ``shotid``, kept in the state database.

        Raises :class:`StateDbError` when the count cannot be written (disk
        full, read-only or corrupt database); the count goes down in memory
        all the same, so that the same shot is not picked again for it.
        """
        known = {s.shotid: s.n_obs for s in self.scheduler.shots}
        left = max(known.get(shotid, 0) - 1, 0)
        try:
            if self.store is not None:
                left = self.store.count_down(shotid)
        except StateDbError:
            self.counters.increment("state_db.errors")
            raise
        finally:
            if shotid in known:
                self.scheduler = self.scheduler.with_remaining({shotid: left})
