"""The night report: a night log read back, checked, and summed up.

:func:`load_night` reads one night's rows of a night log that
:class:`ocd.services.nightlog.NightLog` wrote (every damage to the file or
a row is a :class:`NightLogError` naming it, never a traceback), and
:func:`build_report` (pure) makes the report of ``ocd night_report`` and
``ocd simulate_night``: the shots with their outcomes, the stretches of the
night under each decision and the time lost to each blocker.
:mod:`ocd.services.night_plot` draws its timeline.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ocd.services.nightlog import (ALERT, ARMING, DECISION, OBSERVING, OCD, SHADOW, SHOT, utc_clock,
                                   utc_iso)
from ocd.services.sqlite_errors import sqlite_problem


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
