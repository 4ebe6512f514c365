"""What OCD is doing now, and why: the snapshot behind ``/status``.

Pure, like ``decide``: a :class:`StatusView` (a frozen copy of what the main
loop knows, gathered by the status service) and the two clocks go in, a
JSON-ready dictionary comes out. The web resource, ``ocd status`` and the
page only serialise or show it, so what they say is tested here without a
socket.

Two clocks, as in ``decide``: ``now`` is OCD's clock (the TCS's time, the
night's time during a replay) and places things on the night; ``monotonic``
is the reactor's clock and measures ages and durations (heartbeat age,
uptime, a shot's elapsed time), so a TCS whose time stands still still
looks silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from ocd.core.shots import TRACK_NAMES
from ocd.core.topics import STAND_INS, Blocker


#: What each blocker means, in words for a person across the room.
BLOCKER_WORDS: Mapping[Blocker, str] = {
    Blocker.NOT_ALLOWED: "HETDEX shots are not allowed",
    Blocker.SHOT_RUNNING: "a shot is running",
    Blocker.DAYLIGHT: "too much daylight",
    Blocker.TCS_SILENT: "the TCS is silent",
    Blocker.SHUTTER_CLOSED: "the shutter is closed",
    Blocker.WEATHER: "the weather is bad or unknown",
    Blocker.BAD_SEEING: "the seeing is bad",
    Blocker.LOW_TRANSPARENCY: "the transparency is low",
    Blocker.NO_TARGET: "no shot is observable",
    Blocker.OBSNUM_UNAVAILABLE: "the observation-number database is unreachable",
    Blocker.FAILED_SHOT: "the last shot failed: a person must check it",
    Blocker.PROGRAMS_MISSING: "a program a shot needs cannot be found",
}


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2025-02-20T06:00:00.000+00:00``)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RunningShot:
    """A shot that runs now (OCD's own or one started by hand)."""

    shotid: str
    obs_number: Any
    started: float  # reactor time of its START
    expected: float  # s: the exposures plus shot_grace (after that it is lost)
    own: bool = True
    step: str | None = None  # the runner's current step (own shots only)


@dataclass(frozen=True)
class NextShot:
    """The next candidate shot and its window on OCD's clock (epoch s)."""

    shotid: str
    track: int
    opens: float
    closes: float


@dataclass(frozen=True)
class StatusView:
    """A frozen copy of the main loop's state, everything ``/status`` shows."""

    version: str
    started: float  # reactor time at which the status service started
    loop_running: bool
    machines: Mapping[str, str]
    tcs_timeout: float
    tcs_time: float | None = None  # newest TCS data time
    last_heartbeat: float | None = None  # reactor time of the last heartbeat
    tcs_urls: tuple[str, ...] = ()
    tcs_kind: str = "tcs"
    verdict: str | None = None  # None before the first decision
    blockers: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    failed_shot: bool = False
    shots: tuple[RunningShot, ...] = ()
    next: NextShot | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    #: Shadow mode ([run] shadow): decides, never starts a shot.
    shadow: bool = False


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str


def health(view: StatusView, monotonic: float) -> Health:
    """Healthy while the main loop runs and the TCS was heard within ``tcs_timeout``."""
    if not view.loop_running:
        return Health(False, "the OCD main loop is not running")
    if view.last_heartbeat is None:
        return Health(False, "no TCS heartbeat yet")
    age = monotonic - view.last_heartbeat
    if age > view.tcs_timeout:
        return Health(False, f"no TCS heartbeat for {age:.0f} s > [decision] tcs_timeout "
                             f"{view.tcs_timeout:g} s")
    return Health(True, f"main loop running; last TCS heartbeat {age:.0f} s ago")


def _shot(shot: RunningShot | None, monotonic: float) -> dict[str, Any] | None:
    if shot is None:
        return None
    return {
        "shotid": shot.shotid,
        "obs_number": shot.obs_number,
        "step": shot.step,
        "elapsed": round(max(monotonic - shot.started, 0.0), 3),
        "expected": shot.expected,
        "own": shot.own,
    }


def _next(pick: NextShot | None, now: float) -> dict[str, Any] | None:
    if pick is None:
        return None
    return {
        "shotid": pick.shotid,
        "track": TRACK_NAMES.get(pick.track, str(pick.track)),
        "opens": iso(pick.opens),
        "closes": iso(pick.closes),
        "open_now": bool(pick.opens <= now),
        "opens_in": round(max(pick.opens - now, 0.0), 3),
    }


def reasons(blockers: Iterable[str], details: Mapping[str, str]) -> list[str]:
    """Each blocker in plain words, with its detail (``the seeing is bad: FWHM 2.4 > 2``)."""
    out = []
    for name in blockers:
        words = BLOCKER_WORDS.get(name, name.replace("_", " "))
        detail = details.get(name)
        out.append(f"{words}: {detail}" if detail else words)
    return out


def snapshot(view: StatusView, now: float, monotonic: float) -> dict[str, Any]:
    """The JSON document of ``GET /status`` (docs/operations.md lists its keys)."""
    running = next((s for s in view.shots if s.own), view.shots[0] if view.shots else None)
    state = health(view, monotonic)
    age = None if view.last_heartbeat is None else round(monotonic - view.last_heartbeat, 3)
    return {
        "now": iso(now),
        "tcs": {
            "time": iso(view.tcs_time),
            "heartbeat_age": age,
            "timeout": view.tcs_timeout,
            "kind": view.tcs_kind,
            "urls": list(view.tcs_urls),
        },
        **{name: state_name for name, state_name in view.machines.items()},
        "shadow": view.shadow,
        "mode": "SHADOW (decides, starts nothing)" if view.shadow else "live",
        "verdict": view.verdict,
        "blockers": list(view.blockers),
        "details": {k: view.details[k] for k in (*view.blockers, STAND_INS)
                    if k in view.details},
        "stand_ins": view.details.get(STAND_INS),
        "reasons": reasons(view.blockers, view.details),
        "failed_shot": view.failed_shot,
        "shot": _shot(running, monotonic),
        "shots_running": len(view.shots),
        "next": _next(view.next, now),
        "healthy": state.ok,
        "health": state.reason,
        "counters": dict(view.counters),
        "uptime": round(max(monotonic - view.started, 0.0), 3),
        "version": view.version,
    }


@dataclass(frozen=True)
class BlockedTime:
    """Seconds spent under each blocker, folded from the decisions.

    ``after(blockers, t)`` closes the interval of the previous blockers at
    ``t`` and opens one for the new ones; ``totals_at(t)`` includes the
    open interval. Decisions are published whenever their blockers change,
    so folding every ``ocd.decision.made`` is exact.
    """

    totals: Mapping[str, float] = field(default_factory=dict)
    blockers: tuple[str, ...] = ()
    since: float | None = None

    def totals_at(self, t: float) -> dict[str, float]:
        totals = dict(self.totals)
        if self.since is not None:
            for name in self.blockers:  # a blocker seen once stays, even at 0 s
                totals[name] = totals.get(name, 0.0) + max(t - self.since, 0.0)
        return totals

    def after(self, blockers: Iterable[str], t: float) -> "BlockedTime":
        since = t if self.since is None else max(t, self.since)
        return BlockedTime(self.totals_at(since), tuple(blockers), since)


def next_shot(scheduler: Any, pick: Any, pick_track: int | None, pick_end: float | None,
              now: float, duration: float) -> NextShot | None:
    """The shot OCD would take next and when its window opens.

    The decision's pick, when there is one (its window is open now);
    otherwise the shot with observations left whose band opens first for a
    whole ``duration`` (the Sun is not considered: daylight is a blocker of
    its own). Uses the scheduler's cached sky; pure like ``decide``.
    """
    if pick is not None and pick_track is not None and pick_end is not None:
        return NextShot(pick.shotid, int(pick_track), now, float(pick_end))
    best: tuple[float, float, int, NextShot] | None = None
    for order, shot in enumerate(getattr(scheduler, "shots", ())):
        if shot.n_obs <= 0:
            continue
        for track in shot.tracks:
            span = scheduler.window(shot.shotid, track, now)
            if span is None:
                continue
            opens, closes = max(float(span[0]), now), float(span[1])
            if closes - opens < duration:
                continue  # this pass is too short from now: the next one is a day away
            key = (opens, float(shot.priority), order)
            if best is None or key < best[:3]:
                best = (*key, NextShot(shot.shotid, track, opens, closes))
    return None if best is None else best[3]
