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

:func:`load_night` and :func:`build_report` (pure) make the night report of
``ocd night_report`` and ``ocd simulate_night``; :mod:`ocd.services.night_plot`
draws its timeline.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

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


# -- reading and reporting -------------------------------------------------------------


class NightLogError(ValueError):
    """A night log that cannot be read for a report; the message names the file and why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"night log {path}: {problem}")


#: The columns a report cannot do without (the others are read with ``.get``).
REPORT_COLUMNS = ("id", "night", "time", "kind", "what")
#: The times (epoch s, UTC years 1900 to 2199) a report reads: a row outside
#: is damage, and a night that spans millennia breaks the timeline's axis.
REPORT_TIMES = (datetime(1900, 1, 1, tzinfo=timezone.utc).timestamp(),
                datetime(2200, 1, 1, tzinfo=timezone.utc).timestamp())


@contextmanager
def _reading(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection to read the night log at ``path`` for a report; every problem is named.

    The one place a report opens a night log. ``mode=rw`` never creates the
    file, and ``query_only`` keeps the report from writing; unlike
    ``mode=ro`` it lets SQLite remove the ``-wal`` and ``-shm`` files it made
    when the report was their last user (on a write-protected file SQLite
    opens it read only by itself). A missing file is a
    ``FileNotFoundError``; a folder, a file that is not SQLite, a truncated
    one or one without the table and columns of a night log is a
    :class:`NightLogError`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no night log at {path}")
    if path.is_dir():
        raise NightLogError(path, "is a folder, not a night log")
    if not os.access(path, os.R_OK):
        raise NightLogError(path, "cannot be read: permission denied")
    if path.is_file() and path.stat().st_size == 0:
        raise NightLogError(path, "is empty: not a night log")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        raise NightLogError(path, sqlite_problem(exc)) from None
    try:
        conn.execute("PRAGMA query_only = ON")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
        if not columns:
            raise NightLogError(path, "not a night log: no table 'entries' (empty, or another "
                                      "SQLite database)")
        missing = [name for name in REPORT_COLUMNS if name not in columns]
        if missing:
            raise NightLogError(path, "not a night log: table 'entries' has no column "
                                      + ", ".join(missing))
        conn.row_factory = sqlite3.Row
        yield conn
    except sqlite3.Error as exc:
        raise NightLogError(path, sqlite_problem(exc)) from None
    finally:
        conn.close()


def _checked_row(path: Path, row: sqlite3.Row) -> dict:
    """``row`` as a dict whose values the report can use, or a NightLogError naming the row.

    The report does arithmetic and dates on ``time`` and parses ``details``
    as JSON: a hand-edited or damaged row would otherwise end the report in
    a traceback.
    """
    entry = dict(row)
    where = f"row id {entry.get('id')}"
    try:
        entry["time"] = float(entry["time"])
    except (TypeError, ValueError):
        entry["time"] = None
    if entry["time"] is None or not REPORT_TIMES[0] <= entry["time"] < REPORT_TIMES[1]:
        raise NightLogError(path, f"{where}: time {row['time']!r} is not a time in seconds "
                                  "since 1970 from the years 1900 to 2199 (UTC)")
    for name in ("night", "kind", "what", "shotid", "blockers", "outcome", "who", "reason"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            entry[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) \
                else str(value)
    details = entry.get("details")
    if details is not None:
        try:
            if not isinstance(json.loads(details), dict):
                raise ValueError(details)
        except (TypeError, ValueError):
            raise NightLogError(path, f"{where}: details {details!r:.60} is not a JSON "
                                      "object") from None
    return entry


def load_night(path: str | Path, night: str | None = None) -> tuple[str | None, list[dict]]:
    """The rows of ``night`` (default: the night of the last row), in order, checked.

    A missing file is a ``FileNotFoundError``, a damaged one a :class:`NightLogError`.
    """
    with _reading(path) as conn:
        if night is None:
            row = conn.execute("SELECT night FROM entries ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None, []
            night = row["night"]
        rows = conn.execute("SELECT * FROM entries WHERE night = ? ORDER BY id",
                            (night,)).fetchall()
        return night, [_checked_row(Path(path), r) for r in rows]


def nights_in(path: str | Path) -> list[str]:
    """The nights in the log, in order (for a report that found nothing on the one asked)."""
    with _reading(path) as conn:
        return [str(r[0]) for r in conn.execute(
            "SELECT DISTINCT night FROM entries WHERE night IS NOT NULL ORDER BY night")]


@dataclass
class ShotRecord:
    shotid: str
    obs_number: int | None
    start: float
    end: float | None = None
    outcome: str = "unfinished"
    last_step: str = ""
    message: str = ""


@dataclass
class Segment:
    """A stretch of the night under one decision."""

    start: float
    end: float
    verdict: str
    blockers: tuple[str, ...]
    #: The shot OCD picked (the one it runs, or would run, on a ``run`` verdict).
    shotid: str | None = None


@dataclass
class NightReport:
    night: str | None
    first: float | None
    last: float | None
    shots: list[ShotRecord]
    blocker_seconds: dict[str, float]
    segments: list[Segment] = field(default_factory=list)
    decisions: int = 0
    alerts: list[tuple[float, str]] = field(default_factory=list)
    arming: list[tuple[float, str, str, str]] = field(default_factory=list)
    ocd_down_seconds: float = 0.0
    #: A shadow night ([run] shadow): the decisions are what OCD would have done.
    shadow: bool = False

    @property
    def succeeded(self) -> list[ShotRecord]:
        return [s for s in self.shots if s.outcome == "done"]

    def count(self, outcome: str) -> int:
        return sum(1 for s in self.shots if s.outcome == outcome)

    def format(self) -> str:
        """The report as a person reads it the morning after (times UTC)."""
        lines = [f"Night report: night of {self.night or '?'}"
                 + (" (SHADOW: OCD decided and started nothing; the shots are the crew's)"
                    if self.shadow else "")]
        if self.first is not None and self.last is not None:
            lines.append(f"span: {utc_iso(self.first)} to {utc_iso(self.last)} "
                         f"({(self.last - self.first) / 3600:.2f} h), "
                         f"{self.decisions} decision changes, {len(self.arming)} arming changes, "
                         f"{len(self.alerts)} alerts")
        else:
            lines.append("span: nothing recorded")
        lines.append("")
        lines.append(f"shots: {self.count('done')} done, {self.count('failed')} failed, "
                     f"{self.count('lost')} lost, {self.count('unfinished')} unfinished")
        if self.shots:
            lines.append(f"  {'shotid':<12} {'obs':>7}  {'start':>8}  {'end':>8}  {'min':>5}  "
                         "outcome")
        for shot in self.shots:
            minutes = f"{(shot.end - shot.start) / 60:5.1f}" if shot.end is not None else "    -"
            obs = "-" if shot.obs_number is None else str(shot.obs_number)
            note = shot.message or (f"last step: {shot.last_step}"
                                    if shot.outcome == "unfinished" and shot.last_step else "")
            note = f" ({note[:80]})" if note else ""
            lines.append(f"  {shot.shotid:<12} {obs:>7}  {utc_clock(shot.start)}  "
                         f"{utc_clock(shot.end) if shot.end else '-':>8}  {minutes}  "
                         f"{shot.outcome}{note}")
        lines.append("")
        observing = self.blocker_seconds.get(OBSERVING, 0.0)
        lines.append(f"time on shots ({OBSERVING}): {observing / 3600:.2f} h")
        lines.append("time lost to each blocker (a stretch with several blockers counts for each):")
        lost = {k: v for k, v in self.blocker_seconds.items() if k != OBSERVING}
        if not lost:
            lines.append("  none")
        for name, seconds in sorted(lost.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:<20} {seconds / 3600:6.2f} h")
        if self.ocd_down_seconds:
            lines.append(f"OCD not running: {self.ocd_down_seconds / 3600:.2f} h")
        return "\n".join(lines)


def build_report(rows: Sequence[Mapping[str, Any]], night: str | None = None) -> NightReport:
    """Shots, decision stretches and time per blocker, from night-log rows in order.

    A decision lasts until the next one, OCD's stop, or the last row. When
    OCD's clock goes back (a replay started over), the night is counted anew.
    """
    shots: list[ShotRecord] = []
    open_shots: dict[tuple[Any, Any], ShotRecord] = {}
    segments: list[Segment] = []
    alerts: list[tuple[float, str]] = []
    arming: list[tuple[float, str, str, str]] = []
    current: dict[str, Any] | None = None  # the decision in force
    first = last = None
    decisions = 0
    down = 0.0
    stopped_at: float | None = None
    shadow = False

    def close(at: float) -> None:
        nonlocal current
        if current is not None and at > current["start"]:
            segments.append(Segment(current["start"], at, current["verdict"],
                                    current["blockers"], current.get("shotid")))
        current = None

    for row in rows:
        t = float(row["time"])
        if last is not None and t < last - 60.0:
            # OCD's clock went back: count the night anew.
            shots.clear()
            open_shots.clear()
            segments.clear()
            alerts.clear()
            arming.clear()
            current, first, decisions, down, stopped_at = None, None, 0, 0.0, None
        first = t if first is None else first
        last = t if last is None else max(last, t)
        kind, what = row["kind"], row["what"]
        if kind == OCD:
            if what == "stop":
                close(t)
                stopped_at = t
            elif what == "start" and stopped_at is not None:
                down += max(0.0, t - stopped_at)
                stopped_at = None
            elif what == "start":
                close(t)  # a crash: no stop row; the time until this start is not counted
        elif kind == DECISION:
            decisions += 1
            close(t)
            blockers = tuple(b for b in (row.get("blockers") or "").split() if b)
            current = {"start": t, "verdict": what, "blockers": blockers,
                       "shotid": row.get("shotid")}
            if not shadow and SHADOW in str(row.get("details") or ""):
                shadow = json.loads(row["details"]).get(SHADOW) is True
        elif kind == ARMING:
            arming.append((t, what, str(row.get("who") or ""), str(row.get("reason") or "")))
        elif kind == ALERT:
            alerts.append((t, str(row.get("reason") or "")))
        elif kind == SHOT:
            key = (row.get("shotid"), row.get("obs_number"))
            if what == "start":
                shot = ShotRecord(str(row.get("shotid")), row.get("obs_number"), t)
                shots.append(shot)
                open_shots[key] = shot
            elif what == "step":
                shot = open_shots.get(key)
                if shot is not None:
                    shot.last_step = str(row.get("outcome") or "")
            elif what == "end":
                shot = open_shots.pop(key, None)
                if shot is None:
                    shot = ShotRecord(str(row.get("shotid")), row.get("obs_number"), t)
                    shots.append(shot)
                shot.end, shot.outcome = t, str(row.get("outcome") or "done")
                shot.message = str(row.get("reason") or "")
            elif what == "lost":
                for shot in open_shots.values():
                    shot.end, shot.outcome = t, "lost"
                open_shots.clear()
    if last is not None:
        close(last)
    lost: dict[str, float] = {}
    for segment in segments:
        for name in segment.blockers:
            lost[name] = lost.get(name, 0.0) + segment.end - segment.start
    return NightReport(night, first, last, shots, lost, segments, decisions, alerts, arming,
                       down, shadow)
