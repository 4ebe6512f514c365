"""Which shot can be observed now: the HET's fixed-elevation scheduler.

The HET points at a fixed elevation (55.055 deg); a target is observable
while its altitude stays within ``[scheduler] half_width`` of it, on the east
side of the meridian (azimuth 0..180, the EAST track) while it rises, on the
west side (the WEST track) while it sets (shots.md section 2).

How it stays cheap (a decision is taken on every event, with lists of
thousands of shots):

- Everything that needs astropy is done once per *sky span* (about a day
  around ``now``), vectorised: the apparent place of every shot (ICRS to
  true equator and equinox of date, ``TETE``, seen from the HET: precession,
  nutation, aberration, light deflection, no refraction), the local apparent
  sidereal time and the Sun's altitude on a 5-minute grid. A span is rebuilt
  lazily when ``now`` (or the end of a shot) leaves it.
- Over a day the apparent place of a star moves by well under an arcsecond,
  so a target's altitude depends only on its hour angle ``H = LAST - ra``.
  The band of altitudes is therefore a band of hour angles, worked out once
  per shot in closed form: ``cos H = (sin alt - sin lat sin dec) /
  (cos lat cos dec)``. The EAST window is ``-h_out <= H <= -h_in``, the WEST
  one ``h_in <= H <= h_out`` (the sign of ``H`` is the side of the meridian).
- A decision interpolates LAST at ``now`` on the grid and compares arrays:
  a few numpy operations over all shots, no astropy call.

Sidereal time comes from astropy (``Time.sidereal_time("apparent")``), never
hand-rolled; ``tests/test_scheduler.py`` checks the altitudes against a
direct astropy ``AltAz`` (pressure 0) to much better than the 0.1 deg the
spec asks.

astropy (with :mod:`ocd.core.astro`, which sets it up) is imported by the
first sky computation, not with this module: importing it costs about half
a second of CPU, which a program that stops at start (a bad state database,
a URL that cannot be bound) or never decides (``ocd status``) should not pay.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from ocd.core.site import HET_ELEVATION, HET_LATITUDE
from ocd.core.shots import EAST, WEST, Shot

#: Grid step of sidereal time and Sun altitude, s. The Sun moves 1.25 deg in
#: 5 minutes; linear interpolation is good to a few thousandths of a degree.
GRID_STEP = 300.0
#: The span of one sky computation around the whole hour before the ``now``
#: that asked for it (:func:`sky_origin`), s.
SPAN_ALIGN = 3600.0
SPAN_BEFORE = 2 * 3600.0
SPAN_AFTER = 26 * 3600.0

_LAT = np.radians(HET_LATITUDE)


class SchedulerSettings(Protocol):
    half_width: float
    max_sun_alt: float


@dataclass(frozen=True)
class Candidate:
    """A shot observable now on ``track`` until ``track_end`` (epoch s)."""

    shot: Shot
    track: int
    track_end: float


@dataclass(frozen=True)
class TimeGrid:
    """The shot-independent part of a sky span: the grid of times (epoch s),
    LAST on it (unwrapped, radians), its mean rate (rad/s) and the Sun's
    altitude (deg). The arrays are read-only: spans are shared."""

    times: np.ndarray
    last: np.ndarray
    rate: float
    sun_alt: np.ndarray


class SkySource(Protocol):
    """Where a sky span's astropy numbers come from (see :func:`use_sky_source`)."""

    def time_grid(self, origin: float) -> TimeGrid: ...

    def apparent_places(self, origin: float, ra_hours: np.ndarray,
                        dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def sky_origin(now: float) -> float:
    """The whole hour (epoch s) that the sky span around ``now`` is built on.

    Why whole hours: the span's numbers then depend on the hour, not on the
    second a process first asked, so a program restarted within the hour
    (``ocd run`` after a crash, ``ocd plan`` then ``ocd run``) computes the
    same span, and :class:`ocd.services.sky_cache.SkyCache` can hand it back
    from the last start instead of astropy computing it again. The span
    ``origin - SPAN_BEFORE .. origin + SPAN_AFTER`` still reaches at least
    25 h past ``now``; apparent places at the hour instead of the second
    differ by far less than an arcsecond.
    """
    return math.floor(now / SPAN_ALIGN) * SPAN_ALIGN


@functools.lru_cache(maxsize=8)
def compute_time_grid(origin: float) -> TimeGrid:
    """The time grid of the span on ``origin`` (a whole hour), with astropy.

    Why a cache: this is most of a sky computation (astropy's Sun position
    over the grid) and it depends on the hour alone, while a scheduler is
    built anew for every shot list (and every test).
    """
    from ocd.core.astro import HET_LOCATION, quiet_repeats  # isort: skip

    from astropy import units as u
    from astropy.coordinates import AltAz, get_body
    from astropy.time import Time

    times = np.arange(origin - SPAN_BEFORE, origin + SPAN_AFTER + GRID_STEP, GRID_STEP)
    with quiet_repeats():
        grid = Time(times, format="unix")
        last = np.unwrap(grid.sidereal_time("apparent", longitude=HET_LOCATION.lon).to_value(u.rad))
        rate = float((last[-1] - last[0]) / (times[-1] - times[0]))
        sun = get_body("sun", grid, location=HET_LOCATION)
        frame = AltAz(obstime=grid, location=HET_LOCATION, pressure=0 * u.hPa)
        sun_alt = np.asarray(sun.transform_to(frame).alt.deg)
    for array in (times, last, sun_alt):
        array.setflags(write=False)
    return TimeGrid(times, last, rate, sun_alt)


def compute_apparent_places(origin: float, ra_hours: np.ndarray,
                            dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apparent ``(ra, dec)`` (radians) at ``origin`` of ICRS places (hours, deg), with astropy."""
    if not len(ra_hours):
        return np.zeros(0), np.zeros(0)
    # ocd.core.astro first: it sets astropy up for offline use (module doc).
    from ocd.core.astro import HET_LOCATION, quiet_repeats  # isort: skip

    from astropy import units as u
    from astropy.coordinates import SkyCoord, TETE
    from astropy.time import Time

    with quiet_repeats():
        epoch = Time(origin, format="unix")
        coords = SkyCoord(ra=ra_hours * 15.0 * u.deg, dec=dec_deg * u.deg, frame="icrs")
        apparent = coords.transform_to(TETE(obstime=epoch, location=HET_LOCATION))
        return np.asarray(apparent.ra.rad), np.asarray(apparent.dec.rad)


class AstropySky:
    """The :class:`SkySource` that asks astropy (the default)."""

    def time_grid(self, origin: float) -> TimeGrid:
        return compute_time_grid(origin)

    def apparent_places(self, origin: float, ra_hours: np.ndarray,
                        dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return compute_apparent_places(origin, ra_hours, dec_deg)


_source: SkySource = AstropySky()


def use_sky_source(source: SkySource | None) -> SkySource:
    """Make ``source`` give every later sky span of this process; returns the one before.

    ``None`` goes back to :class:`AstropySky`. Process-wide, as astropy's own
    Earth-orientation table is: the service tree sets it once at start
    (:class:`ocd.services.sky_cache.SkyService`), and
    the deciding code stays free of files.
    """
    global _source
    previous, _source = _source, (source if source is not None else AstropySky())
    return previous


class _Sky:
    """Shot-list-wide astropy results for one span of time (see module doc)."""

    def __init__(self, now: float, ra_hours: np.ndarray, dec_deg: np.ndarray):
        origin = sky_origin(now)
        self.limits: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.start = origin - SPAN_BEFORE
        self.end = origin + SPAN_AFTER
        grid = _source.time_grid(origin)
        self.times, self.last, self.rate, self.sun_alt = grid.times, grid.last, grid.rate, grid.sun_alt
        self.ra, self.dec = _source.apparent_places(origin, ra_hours, dec_deg)

    def covers(self, begin: float, end: float) -> bool:
        return self.start <= begin and end <= self.end

    def last_at(self, times: np.ndarray | float) -> np.ndarray:
        return np.interp(times, self.times, self.last)

    def sun_at(self, times: np.ndarray | float) -> np.ndarray:
        return np.interp(times, self.times, self.sun_alt)


class _SkyBox:
    """Holds the current :class:`_Sky`; shared by copies from ``with_remaining``."""

    def __init__(self) -> None:
        self.sky: _Sky | None = None
        self.builds = 0


def hour_angle_limits(dec: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per target: ``(h_in, h_out, valid)`` in radians for the band ``low..high`` deg.

    The target is in the band for ``h_in <= |H| <= h_out``. ``valid`` is false
    for a declination that never reaches ``low``.
    """
    sin_lat, cos_lat = np.sin(_LAT), np.cos(_LAT)
    denominator = cos_lat * np.cos(dec)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_low = (np.sin(np.radians(low)) - sin_lat * np.sin(dec)) / denominator
        c_high = (np.sin(np.radians(high)) - sin_lat * np.sin(dec)) / denominator
    c_low = np.nan_to_num(c_low, nan=2.0, posinf=2.0, neginf=-2.0)
    c_high = np.nan_to_num(c_high, nan=2.0, posinf=2.0, neginf=-2.0)
    h_out = np.arccos(np.clip(c_low, -1.0, 1.0))
    h_in = np.arccos(np.clip(c_high, -1.0, 1.0))
    valid = (c_low <= 1.0) & (h_out > h_in)
    return h_in, h_out, valid


def altitude_from_hour_angle(hour_angle: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Altitude (deg) of a target at hour angle and declination (radians)."""
    s = np.sin(_LAT) * np.sin(dec) + np.cos(_LAT) * np.cos(dec) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


class Scheduler:
    """Picks the shot to observe; pure after the (cached) sky computation."""

    def __init__(self, shots: Sequence[Shot], settings: SchedulerSettings, _box: _SkyBox | None = None):
        self.shots: tuple[Shot, ...] = tuple(shots)
        self._box = _box if _box is not None else _SkyBox()
        self._ra_hours = np.array([s.ra for s in self.shots], dtype=float)
        self._dec_deg = np.array([s.dec for s in self.shots], dtype=float)
        self._priority = np.array([s.priority for s in self.shots], dtype=float)
        self._n_obs = np.array([s.n_obs for s in self.shots], dtype=int)
        tracks = np.array([s.track for s in self.shots], dtype=int)
        self._east_ok = (tracks == EAST) | (tracks == 2)
        self._west_ok = (tracks == WEST) | (tracks == 2)
        self._index = {s.shotid: i for i, s in enumerate(self.shots)}
        self._half_width: float | None = None
        self.max_sun_alt = settings.max_sun_alt
        self._plan: Any = None  # ocd.lookahead's cached plan for these counts
        self.configure(settings)

    # -- settings and shot counts ------------------------------------------
    def configure(self, settings: SchedulerSettings) -> None:
        """Take new thresholds (live updates); cheap when nothing changed."""
        self.max_sun_alt = settings.max_sun_alt
        if settings.half_width == self._half_width:
            return
        self._half_width = settings.half_width

    def with_remaining(self, n_obs: dict[str, int]) -> "Scheduler":
        """A scheduler for the same shots with new remaining counts.

        Shares the sky computation: nothing astronomical is recomputed.
        """
        shots = [s.with_n_obs(n_obs[s.shotid]) if s.shotid in n_obs else s for s in self.shots]
        clone = Scheduler.__new__(Scheduler)
        clone.__dict__.update(self.__dict__)
        clone.shots = tuple(shots)
        clone._n_obs = np.array([s.n_obs for s in shots], dtype=int)
        clone._plan = None  # the counts changed: the look-ahead plans again
        return clone

    # -- the sky -----------------------------------------------------------
    def _sky(self, begin: float, end: float) -> _Sky:
        sky = self._box.sky
        if sky is None or not sky.covers(begin, end) or len(sky.ra) != len(self.shots):
            sky = _Sky(begin, self._ra_hours, self._dec_deg)
            self._box.sky = sky
            self._box.builds += 1
        return sky

    def prepare(self, now: float) -> None:
        """Compute the sky span around ``now`` ahead of the first decision."""
        self._sky(now, now)
        self._band_limits()

    def _band_limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hour-angle band of every shot, cached on the sky per half width."""
        sky = self._box.sky
        assert sky is not None
        width = float(self._half_width or 0.0)
        limits = sky.limits.get(width)
        if limits is None:
            limits = hour_angle_limits(sky.dec, HET_ELEVATION - width, HET_ELEVATION + width)
            sky.limits = {width: limits}
        return limits

    def altitudes(self, now: float) -> np.ndarray:
        """Altitude (deg) of every shot at ``now``, from the cached sky."""
        sky = self._sky(now, now)
        return altitude_from_hour_angle(_wrap(sky.last_at(now) - sky.ra), sky.dec)

    def hour_angles(self, now: float) -> np.ndarray:
        sky = self._sky(now, now)
        return _wrap(sky.last_at(now) - sky.ra)

    # -- the decision ------------------------------------------------------
    def _masks(self, now: float, duration: float) -> tuple[list[tuple[int, np.ndarray, np.ndarray]], np.ndarray]:
        """Per track: (track, observable mask, track end in epoch s) over all shots."""
        sky = self._sky(now, now + duration)
        h_in, h_out, valid = self._band_limits()
        last_now, last_end = sky.last_at(np.array([now, now + duration]))
        hour_angle = _wrap(last_now - sky.ra)
        travel = last_end - last_now
        live = valid & (self._n_obs > 0)
        east = live & self._east_ok & (hour_angle >= -h_out) & (hour_angle + travel <= -h_in)
        west = live & self._west_ok & (hour_angle >= h_in) & (hour_angle + travel <= h_out)
        east_end = now + (-h_in - hour_angle) / sky.rate
        west_end = now + (h_out - hour_angle) / sky.rate
        return [(EAST, east, east_end), (WEST, west, west_end)], hour_angle

    def candidates(self, now: float, duration: float) -> list[Candidate]:
        """Every (shot, track) observable from ``now`` for ``duration`` seconds."""
        if not self.shots:
            return []
        tracks, _ = self._masks(now, duration)
        return [
            Candidate(self.shots[i], track, float(end[i]))
            for track, mask, end in tracks
            for i in np.flatnonzero(mask)
        ]

    def observable(self, now: float, duration: float) -> list[tuple[Shot, int]]:
        """(shot, track) pairs observable now and for the whole ``duration``."""
        return [(c.shot, c.track) for c in self.candidates(now, duration)]

    def best(self, now: float, duration: float) -> Candidate | None:
        """Lowest priority number wins; ties: the track that ends first, then file order."""
        if not self.shots:
            return None
        tracks, _ = self._masks(now, duration)
        index = np.concatenate([np.flatnonzero(mask) for _, mask, _ in tracks])
        if index.size == 0:
            return None
        track = np.concatenate([np.full(int(mask.sum()), t) for t, mask, _ in tracks])
        end = np.concatenate([e[mask] for _, mask, e in tracks])
        # np.lexsort: the last key is the primary one.
        order = np.lexsort((index, end, self._priority[index]))
        k = int(order[0])
        return Candidate(self.shots[int(index[k])], int(track[k]), float(end[k]))

    def is_observable(self, index: int, track: int, now: float, duration: float) -> bool:
        """The rule of :meth:`candidates` for one shot and track, without the whole list."""
        if self._n_obs[index] <= 0 or not (self._east_ok if track == EAST else self._west_ok)[index]:
            return False
        sky = self._sky(now, now + duration)
        h_in, h_out, valid = self._band_limits()
        if not valid[index]:
            return False
        last_now, last_end = sky.last_at(np.array([now, now + duration]))
        hour_angle = float(_wrap(last_now - sky.ra[index]))
        travel = float(last_end - last_now)
        if track == EAST:
            return bool(hour_angle >= -h_out[index] and hour_angle + travel <= -h_in[index])
        return bool(hour_angle >= h_in[index] and hour_angle + travel <= h_out[index])

    def choose(self, now: float, duration: float) -> tuple[Shot, int] | None:
        pick = self.best(now, duration)
        return None if pick is None else (pick.shot, pick.track)

    # -- the Sun -----------------------------------------------------------
    def sun_altitude(self, times: Iterable[float] | float) -> np.ndarray:
        """Altitude of the Sun (deg, no refraction) at ``times``."""
        values = np.atleast_1d(np.asarray(times, dtype=float))
        sky = self._sky(float(values.min()), float(values.max()))
        return sky.sun_at(values)

    def daylight(self, now: float, duration: float, max_sun_alt: float | None = None) -> bool:
        """The Sun is above ``max_sun_alt`` now or before ``now + duration``."""
        limit = self.max_sun_alt if max_sun_alt is None else max_sun_alt
        return self.highest_sun(now, duration) > limit

    def highest_sun(self, now: float, duration: float) -> float:
        """Highest Sun altitude (deg) between ``now`` and ``now + duration``."""
        sky = self._sky(now, now + duration)
        inside = sky.sun_alt[(sky.times > now) & (sky.times < now + duration)]
        ends = sky.sun_at(np.array([now, now + duration]))
        return float(max(ends.max(), inside.max() if inside.size else -90.0))

    # -- the night ahead (look-ahead planning and the yield benchmark) -----
    def passes(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every shot's current or next pass on each track, vectorised.

        Returns ``(begin, end, usable)``, each of shape ``(2, len(shots))``
        indexed by track (0 EAST, 1 WEST): when the shot enters and leaves
        the band (epoch s), and whether the pass counts at all (the
        declination reaches the band, the shot allows the track, and it has
        observations left). Times use the mean sidereal rate of the span,
        which agrees with :meth:`candidates` to well under a second.
        """
        n = len(self.shots)
        if not n:
            empty = np.zeros((2, 0))
            return empty, empty, np.zeros((2, 0), dtype=bool)
        sky = self._sky(now, now)
        h_in, h_out, valid = self._band_limits()
        hour_angle = _wrap(sky.last_at(now) - sky.ra)
        begin = np.empty((2, n))
        end = np.empty((2, n))
        for track, (low, high) in ((EAST, (-h_out, -h_in)), (WEST, (h_in, h_out))):
            passed = np.where(hour_angle > high, hour_angle - 2.0 * np.pi, hour_angle)
            begin[track] = now + (low - passed) / sky.rate
            end[track] = now + (high - passed) / sky.rate
        live = valid & (self._n_obs > 0)
        usable = np.vstack([live & self._east_ok, live & self._west_ok])
        return begin, end, usable

    def dark_intervals(self, begin: float, end: float,
                       max_sun_alt: float | None = None) -> list[tuple[float, float]]:
        """The spans of ``begin..end`` with the Sun at or below ``max_sun_alt``.

        Exact for the interpolated Sun that :meth:`highest_sun` uses, so a
        shot fits inside one of these spans exactly when ``daylight`` does
        not block it.
        """
        limit = self.max_sun_alt if max_sun_alt is None else max_sun_alt
        sky = self._sky(begin, end)
        inside = sky.times[(sky.times > begin) & (sky.times < end)]
        times = np.concatenate([[begin], inside, [end]])
        alts = sky.sun_at(times)
        spans: list[tuple[float, float]] = []
        start = begin if alts[0] <= limit else None
        for k in range(1, len(times)):
            t0, t1, a0, a1 = times[k - 1], times[k], alts[k - 1], alts[k]
            if (a0 <= limit) != (a1 <= limit):
                cross = float(t0 + (limit - a0) / (a1 - a0) * (t1 - t0))
                if start is None:
                    start = cross
                else:
                    spans.append((start, cross))
                    start = None
        if start is not None:
            spans.append((start, float(end)))
        return spans

    # -- windows (for people and tests) ------------------------------------
    def window(self, shotid: str, track: int, now: float) -> tuple[float, float] | None:
        """Start and end (epoch s) of the shot's current or next pass on ``track``."""
        i = self._index[shotid]
        sky = self._sky(now, now)
        h_in, h_out, valid = self._band_limits()
        if not valid[i]:
            return None
        low, high = (-h_out[i], -h_in[i]) if track == EAST else (h_in[i], h_out[i])
        hour_angle = float(_wrap(sky.last_at(now) - sky.ra[i]))
        if hour_angle > high:  # passed: the next one, a sidereal day later
            hour_angle -= 2.0 * np.pi
        return now + (low - hour_angle) / sky.rate, now + (high - hour_angle) / sky.rate

    @property
    def sky_builds(self) -> int:
        """How many times the sky was computed (for tests and the benchmark)."""
        return self._box.builds
