"""Sample nights: a TCS event database written from a seed.

A whole night at the HET (sunset to sunrise by default) of the traffic that
``ocd run`` consumes (events.md section 2): heartbeat, pointing while
tracking (tracks of about an hour with slews between), guider metrology with
drifting FWHM and transparency, weather every minute, shutter status on
change and every minute, and a spell of bad weather with the shutter closed.
Rows follow the schema of replay-db.md with ``str(value)`` as the TCS logger
writes them. The same parameters always give the same file.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import os
import random
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import date as Date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ocd.core.file_kinds import file_kind
from ocd.sim import DEFAULT_DATE  # noqa: F401  (re-exported: the one default)
from ocd.sim.cache import cache_dir
from ocd.sim.limits import MAX_EVENTS, MAX_HOURS

#: Bump when the generator's output changes, so cached files are rebuilt.
GENERATOR_VERSION = 1


SCHEMA = """
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY,
    topic    TEXT NOT NULL
);
CREATE TABLE event_data (
    event_id INTEGER NOT NULL REFERENCES events(event_id),
    key      TEXT NOT NULL,
    value    TEXT,
    PRIMARY KEY (event_id, key)
);
"""
INDEX = "CREATE INDEX events_topic ON events(topic);"

HEARTBEAT = "tcs.receiver.heartbeat"
POINTING = "tcs.root.ra_dec"
GUIDERS = ("pas.Guider1.metrology_data", "pas.Guider2.metrology_data")
WEATHER = "legacy.weather.status"
SHUTTER = "legacy.shutter.status"


@dataclass(frozen=True)
class NightSummary:
    """What :func:`generate_night` wrote (times in UTC epoch seconds)."""

    path: Path
    seed: int
    start: float
    end: float
    events: int
    topics: dict[str, int]
    shutter_open: tuple[tuple[float, float], ...]
    bad_weather: tuple[float, float] | None
    seconds: float = field(compare=False, default=0.0)

    def describe(self) -> str:
        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

        lines = [
            f"{self.path}: {self.events} events, {iso(self.start)} to {iso(self.end)} UTC "
            f"({(self.end - self.start) / 3600:.2f} h), seed {self.seed}, written in {self.seconds:.1f} s"
        ]
        lines += [f"  {topic}: {n}" for topic, n in sorted(self.topics.items())]
        if self.bad_weather:
            lines.append(f"  bad weather, shutter closed: {iso(self.bad_weather[0])} to {iso(self.bad_weather[1])}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=32)
def night_span(night: str | Date, horizon_deg: float = -0.833) -> tuple[float, float]:
    """Sunset and next sunrise at the HET for the night starting on ``night``.

    Uses astropy (only at generation time; no IERS download needed at this
    precision). ``night`` is the local calendar date of the evening.
    """
    import numpy as np
    from astropy.coordinates import AltAz, get_sun
    from astropy.time import Time

    from ocd.core.astro import HET_LOCATION  # sets astropy up for offline use

    day = night if isinstance(night, Date) else Date.fromisoformat(night)
    # Local noon at the HET is about 19:00 UTC: search the following 24 h.
    noon = datetime(day.year, day.month, day.day, 19, tzinfo=timezone.utc).timestamp()
    offsets = np.arange(0, 24 * 3600 + 1, 120.0)
    times = Time(noon + offsets, format="unix")
    alt = get_sun(times).transform_to(AltAz(obstime=times, location=HET_LOCATION)).alt.deg - horizon_deg
    down = np.nonzero((alt[:-1] > 0) & (alt[1:] <= 0))[0]
    up = np.nonzero((alt[:-1] <= 0) & (alt[1:] > 0))[0]
    if not len(down) or not len(up):
        raise ValueError(f"no sunset and sunrise found at the HET for the night of {day}")

    def cross(i: int) -> float:
        frac = alt[i] / (alt[i] - alt[i + 1])
        return float(noon + offsets[i] + frac * (offsets[i + 1] - offsets[i]))

    return cross(int(down[0])), cross(int(up[up > down[0]][0]))


# -- the plan of the night: pure, from the seed ---------------------------------------


@dataclass(frozen=True)
class Plan:
    start: float
    end: float
    shutter_open: tuple[tuple[float, float], ...]
    bad_weather: tuple[float, float] | None
    #: (begin, end, ra hours, dec deg, az deg) of each track; slews between.
    tracks: tuple[tuple[float, float, float, float, float], ...]


def plan_night(
    seed: int, start: float, end: float, bad_weather_minutes: float | None, bad_weather_at: float | None
) -> Plan:
    """Shutter, bad weather and tracks of a night."""
    rng = random.Random(f"{seed}:plan")
    length = end - start
    dusk = min(40 * 60.0, 0.06 * length)
    opened, closed = start + dusk, end - dusk
    spell = None
    minutes = rng.uniform(45, 90) if bad_weather_minutes is None else bad_weather_minutes
    if minutes > 0:
        span = min(minutes * 60.0, 0.3 * length)
        begin = start + (rng.uniform(0.35, 0.55) * length if bad_weather_at is None else bad_weather_at * 3600.0)
        spell = (begin, min(begin + span, end))
    windows = [(opened, closed)]
    if spell is not None:
        windows = [(a, b) for a, b in ((opened, min(closed, spell[0])), (max(opened, spell[1]), closed)) if b > a]
    tracks = []
    for a, b in windows:
        t = a
        while t < b:
            t += min(rng.uniform(180, 480), max(0.05 * length, 30.0))  # slew and set-up
            duration = rng.uniform(40 * 60, 90 * 60)
            if t >= b:
                break
            az = rng.uniform(0, 360)
            tracks.append((t, min(t + duration, b), rng.uniform(0, 24), rng.uniform(-10, 71.5), az))
            t += duration
    return Plan(start, end, tuple(windows), spell, tuple(tracks))


def _inside(t: float, spans: Any) -> bool:
    return any(a <= t < b for a, b in spans)


# -- event streams: (wire time, topic, fields as stored) ------------------------------

Row = tuple[float, str, dict[str, str | None]]


def _num(x: float, digits: int = 4) -> str:
    return str(round(x, digits))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def _stamp(topic: str, data_time: float | str, wire: float, fields: dict[str, str | None]) -> Row:
    system, source, key = topic.split(".", 2)
    fields.update(
        __system=system, __source=source, __key=key,
        __data_time=data_time if isinstance(data_time, str) else str(round(data_time, 4)),
        __wire_time=str(round(wire, 4)), __data="False",
    )
    return wire, topic, fields


def _heartbeats(plan: Plan, hz: float, seed: int) -> Iterator[Row]:
    rng = random.Random(f"{seed}:heartbeat")
    step, t = 1.0 / hz, plan.start
    while t < plan.end:
        yield _stamp(HEARTBEAT, t, t + rng.uniform(0.001, 0.02), {})
        t += step


def _pointing(plan: Plan, hz: float, seed: int) -> Iterator[Row]:
    rng = random.Random(f"{seed}:pointing")
    step = 1.0 / hz
    for begin, end, ra, dec, az in plan.tracks:
        side = "EAST" if az < 180 else "WEST"
        t = begin
        while t < end:
            fields = {"ra": _num(ra + rng.gauss(0, 2e-5), 6), "dec": _num(dec + rng.gauss(0, 3e-4), 5),
                      "az": _num(az, 3), "dir": side, "tracking": "True"}
            yield _stamp(POINTING, t, t + rng.uniform(0.002, 0.03), fields)
            t += step
        # The end of a track: one last report, no longer tracking (slew starts).
        fields = {"ra": _num(ra, 6), "dec": _num(dec, 5), "az": _num(az, 3), "dir": side, "tracking": "False"}
        yield _stamp(POINTING, end, end + 0.01, fields)


def _metrology(plan: Plan, index: int, interval: tuple[float, float], seed: int) -> Iterator[Row]:
    rng = random.Random(f"{seed}:guider{index}")
    topic = GUIDERS[index - 1]
    fwhm, transparency = 1.5 + 0.1 * index, 0.95
    for begin, end, _ra, _dec, _az in plan.tracks:
        t = begin + rng.uniform(2, 10)
        while t < end:
            # Ornstein-Uhlenbeck drifts: seeing wanders around 1.6", sky around 0.95.
            fwhm += 0.02 * (1.6 - fwhm) + rng.gauss(0, 0.05)
            fwhm = min(max(fwhm, 0.7), 4.0)
            near_spell = plan.bad_weather is not None and plan.bad_weather[0] - 1800 < t < plan.bad_weather[1] + 1800
            transparency += 0.05 * ((0.6 if near_spell else 0.95) - transparency) + rng.gauss(0, 0.01)
            transparency = min(max(transparency, 0.0), 1.1)
            fields = {"fwhm": _num(fwhm, 3), "transparency": _num(transparency, 3),
                      "valid": "False" if rng.random() < 0.03 else "True",
                      "probe": f"{index:02d}",
                      "offsets": json.dumps([round(rng.gauss(0, 0.1), 3), round(rng.gauss(0, 0.1), 3)])}
            exposure_mid = t - rng.uniform(1.0, 3.0)
            yield _stamp(topic, exposure_mid, t + rng.uniform(0.005, 0.05), fields)
            t += rng.uniform(*interval)


def _weather(plan: Plan, interval: float, seed: int) -> Iterator[Row]:
    rng = random.Random(f"{seed}:weather")
    t, temp, humidity, wind = plan.start + 5.0, 8.0, 30.0, 4.0
    while t < plan.end:
        bad = plan.bad_weather is not None and plan.bad_weather[0] - 600 <= t < plan.bad_weather[1]
        temp += -0.0015 * interval / 60 + rng.gauss(0, 0.05)
        humidity += 0.1 * ((95.0 if bad else 30.0) - humidity) + rng.gauss(0, 1.0)
        humidity = min(max(humidity, 3.0), 100.0)
        wind += 0.1 * ((17.0 if bad else 4.0) - wind) + rng.gauss(0, 0.4)
        wind = max(wind, 0.0)
        dewpoint = temp - (100 - humidity) / 5.0
        fields = {"humidity": _num(humidity, 1), "wind_speed": _num(wind, 2), "wind_dir": _num(rng.uniform(0, 360), 0),
                  "ambtemp": _num(temp, 2), "dewpoint": _num(dewpoint, 2), "pressure": _num(790 + rng.gauss(0, 0.3), 1),
                  "rain_rate": _num(rng.uniform(0.1, 2.0), 2) if bad and humidity > 90 else None}
        # The weather station stamps its data in ISO 8601 (exercises conversion).
        yield _stamp(WEATHER, _iso(t), t + rng.uniform(0.01, 0.2), fields)
        t += interval


def _shutter(plan: Plan, interval: float, seed: int) -> Iterator[Row]:
    rng = random.Random(f"{seed}:shutter")
    ticks = int((plan.end - plan.start - 1.0) // interval) + 1
    times = {plan.start + 1.0 + i * interval for i in range(ticks)}
    times |= {x for span in plan.shutter_open for x in span if plan.start <= x < plan.end}
    for t in sorted(times):
        state = "open" if _inside(t, plan.shutter_open) else "closed"
        yield _stamp(SHUTTER, t, t + rng.uniform(0.005, 0.05), {"state": state})


# -- writing --------------------------------------------------------------------------


def generate_night(
    path: str | Path,
    seed: int = 0,
    date: str = DEFAULT_DATE,
    hours: float | None = None,
    start: float | None = None,
    end: float | None = None,
    heartbeat_hz: float = 1.0,
    pointing_hz: float = 1.0,
    metrology_interval: tuple[float, float] = (5.0, 10.0),
    weather_interval: float = 60.0,
    shutter_interval: float = 60.0,
    bad_weather_minutes: float | None = None,
    bad_weather_at: float | None = None,
) -> NightSummary:
    """Write a sample night to ``path`` (replaced atomically) and describe it.

    The night runs from sunset to sunrise of ``date`` at the HET, unless
    ``start``/``end`` (epoch s) or ``hours`` (from sunset, or from ``start``)
    say otherwise. ``bad_weather_minutes`` None picks 45-90 min from the seed,
    0 means none; ``bad_weather_at`` is hours after the start.
    """
    began = time.perf_counter()
    start, end = night_bounds(date, hours, start, end)
    lo, hi = metrology_interval
    check_night(start, end, heartbeat_hz, pointing_hz, (lo, hi), weather_interval,
                shutter_interval, bad_weather_minutes, bad_weather_at)
    plan = plan_night(seed, start, end, bad_weather_minutes, bad_weather_at)
    streams = [
        _heartbeats(plan, heartbeat_hz, seed), _pointing(plan, pointing_hz, seed),
        _metrology(plan, 1, (lo, hi), seed), _metrology(plan, 2, (lo, hi), seed),
        _weather(plan, weather_interval, seed), _shutter(plan, shutter_interval, seed),
    ]
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    try:
        try:
            total = _write(partial, heapq.merge(*streams, key=lambda row: row[0]), counts)
        except sqlite3.Error as exc:
            # SQLite's "unable to open database file" names no file: say which.
            raise OSError(0, f"cannot write a database there ({exc})", str(path)) from None
        check_replaceable(path)  # it may have appeared while the night was written
        os.replace(partial, path)
    except BaseException:
        # Refused, failed or interrupted: no half-written night is left behind.
        partial.unlink(missing_ok=True)
        raise
    return NightSummary(path, seed, start, end, total, counts, plan.shutter_open, plan.bad_weather,
                        time.perf_counter() - began)


def night_bounds(date: str | Date, hours: float | None, start: float | None,
                 end: float | None) -> tuple[float, float]:
    """Start and end (epoch s) of the night :func:`generate_night` writes.

    Sunset to sunrise of ``date`` unless ``start``/``end`` or ``hours`` (from
    sunset, or from ``start``) say otherwise. Apart so that ``ocd
    sample_night`` checks the very night it would write before writing it.
    """
    if start is None or (end is None and hours is None):
        sunset, sunrise = night_span(date)
        start = sunset if start is None else start
        end = sunrise if end is None and hours is None else end
    if end is None:
        end = start + float(hours) * 3600.0  # type: ignore[arg-type]
    return start, end


def worst_case_events(seconds: float, heartbeat_hz: float, pointing_hz: float,
                      metrology_low: float, weather_interval: float,
                      shutter_interval: float) -> float:
    """The most events a night of ``seconds`` can have at these rates.

    As if the telescope tracked all night (pointing and metrology run only
    while it tracks), plus a margin for the shutter's changes and the ends of
    tracks: an upper bound that needs no plan, so it is known before writing.
    """
    per_second = (heartbeat_hz + pointing_hz + 2.0 / metrology_low + 1.0 / weather_interval
                  + 1.0 / shutter_interval)
    return seconds * per_second + seconds / 600.0 + 100.0


def check_night(start: float, end: float, heartbeat_hz: float, pointing_hz: float,
                metrology_interval: tuple[float, float], weather_interval: float,
                shutter_interval: float, bad_weather_minutes: float | None = None,
                bad_weather_at: float | None = None) -> None:
    """Raise ValueError for a night that cannot be written, before anything is.

    A night without end (or of a billion events) ran until the memory or the
    disk was full, and a time past year 9999 failed half-way, after the file
    was started: every bound is checked here, first.
    """
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"the night's start and end must be finite, not {start} and {end}")
    if not end > start:
        raise ValueError(f"the night must end after it starts ({start} >= {end})")
    if end - start > MAX_HOURS * 3600.0:
        raise ValueError(f"the night is {(end - start) / 3600:.4g} h long: at most {MAX_HOURS:g} h")
    for moment in (start, end):
        try:
            _iso(moment)
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"the night's time {moment} is not a date (years 1 to 9999)") from None
    for name, value in (("heartbeat_hz", heartbeat_hz), ("pointing_hz", pointing_hz),
                        ("weather_interval", weather_interval), ("shutter_interval", shutter_interval)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be positive and finite, not {value}")
    lo, hi = metrology_interval
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"metrology_interval must be 0 < low <= high, finite, not {metrology_interval}")
    events = worst_case_events(end - start, heartbeat_hz, pointing_hz, lo, weather_interval,
                               shutter_interval)
    if events > MAX_EVENTS:
        raise ValueError(f"the night would have up to {events:.3g} events: at most {MAX_EVENTS}")
    if bad_weather_minutes is not None and not (bad_weather_minutes >= 0
                                                and math.isfinite(bad_weather_minutes)):
        raise ValueError(f"bad_weather_minutes must be >= 0 and finite, not {bad_weather_minutes}")
    if bad_weather_at is not None and not 0 <= bad_weather_at * 3600.0 < end - start:
        raise ValueError(f"bad_weather_at {bad_weather_at} h is not within the night "
                         f"({(end - start) / 3600:.4g} h)")


def check_replaceable(path: Path) -> None:
    """Raise OSError unless ``path`` is missing or a regular file.

    The night is written aside and renamed onto ``path``: a rename replaces
    whatever is there, and as root it replaced the device /dev/full with a
    database. Only a regular file (or a link to one) may be replaced.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # nothing there (or a link to nothing): nothing is lost
        return
    kind = file_kind(mode)
    if kind is not None:
        raise OSError(0, f"is {kind}, not a regular file: only a regular file "
                         "is replaced", str(path))


