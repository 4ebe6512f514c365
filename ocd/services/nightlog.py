"""The night log: what OCD decided and did, night after night, in SQLite.

:class:`NightLog` is a service of ``ocd run`` and a listener of
``MainLoop.publish`` (the one place all of OCD's outgoing events pass), so
it sees every ``ocd.decision.made``, every state change and every
``ocd.run_shot.*`` event, whoever ran the shot; the orchestrator hands it
every alert. It keeps only what a person asks the morning after, and only
changes: one row per change of decision (verdict, blockers, picked shot),
per change of arming (who, why), per shot start, step and end (observation
number, outcome), per alert, and one when OCD starts and stops.

The file (``[general] night_log``) is SQLite in WAL mode: every row is its
own transaction, so a crash (even a SIGKILL mid-write) loses at most the row
being written and never leaves a broken file; it is appended to across
restarts. Times are OCD's clock (``time``; the night's time, also in a
replay) and the machine's (``wall``). The schema is documented in
docs/operations.md ("The night log") and is kept stable: ``meta`` holds
``schema_version``.

:mod:`ocd.services.night_report` reads it back for the night report of
``ocd night_report`` and ``ocd simulate_night``; :mod:`ocd.services.night_plot`
draws its timeline.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.logger import Logger

from ocd.core.events import Event
from ocd.core.site import HET_LONGITUDE
from ocd.core.topics import ArmingTransition, Blocker, ExecStatus, MachineName, ShotTransition, Topic
from ocd.services.sqlite_errors import sqlite_problem

log = Logger(namespace="ocd.night_log")

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    night      TEXT NOT NULL,
    time       REAL NOT NULL,
    wall       REAL NOT NULL,
    run        INTEGER,
    kind       TEXT NOT NULL,
    what       TEXT NOT NULL,
    shotid     TEXT,
    obs_number INTEGER,
    blockers   TEXT,
    outcome    TEXT,
    who        TEXT,
    reason     TEXT,
    details    TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_night ON entries (night, id);
"""

#: ``kind`` values, and what ``what`` says for each.
OCD, DECISION, ARMING, SHOT, ALERT = "ocd", "decision", "arming", "shot", "alert"
#: The key of a decision row's details in shadow mode ([run] shadow).
SHADOW = "shadow"
#: The blocker that means "busy observing": reported apart, not as time lost.
OBSERVING = Blocker.SHOT_RUNNING.value

SHOT_TOPICS = {Topic.RUN_SHOT_RUN: "run", Topic.RUN_SHOT_SETUP: "setup_telescope",
               Topic.RUN_SHOT_EXPOSURE: "exposure"}

#: The HET's longitude in hours: a night runs from local mean noon to noon.
_HET_LONGITUDE_HOURS = HET_LONGITUDE / 15.0


def night_of(epoch: float) -> str:
    """The date of the evening a night began, at the HET (noon to noon local mean time)."""
    local = datetime.fromtimestamp(epoch, tz=timezone.utc) + timedelta(
        hours=_HET_LONGITUDE_HOURS - 12.0)
    return local.date().isoformat()


