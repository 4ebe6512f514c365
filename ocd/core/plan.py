"""Tonight's plan: what OCD would run on a clear night, from the real decision code.

``ocd plan`` and ``bench/yield.py`` both run the night through this module,
so the plan is what ``ocd run`` would do, not a model of it: OCD's own
:func:`ocd.core.decide.decide` and scheduler (look-ahead included) are asked
on a simulated clock with a clear sky (heartbeat, shutter open, good weather,
shots allowed), a decision every ``interval`` seconds, and the next one at
the end of each shot (``settings.duration`` after its start), when the
shot's ``n_obs`` has been counted down, as the orchestrator does.

Pure: shots, settings and the span go in, a :class:`NightPlan` comes out;
no clock is read, nothing is started. The only cost is the scheduler's
(cached) sky computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from ocd.core.decide import DecisionInputs, DecisionSettings, decide
from ocd.core.events import UrlKind, event_from_payload, make_payload
from ocd.core.scheduler import Scheduler
from ocd.core.shots import TRACK_NAMES, Shot
from ocd.core.state import TelescopeState, fold
from ocd.core.topics import Blocker, Verdict

#: Local noon at the HET is about 19:00 UTC: a night is searched from there.
NOON_UTC_HOUR = 19


@dataclass(frozen=True)
class PlannedShot:
    """One observation of the plan, with the window it may start in."""

    shotid: str
    track: int
    priority: int
    start: float
    end: float
    #: Earliest and latest start on this pass (in the band for the whole
    #: shot, and dark), epoch s: a shot started in it is the planned one.
    window: tuple[float, float]
    note: str = ""  # why the look-ahead chose it over the greedy pick

    @property
    def track_name(self) -> str:
        return TRACK_NAMES.get(self.track, str(self.track))


@dataclass(frozen=True)
class Idle:
    """A stretch of the dark time with no shot running, and why."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True)
