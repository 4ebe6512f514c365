"""The shot state store: remaining ``n_obs`` per shot and the running shot.

One small SQLite file (``[shots] state_db``) so that a restart does not
observe a finished shot again; it also keeps the record of the running shot
that lets OCD recover from its own crash (shots.md section 3). Parsing the
shot list is pure and lives in :mod:`ocd.core.shots`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from twisted.logger import Logger

from ocd.core.shots import Shot

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shots (
    shotid     TEXT PRIMARY KEY,
    file_n_obs INTEGER NOT NULL,   -- n_obs as last read from the shot list
    remaining  INTEGER NOT NULL    -- what is left to do
);
CREATE TABLE IF NOT EXISTS running (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    shotid     TEXT NOT NULL,
    obs_number INTEGER NOT NULL,
    step       TEXT NOT NULL,
    pgid       INTEGER,
    updated    REAL NOT NULL
);
"""


class ShotStore:
    """Remaining ``n_obs`` per shot and the running-shot record, in SQLite.

    Plain ``sqlite3``: a local file, a few rows touched per shot, each call a
    millisecond or less, so it runs in the reactor thread. Every change is
    committed at once, so a crash loses nothing.
    """

    log = Logger()

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def sync(self, shots: list[Shot]) -> list[Shot]:
        """Merge a freshly read shot list; return it with the remaining counts.

        Remaining counts survive restarts; a changed ``n_obs`` in the file
        wins; new shots are added and shots no longer in the file dropped,
        each with a log line.
        """
        stored = {
            row[0]: (row[1], row[2])
            for row in self._db.execute("SELECT shotid, file_n_obs, remaining FROM shots")
        }
        inserts: list[tuple[str, int, int]] = []
        updates: list[tuple[int, int, str]] = []
        out: list[Shot] = []
        for shot in shots:
            known = stored.pop(shot.shotid, None)
            if known is None:
                inserts.append((shot.shotid, shot.n_obs, shot.n_obs))
                self.log.info("shot {shotid} added (n_obs {n_obs})", shotid=shot.shotid, n_obs=shot.n_obs)
                out.append(shot)
            elif known[0] != shot.n_obs:
                updates.append((shot.n_obs, shot.n_obs, shot.shotid))
                self.log.info(
                    "shot {shotid}: n_obs in the file changed from {old} to {new}; the file wins"
                    " (remaining was {remaining})",
                    shotid=shot.shotid, old=known[0], new=shot.n_obs, remaining=known[1],
                )
                out.append(shot)
            else:
                out.append(shot if known[1] == shot.n_obs else shot.with_n_obs(known[1]))
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT INTO shots VALUES (?, ?, ?)", inserts)
            self._db.executemany("UPDATE shots SET file_n_obs = ?, remaining = ? WHERE shotid = ?", updates)
            self._db.executemany("DELETE FROM shots WHERE shotid = ?", [(k,) for k in stored])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        for shotid, (_, remaining) in stored.items():
            self.log.info("shot {shotid} dropped: no longer in the shot list (remaining {remaining})",
                          shotid=shotid, remaining=remaining)
        return out

    def remaining(self, shotid: str) -> int:
        """Remaining observations of ``shotid`` (0 for a shot not in the list)."""
        row = self._db.execute("SELECT remaining FROM shots WHERE shotid = ?", (shotid,)).fetchone()
        return 0 if row is None else int(row[0])

    def count_down(self, shotid: str) -> int:
        """One observation of ``shotid`` done without error; returns what is left."""
        cursor = self._db.execute(
            "UPDATE shots SET remaining = MAX(remaining - 1, 0) WHERE shotid = ?", (shotid,)
        )
        if cursor.rowcount == 0:
            self.log.info("shot {shotid} finished but is not in the shot list: nothing to count down",
                          shotid=shotid)
            return 0
        left = self.remaining(shotid)
        self.log.info("shot {shotid} done: {left} observation(s) left", shotid=shotid, left=left)
        return left

    def record_running(self, shotid: str, obs_number: int, step: str, pgid: int | None = None,
                       when: float | None = None) -> None:
        """What a restart needs to recover a shot that was running (one row)."""
        self._db.execute(
            "INSERT OR REPLACE INTO running (id, shotid, obs_number, step, pgid, updated)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (shotid, int(obs_number), step, pgid, time.time() if when is None else when),
        )

    def clear_running(self) -> None:
        self._db.execute("DELETE FROM running")

    def running(self) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT shotid, obs_number, step, pgid, updated FROM running WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("shotid", "obs_number", "step", "pgid", "updated"), row))

    def close(self) -> None:
        self._db.close()


def remaining_counts(path: str | os.PathLike[str], shots: list[Shot]) -> list[Shot]:
    """``shots`` with the remaining counts of the state database at ``path``, read only.

    The same rule as :meth:`ShotStore.sync` (a changed ``n_obs`` in the file
    wins; a shot the database does not know has its file count) without
    writing anything: for ``ocd plan``, which must not touch a running OCD's
    state. A missing file means nothing observed yet.
    """
    if not os.path.exists(path):
        return list(shots)
    db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        stored = {row[0]: (row[1], row[2])
                  for row in db.execute("SELECT shotid, file_n_obs, remaining FROM shots")}
    except sqlite3.OperationalError:  # a new, empty file: no table yet
        stored = {}
    finally:
        db.close()
    out = []
    for shot in shots:
        known = stored.get(shot.shotid)
        if known is None or known[0] != shot.n_obs or known[1] == shot.n_obs:
            out.append(shot)
        else:
            out.append(shot.with_n_obs(known[1]))
    return out
