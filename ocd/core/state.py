"""What OCD knows about the telescope and the sky, folded from TCS events.

``fold(state, event, received)`` is pure: the old state, one event (already
validated and normalised by ``ocd.core.events``, events.md section 2) and the
reactor time at which it arrived go in, the new state comes out. Topics OCD
does not consume leave the state as it is.

Two clocks meet here, on purpose kept apart:

- ``received`` (the reactor clock) stamps the heartbeat and the weather, so
  that ``tcs_timeout`` and ``weather_timeout`` measure real silence even
  when the TCS's own time stands still;
- ``event.data_time`` (the TCS's clock, OCD's *now*) stamps metrology
  samples, so that the FWHM window of a replayed night is that night's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, Callable, TypeVar

from ocd.core.events import Event

HEARTBEAT = "tcs.receiver.heartbeat"
RA_DEC = "tcs.root.ra_dec"
METROLOGY = ("pas.Guider1.metrology_data", "pas.Guider2.metrology_data")
WEATHER = "legacy.weather.status"
SHUTTER = "legacy.shutter.status"

#: Metrology older than this (s of TCS time) behind the newest sample is
#: dropped: the upper bound of a useful ``[decision] fwhm_window``.
METROLOGY_KEEP = 3600.0


@dataclass(frozen=True)
class Pointing:
    ra: float  # hours
    dec: float  # deg
    az: float  # deg, structure azimuth
    dir: str  # "EAST"/"WEST"
    tracking: bool
    time: float  # TCS time of the event


@dataclass(frozen=True)
class Metrology:
    time: float  # TCS time of the sample
    fwhm: float  # arcsec
    transparency: float
    source: str  # Guider1 / Guider2


@dataclass(frozen=True)
class Weather:
    humidity: float  # %
    wind_speed: float  # m/s
    ambtemp: float | None
    dewpoint: float | None
    time: float  # TCS time
    received: float  # reactor time


@dataclass(frozen=True)
class TelescopeState:
    """Immutable; :func:`fold` returns a new one for each event that matters."""

    last_heartbeat: float | None = None  # reactor time of the last heartbeat
    tcs_time: float | None = None  # newest __data_time of a consumed topic
    pointing: Pointing | None = None
    metrology: tuple[Metrology, ...] = ()  # valid samples only, oldest first
    weather: Weather | None = None
    shutter: str | None = None  # "open", "closed", or None when unknown
    shutter_time: float | None = None  # TCS time of the last shutter event

    def _window(self, now: float, window: float) -> tuple[Metrology, ...]:
        """The samples in ``[now - window, now]`` (bisected: they are sorted by time)."""
        samples = self.metrology
        low = bisect_left(samples, now - window, key=_TIME)
        return samples[low:bisect_right(samples, now, lo=low, key=_TIME)]

    def _mean(self, now: float, window: float, pick: Callable[[Metrology], float]) -> float | None:
        values = [pick(m) for m in self._window(now, window)]
        return sum(values) / len(values) if values else None

    def mean_fwhm(self, now: float, window: float) -> float | None:
        """Mean FWHM (arcsec) of the samples in ``[now - window, now]``; None if none."""
        return self._mean(now, window, lambda m: m.fwhm)

    def mean_transparency(self, now: float, window: float) -> float | None:
        return self._mean(now, window, lambda m: m.transparency)

    def samples(self, now: float, window: float) -> int:
        return len(self._window(now, window))


_TIME = attrgetter("time")
_T = TypeVar("_T")


def _build(cls: type[_T], **fields: Any) -> _T:
    """``cls(**fields)`` for the frozen dataclasses of this module, on the per-event path.

    The frozen ``__init__`` pays one ``object.__setattr__`` per field; none of
    these classes has a ``__post_init__``, so setting the instance dict at
    once builds the same value for half the cost. ``fields`` must name every
    field.
    """
    new = object.__new__(cls)
    object.__setattr__(new, "__dict__", fields)
    return new


def _evolve(state: TelescopeState, **changes: Any) -> TelescopeState:
    """``dataclasses.replace(state, **changes)`` for the per-event path.

    ``replace`` looks the fields up again and rebuilds the value through the
    frozen ``__init__``: about 4 us, once the largest cost of a fold. Like
    :func:`_build`, this sets an updated copy of the instance dict instead.
    """
    new = object.__new__(TelescopeState)
    object.__setattr__(new, "__dict__", {**state.__dict__, **changes})
    return new


def _newer(state: TelescopeState, event: Event) -> float:
    t = event.data_time
    return t if state.tcs_time is None or t > state.tcs_time else state.tcs_time


def _fold_heartbeat(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    return _evolve(state, last_heartbeat=received, tcs_time=_newer(state, event))


def _fold_ra_dec(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    fields = event.payload
    pointing = _build(
        Pointing, ra=float(fields["ra"]), dec=float(fields["dec"]), az=float(fields["az"]),
        dir=str(fields["dir"]).upper(), tracking=bool(fields["tracking"]), time=event.data_time,
    )
    return _evolve(state, pointing=pointing, tcs_time=_newer(state, event))


def _fold_metrology(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    tcs_time = _newer(state, event)
    if not event["valid"]:
        return _evolve(state, tcs_time=tcs_time)
    sample = Metrology(event.data_time, float(event["fwhm"]), float(event["transparency"]), event.source)
    samples = state.metrology
    # Sorted by time: the samples to drop are a prefix, found by bisection
    # (no Python-level pass over the hour of samples per event).
    if samples and samples[0].time < tcs_time - METROLOGY_KEEP:
        samples = samples[bisect_left(samples, tcs_time - METROLOGY_KEEP, key=_TIME):]
    if not samples or samples[-1].time <= sample.time:
        samples += (sample,)
    else:  # out of order: insert after the samples of the same time or older
        kept = list(samples)
        insort(kept, sample, key=_TIME)
        samples = tuple(kept)
    return _evolve(state, metrology=samples, tcs_time=tcs_time)


def _optional(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _fold_weather(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    weather = Weather(
        humidity=float(event["humidity"]), wind_speed=float(event["wind_speed"]),
        ambtemp=_optional(event.get("ambtemp")), dewpoint=_optional(event.get("dewpoint")),
        time=event.data_time, received=received,
    )
    return _evolve(state, weather=weather, tcs_time=_newer(state, event))


def _fold_shutter(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    value = str(event["state"]).strip().lower()
    shutter = value if value in ("open", "closed") else None
    return _evolve(state, shutter=shutter, shutter_time=event.data_time, tcs_time=_newer(state, event))


_FOLDS: dict[str, Callable[[TelescopeState, Event, float], TelescopeState]] = {
    HEARTBEAT: _fold_heartbeat,
    RA_DEC: _fold_ra_dec,
    METROLOGY[0]: _fold_metrology,
    METROLOGY[1]: _fold_metrology,
    WEATHER: _fold_weather,
    SHUTTER: _fold_shutter,
}

#: The topics :func:`fold` reads (events.md section 2).
FOLDED_TOPICS: tuple[str, ...] = tuple(_FOLDS)


def fold(state: TelescopeState, event: Event, received: float) -> TelescopeState:
    """The state after ``event``, which arrived at reactor time ``received``."""
    handler = _FOLDS.get(event.topic)
    return state if handler is None else handler(state, event, received)


def reset_windows(state: TelescopeState) -> TelescopeState:
    """After a jump back in TCS time: forget the time-windowed samples.

    The metrology of the old timeline lies in the new one's future and would
    otherwise never leave the window; the TCS time restarts with the next event.
    Reactor-clock stamps (heartbeat, weather) stay: they measure real silence.
    """
    return replace(state, metrology=(), tcs_time=None)