def utc_clock(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(
        epoch, tz=timezone.utc).strftime("%H:%M:%S")


def utc_iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(
        epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_night_log(path: str | Path) -> sqlite3.Connection:
    """Open (creating) a night log: WAL, one transaction per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed row survives a crash of OCD; a power cut may
        # lose the last rows but never leaves a broken file.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=2000")
        conn.executescript(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (SCHEMA_VERSION,))
    except BaseException:
        conn.close()
        raise
    return conn


def _who_and_reason(change: Mapping[str, Any]) -> tuple[str, str]:
    msg = str(change.get("msg") or "")
    if change.get("transition") == ArmingTransition.SELF_DISARM:
        return "OCD", msg
    if msg.startswith("ocd allow_hetdex") and " (" in msg and msg.endswith(")"):
        command, reason = msg[:-1].split(" (", 1)
        if reason.startswith("asked by "):
            return reason[len("asked by "):], command
        return command, reason
    return "?", msg


class NightLog(Service):
    """Writes the night log; see the module doc. ``clock`` is OCD's clock."""

    def __init__(self, path: str | Path, clock: Callable[[], float],
                 wall: Callable[[], float] | None = None, program: str = "ocd run"):
        self.setName("night_log")
        self.path = Path(path)
        self.clock = clock
        self.wall = wall or (lambda: datetime.now(timezone.utc).timestamp())
        self.program = program
        self.conn: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self._last_decision: tuple[Any, ...] | None = None

    # -- lifecycle ------------------------------------------------------------
    def startService(self) -> None:
        try:
            self.conn = open_night_log(self.path)
        except (sqlite3.Error, OSError) as exc:
            # One line naming the option: ``ocd run`` and ``twistd ocd`` stop (exit 2).
            from ocd.config import ConfigError

            raise ConfigError(f"[general] night_log = {str(self.path)!r}: cannot be opened "
                              f"for writing: {sqlite_problem(exc)}") from None
        self._last_decision = None
        self.run_id = None
        self.run_id = self.write(OCD, "start", reason=f"{self.program} (pid {os.getpid()})")
        if self.run_id is not None:
            with self.conn:  # a run is named by the id of its start row
                self.conn.execute("UPDATE entries SET run = id WHERE id = ?", (self.run_id,))
        log.info("night log in {path}", path=str(self.path))
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        self.write(OCD, "stop", reason=f"{self.program} (pid {os.getpid()})")
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- writing --------------------------------------------------------------
    def write(self, kind: str, what: str, time: float | None = None, **columns: Any) -> int | None:
        """One row in its own transaction; returns its id. Never raises."""
        if self.conn is None:
            return None
        when = self.clock() if time is None else time
        details = columns.pop("details", None)
        row = dict(night=night_of(when), time=when, wall=self.wall(), run=self.run_id,
                   kind=kind, what=what, details=None if details is None else json.dumps(
                       details, sort_keys=True, default=str), **columns)
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self.conn:
                cursor = self.conn.execute(f"INSERT INTO entries ({names}) VALUES ({marks})",
                                           tuple(row.values()))
            return cursor.lastrowid
        except sqlite3.Error:
            log.failure("cannot write the night log {path}", path=str(self.path))
            return None

    def alert(self, message: str) -> None:
        self.write(ALERT, "alert", reason=message)

    def __call__(self, event: Event) -> None:
        """Listener of ``MainLoop.publish``: keep the changes."""
        p = event.payload
        topic = event.topic
        if topic == Topic.DECISION_MADE:
            key = (p.get("verdict"), tuple(p.get("blockers") or ()),
                   p.get("shotid") if p.get("verdict") == "run" else None)
            if key == self._last_decision:
                return
            self._last_decision = key
            details = dict(p.get("details") or {})
            if p.get("shadow"):
                # Shadow mode: what OCD would have done (it starts nothing).
                details[SHADOW] = True
            self.write(DECISION, str(p.get("verdict")), event.data_time, shotid=key[2],
                       blockers=" ".join(key[1]), details=details)
        elif topic == Topic.STATES_CHANGE and p.get("machine_name") == MachineName.HETDEX_ALLOWED:
            who, reason = _who_and_reason(p)
            self.write(ARMING, str(p.get("new_state")), event.data_time, who=who, reason=reason,
                       details={"transition": p.get("transition"), "from": p.get("old_state")})
        elif topic == Topic.STATES_CHANGE and p.get("machine_name") == MachineName.RUN_SHOT \
                and p.get("transition") == ShotTransition.LOST:
            self.write(SHOT, "lost", event.data_time, outcome="lost")
        elif topic in SHOT_TOPICS:
            self._shot(SHOT_TOPICS[topic], event)

    def crew_shot(self, event: Event) -> None:
        """A shot event of another runner (``ocd run_shot -e``: the crew), on OCD's clock.

        The main loop does not publish these again, so the orchestrator hands
        them here; they are written at OCD's time of hearing them (the
        night's time in a replay), not the runner's own clock.
        """
        step = SHOT_TOPICS.get(event.topic)
        if step is not None:
            self._shot(step, event, self.clock())

    def _shot(self, step: str, event: Event, when: float | None = None) -> None:
        p = event.payload
        at = event.data_time if when is None else when
        ids = dict(shotid=p.get("shotid"), obs_number=p.get("obs_number"))
        started = p.get("exec_status") == ExecStatus.START
        if step == "run":
            if started:
                self.write(SHOT, "start", at, **ids)
            else:
                error = bool(p.get("error"))
                self.write(SHOT, "end", at, outcome="failed" if error else "done",
                           reason=str(p.get("exc_value") or "")[:500] if error else None, **ids)
            return
        name = step if step != "exposure" else f"exposure {p.get('exposure')}"
        if started:
            self.write(SHOT, "step", at, outcome=name, **ids)
        elif p.get("error"):
            self.write(SHOT, "step", at, outcome=f"{name} failed", **ids)
