"""The night log: every decision and every shot event, and the night report.

:class:`NightLog` is a listener of ``MainLoop.publish``, the one place all
of OCD's outgoing events pass, so it sees every ``ocd.decision.made`` and
every ``ocd.run_shot.*`` whoever ran the shot. It keeps what a person asks
the morning after (which shots ran, when, with which observation number,
and how much of the night each blocker cost) and can append each record to
a JSON-lines file. The report is computed from the records alone, on OCD's
clock, so a replayed night reports as that night.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ocd.core.events import Event

DECISION = "ocd.decision.made"
SHOT_RUN = "ocd.run_shot.run"
STATES_CHANGE = "ocd.states.change"
KEPT = (DECISION, SHOT_RUN, STATES_CHANGE)
#: The blocker that means "busy observing": reported apart, not as time lost.
OBSERVING = "shot_running"


@dataclass
class ShotRecord:
    shotid: str
    obs_number: int | None
    start: float
    end: float | None = None
    error: bool | None = None
    message: str = ""

    @property
    def status(self) -> str:
        if self.end is None:
            return "running"
        return "failed" if self.error else "done"


@dataclass
class NightReport:
    shots: list[ShotRecord]
    blocker_seconds: dict[str, float]
    first: float | None
    last: float | None
    decisions: int
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> list[ShotRecord]:
        return [s for s in self.shots if s.status == "done"]

    def format(self) -> str:
        """The report as a person reads it at the end of a night."""
        lines = ["Night report", "============"]
        if self.first is not None and self.last is not None:
            lines.append(f"night time covered: {_hms(self.first)} to {_hms(self.last)} UTC "
                         f"({(self.last - self.first) / 3600:.2f} h), {self.decisions} decisions")
        lines.append("")
        lines.append(f"shots: {len(self.succeeded)} done, "
                     f"{sum(1 for s in self.shots if s.status == 'failed')} failed, "
                     f"{sum(1 for s in self.shots if s.status == 'running')} unfinished")
        lines.append(f"  {'shotid':<12} {'obsnum':>7}  {'start':>8}  {'end':>8}  {'min':>5}  status")
        for shot in self.shots:
            end = _hms(shot.end) if shot.end is not None else "-"
            minutes = f"{(shot.end - shot.start) / 60:5.1f}" if shot.end is not None else "    -"
            obs = "-" if shot.obs_number is None else str(shot.obs_number)
            note = f" ({shot.message})" if shot.message else ""
            lines.append(f"  {shot.shotid:<12} {obs:>7}  {_hms(shot.start)}  {end:>8}  {minutes}"
                         f"  {shot.status}{note}")
        lines.append("")
        observing = self.blocker_seconds.get(OBSERVING, 0.0)
        lines.append(f"time spent on shots ({OBSERVING}): {observing / 3600:.2f} h")
        lines.append("time lost to each blocker (a stretch with several blockers counts for each):")
        lost = {k: v for k, v in self.blocker_seconds.items() if k != OBSERVING}
        if not lost:
            lines.append("  none")
        for name, seconds in sorted(lost.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<20} {seconds / 3600:6.2f} h")
        return "\n".join(lines)


def _hms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S")


class NightLog:
    """Listener of the main loop's outgoing events; see the module doc."""

    def __init__(self, path: str | Path | None = None):
        self.records: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if event.topic not in KEPT:
            return
        record = {"topic": event.topic, "data_time": event.data_time, **{
            k: v for k, v in event.payload.items() if not k.startswith("__")}}
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def report(self) -> NightReport:
        return build_report(self.records)


def build_report(records: list[dict[str, Any]]) -> NightReport:
    """Shots and time lost per blocker, from night-log records in order."""
    shots: list[ShotRecord] = []
    open_shots: dict[tuple[str, Any], ShotRecord] = {}
    lost: dict[str, float] = {}
    previous: dict[str, Any] | None = None
    first = last = None
    decisions = 0
    changes = []
    for record in records:
        topic = record["topic"]
        if topic == DECISION:
            decisions += 1
            now = float(record.get("now", record["data_time"]))
            if previous is not None and now < previous["now"]:
                # OCD's clock went back: the machine's clock before the first
                # TCS event, or a replay starting over. Count the night anew.
                lost.clear()
                first = None
                decisions = 1
            first = now if first is None else first
            last = now
            if previous is not None and now > previous["now"]:
                for name in previous["blockers"]:
                    lost[name] = lost.get(name, 0.0) + now - previous["now"]
            previous = {"now": now, "blockers": list(record.get("blockers") or [])}
        elif topic == SHOT_RUN:
            key = (record.get("shotid"), record.get("obs_number"))
            if record.get("exec_status") == 0:
                shot = ShotRecord(str(record.get("shotid")), record.get("obs_number"),
                                  record["data_time"])
                shots.append(shot)
                open_shots[key] = shot
            elif record.get("exec_status") == 1:
                shot = open_shots.pop(key, None)
                if shot is None:
                    shot = ShotRecord(str(record.get("shotid")), record.get("obs_number"),
                                      record["data_time"])
                    shots.append(shot)
                shot.end = record["data_time"]
                shot.error = bool(record.get("error"))
                if shot.error:
                    shot.message = str(record.get("exc_value") or "")[:120]
        elif topic == STATES_CHANGE:
            changes.append(record)
            if record.get("machine_name") == "run_shot" and record.get("msg") == "lost":
                for shot in open_shots.values():
                    shot.end, shot.error, shot.message = record["data_time"], True, "lost"
                open_shots.clear()
    return NightReport(shots, lost, first, last, decisions, changes)