class NightPlan:
    """The plan of one night: the dark span, the shots in order, the idle stretches."""

    dark: tuple[float, float]
    shots: tuple[PlannedShot, ...]
    idle: tuple[Idle, ...]
    shots_in_list: int
    settings: dict[str, float] = field(default_factory=dict)
    #: Seconds each decision took (the bench's measurement).
    decide_times: tuple[float, ...] = field(default=(), compare=False, repr=False)

    @property
    def idle_seconds(self) -> float:
        return sum(i.end - i.start for i in self.idle)

    def format(self) -> str:
        """The plan for a person (times UTC)."""
        dusk, dawn = self.dark
        lines = [
            f"Plan: dark (Sun below {self.settings.get('max_sun_alt', -12):g} deg) "
            f"{utc_iso(dusk)} to {utc_iso(dawn)} ({(dawn - dusk) / 3600:.2f} h); "
            f"{len(self.shots)} shot(s) of {self.shots_in_list} in the list, "
            f"{self.settings.get('duration', 0) / 60:.0f} min each, look-ahead "
            f"{self.settings.get('lookahead', 0) / 3600:g} h",
        ]
        if self.shots:
            lines.append(f"  {'#':>3} {'shotid':<12} {'pri':>3} {'track':<5} {'start':>8} "
                         f"{'end':>8}  window (may start)")
        for k, shot in enumerate(self.shots, 1):
            note = f"  ({shot.note})" if shot.note else ""
            lines.append(f"  {k:>3} {shot.shotid:<12} {shot.priority:>3} {shot.track_name:<5} "
                         f"{utc_clock(shot.start)} {utc_clock(shot.end)}  "
                         f"{utc_clock(shot.window[0])}-{utc_clock(shot.window[1])}{note}")
        lines.append(f"idle: {self.idle_seconds / 3600:.2f} h")
        for idle in self.idle:
            lines.append(f"  {utc_clock(idle.start)}-{utc_clock(idle.end)} "
                         f"{(idle.end - idle.start) / 60:5.0f} min  {idle.reason}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The plan for scripts (``ocd plan --json``): ISO 8601 times and epoch seconds."""
        def when(t: float) -> dict[str, Any]:
            return {"utc": utc_iso(t), "epoch": round(t, 3)}

        return {
            "dark": {"start": when(self.dark[0]), "end": when(self.dark[1]),
                     "hours": round((self.dark[1] - self.dark[0]) / 3600, 3)},
            "shots_in_list": self.shots_in_list,
            "settings": self.settings,
            "shots": [{"shotid": s.shotid, "track": s.track_name, "priority": s.priority,
                       "start": when(s.start), "end": when(s.end),
                       "window": {"first": when(s.window[0]), "last": when(s.window[1])},
                       "note": s.note or None} for s in self.shots],
            "idle": [{"start": when(i.start), "end": when(i.end),
                      "minutes": round((i.end - i.start) / 60, 1), "reason": i.reason}
                     for i in self.idle],
            "idle_hours": round(self.idle_seconds / 3600, 3),
        }


def utc_clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S")


def utc_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_noon(date: str) -> float:
    """About local noon at the HET on ``date`` (YYYY-MM-DD): where a night is searched from."""
    day = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    return day.replace(hour=NOON_UTC_HOUR).timestamp()


def dark_span(scheduler: Scheduler, date: str, max_sun_alt: float) -> tuple[float, float]:
    """Dusk to dawn (the Sun below ``max_sun_alt``) of the night that begins on ``date``."""
    noon = local_noon(date)
    spans = scheduler.dark_intervals(noon, noon + 86400.0, max_sun_alt)
    if not spans:
        raise ValueError(f"the Sun never goes below {max_sun_alt} deg at the HET on {date}")
    return spans[0]


def clear_sky(now: float) -> TelescopeState:
    """A telescope with a heartbeat, the shutter open and good weather (at monotonic 0)."""
    state = TelescopeState()
    for topic, fields in (
        ("tcs.receiver.heartbeat", {}),
        ("legacy.shutter.status", {"state": "open"}),
        ("legacy.weather.status", {"humidity": 30, "wind_speed": 4, "ambtemp": 8,
                                   "dewpoint": -5}),
    ):
        state = fold(state, event_from_payload(topic, make_payload(topic, fields, now, now),
                                               UrlKind.TCS), 0.0)
    return state


def _idle_reason(blockers: Sequence[str], details: dict[str, str], left: int) -> str:
    if Blocker.DAYLIGHT in blockers:
        return f"dawn: no shot ends before the Sun rises ({details.get(Blocker.DAYLIGHT, '')})"
    if list(blockers) == [Blocker.NO_TARGET] and left == 0:
        return "no target: every shot in the list is done"
    if list(blockers) == [Blocker.NO_TARGET]:
        return f"no target in the band: {details.get(Blocker.NO_TARGET, '')}".rstrip(": ")
    return "; ".join(f"{b} ({details[b]})" if b in details else str(b) for b in blockers)


def plan_night(shots: Sequence[Shot] | Scheduler, settings: DecisionSettings,
               begin: float, end: float, interval: float,
               timer: Callable[[], float] | None = None) -> NightPlan:
    """Run OCD's decision on a clear sky from ``begin`` to ``end`` (epoch s).

    ``shots`` carry their remaining ``n_obs`` (or a scheduler of them, whose
    sky is reused). A decision every ``interval`` s; after a ``run`` the
    next one at the shot's end. ``timer`` (a perf counter, the bench's)
    times each decision; the plan itself reads no clock.
    """
    if not interval > 0:
        raise ValueError(f"the decision interval must be positive, not {interval}")
    scheduler = shots if isinstance(shots, Scheduler) else Scheduler(shots, settings)
    duration = settings.duration
    inputs = DecisionInputs(telescope=clear_sky(begin), allowed=True)
    planned: list[PlannedShot] = []
    idle: list[Idle] = []
    times: list[float] = []
    waiting: tuple[float, str] | None = None  # since when, and why
    t = float(math.ceil(begin))
    while t < end:
        started = timer() if timer else 0.0
        decision = decide(inputs, scheduler, t, 0.0, settings)
        if timer:
            times.append(timer() - started)
        if decision.verdict is Verdict.RUN and decision.shot is not None:
            if waiting is not None:
                idle.append(Idle(waiting[0], t, waiting[1]))
                waiting = None
            shot, track = decision.shot, int(decision.track or 0)
            planned.append(PlannedShot(shot.shotid, track, shot.priority, t, t + duration,
                                       _window(scheduler, shot.shotid, track, t, duration,
                                               begin, end),
                                       str(decision.details.get("lookahead", ""))))
            scheduler = scheduler.with_remaining({shot.shotid: shot.n_obs - 1})
            t += duration
            continue
        left = sum(1 for s in scheduler.shots if s.n_obs > 0)
        reason = _idle_reason(decision.blockers, dict(decision.details), left)
        if waiting is None:
            waiting = (t, reason)
        elif _kind(reason) != _kind(waiting[1]):
            idle.append(Idle(waiting[0], t, waiting[1]))
            waiting = (t, reason)
        t += interval
    if waiting is not None:
        idle.append(Idle(waiting[0], max(end, waiting[0]), waiting[1]))
    return NightPlan(
        dark=(begin, end), shots=tuple(planned), idle=tuple(idle),
        shots_in_list=len(scheduler.shots),
        settings={"max_sun_alt": settings.max_sun_alt, "half_width": settings.half_width,
                  "duration": duration, "lookahead": settings.lookahead,
                  "decide_interval": interval},
        decide_times=tuple(times))


def _kind(reason: str) -> str:
    """What makes two idle reasons the same stretch: the text before any counts."""
    head = reason.split(":", 1)[0]
    return head if head.startswith("no target") else reason.split(" (", 1)[0]


def _window(scheduler: Scheduler, shotid: str, track: int, now: float, duration: float,
            begin: float, end: float) -> tuple[float, float]:
    """Earliest and latest start of ``shotid``'s pass on ``track`` around ``now``, in the dark."""
    window = scheduler.window(shotid, track, now)
    if window is None:
        return now, now
    first, last = window
    if first > now:  # window() gives the next pass once this one is over: not here
        first, last = now, now + duration
    return max(first, begin), max(min(last - duration, end - duration), now)


@dataclass(frozen=True)
class PlanCheck:
    """How a night went against its plan (``simulate_night``, the plan test)."""

    planned: tuple[str, ...]
    run: tuple[str, ...]
    #: Run shots that started outside their own planned window (or were not
    #: planned). A shot skipped for the weather moves every later one up the
    #: order (``in_order`` says so); each of them may still start in its window.
    outside: tuple[str, ...]

    @property
    def in_order(self) -> bool:
        """The shots run are the plan's first ones, in the plan's order."""
        return self.run == self.planned[:len(self.run)]

    @property
    def as_planned(self) -> bool:
        return self.run == self.planned and not self.outside

    def format(self) -> str:
        unplanned = [s for s in self.run if s not in self.planned]
        missed = [s for s in self.planned if s not in self.run]
        lines = [f"against the plan: {len(self.run)} shot(s) run of {len(self.planned)} planned; "
                 + ("as planned (same shots, same order, each in its window)" if self.as_planned
                    else f"order {'kept' if self.in_order else 'CHANGED'}, "
                         f"{len(self.run) - len(self.outside)} of {len(self.run)} started in "
                         "their planned window")]
        if unplanned:
            lines.append(f"  not in the plan: {' '.join(unplanned)}")
        if missed:
            lines.append(f"  planned, not run: {' '.join(missed)}")
        if self.outside:
            lines.append(f"  started outside their planned window: {' '.join(self.outside)}")
        return "\n".join(lines)


def check_against_plan(plan: NightPlan, run: Sequence[tuple[str, float]]) -> PlanCheck:
    """Compare the shots run (shot id, start, in order) with the plan.

    The order is compared whole (:attr:`PlanCheck.in_order`); each shot's
    start is compared with its own planned window, not with the window of
    the shot planned at its place, which after one skipped shot would call
    every later shot late.
    """
    windows: dict[str, list[tuple[float, float]]] = {}
    for shot in plan.shots:  # a shot with n_obs > 1 is planned more than once
        windows.setdefault(shot.shotid, []).append(shot.window)
    outside = []
    for shotid, start in run:
        if not any(first - 1.0 <= start <= last + 1.0 for first, last in windows.get(shotid, ())):
            outside.append(shotid)
    return PlanCheck(tuple(s.shotid for s in plan.shots), tuple(s for s, _ in run),
                     tuple(outside))
