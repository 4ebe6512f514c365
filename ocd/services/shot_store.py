"""The shot state store: remaining ``n_obs`` per shot and the running shot.

One small SQLite file (``[shots] state_db``) so that a restart does not
observe a finished shot again; it also keeps the record of the running shot
that lets OCD recover from its own crash (shots.md section 3). Parsing the
shot list is pure and lives in :mod:`ocd.core.shots`.

Nothing but a finished shot, or a change of ``n_obs`` in a valid shot list,
changes a remaining count (shots.md section 1): a shot that leaves the list
keeps its row (marked absent), so if it comes back with the same ``n_obs``
its count resumes instead of starting over. Every problem with the file
itself (garbage, truncated, a folder, read-only, a full disk) is a
:class:`StateDbError` that names the file and what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator

from twisted.logger import Logger

from ocd.core.shots import Shot
from ocd.services.sqlite_errors import sqlite_problem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shots (
    shotid     TEXT PRIMARY KEY,
    file_n_obs INTEGER NOT NULL,   -- n_obs as last read from the shot list
    remaining  INTEGER NOT NULL,   -- what is left to do
    present    INTEGER NOT NULL DEFAULT 1  -- 0: not in the last good shot list
);
CREATE TABLE IF NOT EXISTS running (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    shotid     TEXT NOT NULL,
    obs_number INTEGER NOT NULL,
    step       TEXT NOT NULL,
    pgid       INTEGER,
    updated    REAL NOT NULL,
    pgid_start INTEGER,            -- start time of the group leader (ticks after boot)
    boot_id    TEXT                -- /proc/sys/kernel/random/boot_id when it was written
);
"""

#: Columns added after the first release, for files written by it.
_ADDED_COLUMNS = {
    "shots": (("present", "INTEGER NOT NULL DEFAULT 1"),),
    "running": (("pgid_start", "INTEGER"), ("boot_id", "TEXT")),
}

_RUNNING_KEYS = ("shotid", "obs_number", "step", "pgid", "updated", "pgid_start", "boot_id")


class StateDbError(Exception):
    """``[shots] state_db`` cannot be used; the message names the file and the problem."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"state database {path}: {problem}")
        self.path = path
        self.problem = problem


def _why_not_writable(path: str) -> str | None:
    """"read-only ..." when the file or its folder cannot be written, else None.

    SQLite says only "unable to open database file" for a WAL database on a
    read-only file system; this says which.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"read-only: the file system of {folder} is mounted read-only"
    except OSError:
        return None
    for target in (path, folder):
        if os.path.exists(target) and not os.access(target, os.W_OK):
            return f"read-only: no permission to write {target}"
    return None


