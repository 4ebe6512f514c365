"""May a shot start now, which one, and if not, why not (shots.md section 2).

``decide`` is pure: the folded telescope state, the main loop's flags, the
scheduler (whose sky is computed once and cached), OCD's ``now`` and the
reactor's ``monotonic`` time go in; a :class:`Decision` comes out. Every
condition that fails is a named *blocker*, reported in the order of the
spec's table so that a change in the set is a change in the tuple.

Two clocks, on purpose: ``now`` (OCD's clock, the TCS's time when replaying)
places the Sun, the targets and the metrology window; ``monotonic`` (the
injected monotonic clock, never the wall clock) measures the silences ``tcs_timeout`` and
``weather_timeout``, so a dead TCS whose time stands still is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ocd.config import Config
from ocd.core.lookahead import choose
from ocd.core.precision import comparison
from ocd.core.scheduler import Candidate, Scheduler
from ocd.core.shots import TRACK_NAMES, Shot
from ocd.core.state import TelescopeState
from ocd.core.topics import BLOCKERS, STAND_INS, Blocker, Verdict

#: The key of ``details`` that says why the look-ahead's pick is not the greedy one.
LOOKAHEAD = "lookahead"


@dataclass(frozen=True)
class DecisionSettings:
    """Every threshold of ``[decision]`` and ``[scheduler]``, plus the exposure times."""

    tcs_timeout: float = 30.0
    weather_timeout: float = 300.0
    max_humidity: float = 80.0
    max_wind: float = 15.0
    require_shutter: bool = True
    fwhm_window: float = 300.0
    max_fwhm: float = 2.0
    default_fwhm: float = 1.5
    min_transparency: float = 0.7
    default_transparency: float = 1.0
    report_interval: float = 60.0
    shot_grace: float = 900.0
    max_sun_alt: float = -12.0
    half_width: float = 6.0
    overhead: float = 300.0
    lookahead: float = 28800.0
    exptimes: tuple[float, ...] = (360.0, 360.0, 360.0)

    @property
    def duration(self) -> float:
        """How long a shot takes: the exposures plus the overhead, s."""
        return float(sum(self.exptimes)) + self.overhead

    @classmethod
    def from_config(cls, config: Config) -> "DecisionSettings":
        """Read the settings (again after a live update: it is cheap)."""
        f = config.get_float
        return cls(
            tcs_timeout=f("decision", "tcs_timeout"),
            weather_timeout=f("decision", "weather_timeout"),
            max_humidity=f("decision", "max_humidity"),
            max_wind=f("decision", "max_wind"),
            require_shutter=config.get_bool("decision", "require_shutter"),
            fwhm_window=f("decision", "fwhm_window"),
            max_fwhm=f("decision", "max_fwhm"),
            default_fwhm=f("decision", "default_fwhm"),
            min_transparency=f("decision", "min_transparency"),
            default_transparency=f("decision", "default_transparency"),
            report_interval=f("decision", "report_interval"),
            shot_grace=f("decision", "shot_grace"),
            max_sun_alt=f("scheduler", "max_sun_alt"),
            half_width=f("scheduler", "half_width"),
            overhead=f("scheduler", "overhead"),
            lookahead=f("scheduler", "lookahead"),
            exptimes=tuple(config.get_float_list("run_shot", "exptimes", 3)),
        )


@dataclass(frozen=True)
class DecisionInputs:
    """What the main loop knows besides the telescope."""

    telescope: TelescopeState
    allowed: bool
    shot_running: bool = False
    failed_shot: bool = False
    obsnum_ok: bool = True
    #: Why the observation-number database cannot be used (its own message).
    obsnum_error: str | None = None
    #: Which configured program cannot be found (blocker programs_missing).
    programs_missing: str | None = None
    #: Which configured programs are OCD's stand-ins (said in every decision).
    stand_ins: str | None = None


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    shot: Shot | None  # the scheduler's pick, also when waiting
    blockers: tuple[Blocker, ...]  # in BLOCKERS order; empty when run
    #: One line per blocker, plus ``stand_ins`` when a stand-in is configured.
    details: Mapping[str, str] = field(default_factory=dict, compare=False)
    track: int | None = None  # 0 EAST, 1 WEST (with shot)
    track_end: float | None = None  # when the pick leaves its track, epoch s

    @property
    def key(self) -> tuple[Verdict, tuple[Blocker, ...]]:
        """What must change for ``ocd.decision.made`` to be published at once."""
        return self.verdict, self.blockers

    def summary(self) -> str:
        """One line for people, e.g. ``waiting: shutter_closed, bad_seeing (FWHM 2.4 > 2.0)``."""
        if self.verdict is Verdict.RUN and self.shot is not None:
            why = self.details.get(LOOKAHEAD)
            return (f"run: {self.shot.shotid} on the {TRACK_NAMES.get(self.track or 0, '?')} track"
                    + (f" ({why})" if why else ""))
        parts = []
        for name in self.blockers:
            detail = self.details.get(name)
            parts.append(f"{name} ({detail})" if detail else name)
        return "waiting: " + ", ".join(parts)

    def to_fields(self, now: float) -> dict[str, Any]:
        """The payload fields of ``ocd.decision.made`` (events.md section 3.5)."""
        return {
            "verdict": self.verdict,
            "shotid": None if self.shot is None else self.shot.shotid,
            "track": self.track,
            "blockers": list(self.blockers),
            "details": {name: self.details[name] for name in (*self.blockers, STAND_INS, LOOKAHEAD)
                        if name in self.details},
            "now": float(now),
        }


def decide(
    inputs: DecisionInputs,
    scheduler: Scheduler,
    now: float,
    monotonic: float,
    settings: DecisionSettings,
) -> Decision:
    """The verdict for ``now``; pure apart from the scheduler's cached sky."""
    scheduler.configure(settings)
    duration = settings.duration
    tel = inputs.telescope
    found: dict[Blocker, str] = {}

    if not inputs.allowed:
        found[Blocker.NOT_ALLOWED] = "shots are not allowed (ocd allow_hetdex start)"
    if inputs.shot_running:
        found[Blocker.SHOT_RUNNING] = "a shot is running"

    sun = scheduler.highest_sun(now, duration)
    if sun > settings.max_sun_alt:
        found[Blocker.DAYLIGHT] = (
            f"Sun up to {comparison(sun, '>', settings.max_sun_alt, ' deg', 1)}"
            f" within the next {duration / 60:.0f} min"
        )

    if tel.last_heartbeat is None:
        found[Blocker.TCS_SILENT] = "no TCS heartbeat yet"
    elif monotonic - tel.last_heartbeat > settings.tcs_timeout:
        found[Blocker.TCS_SILENT] = (
            "no TCS heartbeat for "
            f"{comparison(monotonic - tel.last_heartbeat, '>', settings.tcs_timeout, ' s')}"
        )

    if tel.shutter == "closed":
        found[Blocker.SHUTTER_CLOSED] = "shutter closed"
    elif tel.shutter is None and settings.require_shutter:
        found[Blocker.SHUTTER_CLOSED] = "shutter state unknown"

    weather = tel.weather
    if weather is None:
        found[Blocker.WEATHER] = "no weather report yet"
    elif monotonic - weather.received > settings.weather_timeout:
        found[Blocker.WEATHER] = (
            "no weather report for "
            f"{comparison(monotonic - weather.received, '>', settings.weather_timeout, ' s')}"
        )
    else:
        bad = []
        if weather.humidity > settings.max_humidity:
            bad.append(f"humidity {comparison(weather.humidity, '>', settings.max_humidity, '%')}")
        if weather.wind_speed > settings.max_wind:
            bad.append(f"wind {comparison(weather.wind_speed, '>', settings.max_wind, ' m/s')}")
        if bad:
            found[Blocker.WEATHER] = ", ".join(bad)

    # Metrology samples carry the TCS's time: window them on it, so a pinned
    # (mock_time) or system clock does not leave live samples outside.
    seen = tel.tcs_time if tel.tcs_time is not None else now
    fwhm = tel.mean_fwhm(seen, settings.fwhm_window)
    fwhm_note = "" if fwhm is not None else " (no metrology: default)"
    fwhm = settings.default_fwhm if fwhm is None else fwhm
    if fwhm > settings.max_fwhm:
        found[Blocker.BAD_SEEING] = f"FWHM {comparison(fwhm, '>', settings.max_fwhm, '', 1)}{fwhm_note}"

    transparency = tel.mean_transparency(seen, settings.fwhm_window)
    tr_note = "" if transparency is not None else " (no metrology: default)"
    transparency = settings.default_transparency if transparency is None else transparency
    if transparency < settings.min_transparency:
        found[Blocker.LOW_TRANSPARENCY] = (
            f"transparency {comparison(transparency, '<', settings.min_transparency, '', 2)}"
            f"{tr_note}"
        )

    pick, why = _pick(scheduler, now, duration, settings.lookahead, tuple(sorted(found)))
    if pick is None and why:
        found[Blocker.NO_TARGET] = why
    elif pick is None:
        left = sum(1 for s in scheduler.shots if s.n_obs > 0)
        found[Blocker.NO_TARGET] = (
            "no shots in the list" if not scheduler.shots
            else f"none of {left} shot(s) left is in the band for {duration / 60:.0f} min"
        )
    if not inputs.obsnum_ok:
        found[Blocker.OBSNUM_UNAVAILABLE] = (
            inputs.obsnum_error or "the observation-number database could not be reached")
    if inputs.failed_shot:
        found[Blocker.FAILED_SHOT] = "the last shot failed or was lost; waiting for a person"
    if inputs.programs_missing:
        found[Blocker.PROGRAMS_MISSING] = inputs.programs_missing

    blockers = tuple(name for name in BLOCKERS if name in found)
    details = {name: found[name] for name in blockers}
    if inputs.stand_ins:
        details[STAND_INS] = inputs.stand_ins
    if pick is not None and why:
        details[LOOKAHEAD] = why
    return Decision(
        verdict=Verdict.WAIT if blockers else Verdict.RUN,
        shot=None if pick is None else pick.shot,
        blockers=blockers,
        details=details,
        track=None if pick is None else pick.track,
        track_end=None if pick is None else pick.track_end,
    )


def _pick(scheduler: Scheduler, now: float, duration: float, lookahead: float,
          context: tuple[str, ...]) -> tuple[Candidate | None, str]:
    """The scheduler's pick and, when the look-ahead differs from greedy, why.

    ``lookahead`` 0 is the greedy rule; otherwise :func:`ocd.lookahead.choose`
    plans that many seconds ahead and keeps its plan while ``context`` (the
    blockers found so far) and the shot counts stay the same.
    """
    if lookahead <= 0:
        return scheduler.best(now, duration), ""
    choice = choose(scheduler, now, duration, lookahead, context)
    return choice.pick, choice.note