def _write(path: Path, rows: Iterator[Row], counts: dict[str, int]) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        event_id = 0
        events: list[tuple[int, str]] = []
        data: list[tuple[int, str, str | None]] = []
        for _wire, topic, fields in rows:
            event_id += 1
            counts[topic] = counts.get(topic, 0) + 1
            events.append((event_id, topic))
            data.extend((event_id, key, value) for key, value in fields.items())
            if len(data) >= 200_000:
                conn.executemany("INSERT INTO events VALUES (?, ?)", events)
                conn.executemany("INSERT INTO event_data VALUES (?, ?, ?)", data)
                events.clear()
                data.clear()
        conn.executemany("INSERT INTO events VALUES (?, ?)", events)
        conn.executemany("INSERT INTO event_data VALUES (?, ?, ?)", data)
        conn.execute(INDEX)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return event_id


def cached_night(**params: Any) -> Path:
    """A sample night with these :func:`generate_night` parameters, from the cache.

    Generated on first use into :func:`ocd.sim.cache.cache_dir`, reused after.
    """
    params.setdefault("seed", 0)
    params.setdefault("date", DEFAULT_DATE)
    if "metrology_interval" in params:
        params["metrology_interval"] = tuple(params["metrology_interval"])
    key = json.dumps({"v": GENERATOR_VERSION, **params}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = cache_dir() / f"night-{params['date']}-seed{params['seed']}-{digest}.db"
    if not path.exists():
        generate_night(path, **params)
    return path


def summary_dict(summary: NightSummary) -> dict[str, Any]:
    """A JSON-friendly view of a summary."""
    out = asdict(summary)
    out["path"] = str(summary.path)
    return out