class ShotStore:
    """Remaining ``n_obs`` per shot and the running-shot record, in SQLite.

    Plain ``sqlite3``: a local file, a few rows touched per shot, each call a
    millisecond or less, so it runs in the reactor thread. Every change is
    committed at once, so a crash loses nothing.
    """

    log = Logger()

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        """Open, check and, when needed, create the file; any problem is a StateDbError.

        Checked at start so that a bad file stops ``ocd run`` (exit 2) instead
        of failing the first shot of the night: it must be a file, an intact
        SQLite database (``quick_check``) and writable (a write transaction).
        """
        path = self.path
        if os.path.isdir(path):
            raise StateDbError(path, "is a folder, not a file")
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StateDbError(path, f"cannot create its folder {parent}: {exc.strerror or exc}") from None
        db = None
        try:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                details = "; ".join(str(row[0]) for row in check[:3])
                raise StateDbError(path, f"corrupt or truncated (quick_check: {details})")
            db.executescript(_SCHEMA)
            self._add_columns(db)
            db.execute("BEGIN IMMEDIATE")  # a read-only file fails here, not at the first count
            db.execute("COMMIT")
        except StateDbError:
            if db is not None:
                db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            raise StateDbError(path, _why_not_writable(path) or sqlite_problem(exc)) from None
        return db

    @staticmethod
    def _add_columns(db: sqlite3.Connection) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed, or rolled back and a StateDbError.

        ``what`` finishes the message "cannot write ...".
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StateDbError(self.path, f"cannot write {what}: {sqlite_problem(exc)}") from None

    def _write(self, what: str, statements: list[tuple[str, Any]]) -> None:
        """Run ``statements`` in one transaction; a failure is a StateDbError."""
        with self._transaction(what) as db:
            for sql, params in statements:
                if isinstance(params, list):
                    db.executemany(sql, params)
                else:
                    db.execute(sql, params)

    def sync(self, shots: list[Shot]) -> list[Shot]:
        """Merge a freshly read, *valid* shot list; return it with the remaining counts.

        Remaining counts survive restarts; a changed ``n_obs`` in the file
        wins; new shots are added; a shot no longer in the file keeps its
        row, marked absent, and one that comes back with the same ``n_obs``
        resumes its count. Each change has a log line. Never call it for a
        file that is missing or rejected: that must change nothing.
        """
        try:
            stored = {
                row[0]: (row[1], row[2], bool(row[3]))
                for row in self._db.execute(
                    "SELECT shotid, file_n_obs, remaining, present FROM shots")
            }
        except sqlite3.Error as exc:
            raise StateDbError(self.path, f"cannot read the remaining counts: {sqlite_problem(exc)}") from None
        inserts: list[tuple[str, int, int]] = []
        updates: list[tuple[int, int, str]] = []
        back: list[tuple[str]] = []
        out: list[Shot] = []
        for shot in shots:
            known = stored.pop(shot.shotid, None)
            if known is None:
                inserts.append((shot.shotid, shot.n_obs, shot.n_obs))
                self.log.info("shot {shotid} added (n_obs {n_obs})", shotid=shot.shotid, n_obs=shot.n_obs)
                out.append(shot)
                continue
            file_n_obs, remaining, present = known
            if not present:
                back.append((shot.shotid,))
            if file_n_obs != shot.n_obs:
                updates.append((shot.n_obs, shot.n_obs, shot.shotid))
                self.log.info(
                    "shot {shotid}: n_obs in the file changed from {old} to {new}; the file wins"
                    " (remaining was {remaining})",
                    shotid=shot.shotid, old=file_n_obs, new=shot.n_obs, remaining=remaining,
                )
                out.append(shot)
                continue
            if not present:
                self.log.info("shot {shotid} is back in the shot list with the same n_obs "
                              "{n_obs}: its remaining count {remaining} resumes",
                              shotid=shot.shotid, n_obs=shot.n_obs, remaining=remaining)
            out.append(shot if remaining == shot.n_obs else shot.with_n_obs(remaining))
        gone = [(shotid,) for shotid, (_, _, present) in stored.items() if present]
        self._write("the shot list", [
            ("INSERT INTO shots (shotid, file_n_obs, remaining, present) VALUES (?, ?, ?, 1)",
             inserts),
            ("UPDATE shots SET file_n_obs = ?, remaining = ?, present = 1 WHERE shotid = ?",
             updates),
            ("UPDATE shots SET present = 1 WHERE shotid = ?", back),
            ("UPDATE shots SET present = 0 WHERE shotid = ?", gone),
        ])
        for (shotid,) in gone:
            self.log.info("shot {shotid} left the shot list; its row is kept (remaining "
                          "{remaining}) in case it comes back", shotid=shotid,
                          remaining=stored[shotid][1])
        return out

    def remaining(self, shotid: str) -> int:
        """Remaining observations of ``shotid`` (0 for a shot never seen)."""
        try:
            row = self._db.execute("SELECT remaining FROM shots WHERE shotid = ?",
                                   (shotid,)).fetchone()
        except sqlite3.Error as exc:
            raise StateDbError(self.path, f"cannot read the remaining count of {shotid}: "
                               f"{sqlite_problem(exc)}") from None
        return 0 if row is None else int(row[0])

    def count_down(self, shotid: str) -> int:
        """One observation of ``shotid`` done without error; returns what is left.

        A count that cannot be written raises :class:`StateDbError`: the
        caller must treat the shot as failed, never run it again for it.
        """
        with self._transaction(f"the remaining count of shot {shotid}") as db:
            cursor = db.execute(
                "UPDATE shots SET remaining = MAX(remaining - 1, 0) WHERE shotid = ?",
                (shotid,))
            changed = cursor.rowcount
            row = db.execute("SELECT remaining FROM shots WHERE shotid = ?",
                             (shotid,)).fetchone()
        if changed == 0:
            self.log.info("shot {shotid} finished but is not in the shot list: nothing to count down",
                          shotid=shotid)
            return 0
        left = int(row[0])
        self.log.info("shot {shotid} done: {left} observation(s) left", shotid=shotid, left=left)
        return left

    def record_running(self, shotid: str, obs_number: int, step: str, pgid: int | None = None,
                       when: float | None = None, pgid_start: int | None = None,
                       boot_id: str | None = None) -> None:
        """What a restart needs to recover a shot that was running (one row).

        ``pgid_start`` and ``boot_id`` identify the process group for sure
        (:mod:`ocd.protocols.process_groups`).
        """
        self._write("the running shot", [(
            "INSERT OR REPLACE INTO running"
            " (id, shotid, obs_number, step, pgid, updated, pgid_start, boot_id)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            (shotid, int(obs_number), step, pgid, time.time() if when is None else when,
             pgid_start, boot_id),
        )])

    def clear_running(self) -> None:
        self._write("the end of the running shot", [("DELETE FROM running", ())])

    def running(self) -> dict[str, Any] | None:
        try:
            row = self._db.execute(
                f"SELECT {', '.join(_RUNNING_KEYS)} FROM running WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            raise StateDbError(self.path, f"cannot read the running shot: {sqlite_problem(exc)}") from None
        if row is None:
            return None
        return dict(zip(_RUNNING_KEYS, row))

    def close(self) -> None:
        self._db.close()


def remaining_counts(path: str | os.PathLike[str], shots: list[Shot]) -> list[Shot]:
    """``shots`` with the remaining counts of the state database at ``path``, read only.

    The same rule as :meth:`ShotStore.sync` (a changed ``n_obs`` in the file
    wins; a shot the database does not know has its file count) without
    writing anything: for ``ocd plan``, which must not touch a running OCD's
    state. A missing file, or one without the table yet, means nothing
    observed yet; any other problem (a folder, not SQLite, a ``shots`` table
    without its columns) is a :class:`StateDbError`, never "nothing
    observed", which would plan the shots already done again.
    """
    if not os.path.exists(path):
        return list(shots)
    try:
        db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StateDbError(os.fspath(path), sqlite_problem(exc)) from None
    try:
        stored = {row[0]: (row[1], row[2])
                  for row in db.execute("SELECT shotid, file_n_obs, remaining FROM shots")}
    except sqlite3.Error as exc:
        if str(exc) != "no such table: shots":  # a new, empty file has no table yet
            raise StateDbError(os.fspath(path), "cannot read the remaining counts: "
                                                f"{sqlite_problem(exc)}") from None
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
