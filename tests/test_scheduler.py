"""The scheduler against an independent astropy computation (shots.md section 2)."""

from __future__ import annotations

import numpy as np
import pytest

from ocd.core.astro import HET_LOCATION, quiet_repeats
from ocd.core.site import HET_ELEVATION
from ocd.core.decide import DecisionSettings
from ocd.core.scheduler import Scheduler
from ocd.core.shots import EAST, EITHER, WEST, Shot

from astropy import units as u  # noqa: E402  (after ocd.core.astro: offline set-up first)
from astropy.coordinates import AltAz, SkyCoord, get_body  # noqa: E402
from astropy.time import Time  # noqa: E402

SETTINGS = DecisionSettings()
DURATION = SETTINGS.duration  # 3 x 360 + 300 s
NIGHT = Time("2018-05-15T02:00:00", scale="utc").unix  # evening at the HET
LOW, HIGH = HET_ELEVATION - SETTINGS.half_width, HET_ELEVATION + SETTINGS.half_width


def shot(shotid: str, ra: float, dec: float, track: int = EITHER, priority: int = 1, n_obs: int = 1) -> Shot:
    return Shot(shotid, ra, dec, track, priority, n_obs, -1.0, {})


def direct_altaz(ra_hours, dec_deg, times):
    """Independent reference: astropy AltAz, pressure 0, one call, no caching."""
    with quiet_repeats():
        t = Time(np.atleast_1d(times), format="unix")
        frame = AltAz(obstime=t, location=HET_LOCATION, pressure=0 * u.hPa)
        c = SkyCoord(ra=ra_hours * 15 * u.deg, dec=dec_deg * u.deg).transform_to(frame)
    return c.alt.deg, c.az.deg


def direct_windows(ra, dec, start, hours=24.0, step=30.0):
    """Times (1-min grid) and masks of in-band east / west, from astropy directly."""
    times = start + np.arange(0, hours * 3600, step)
    alt, az = direct_altaz(ra, dec, times)
    band = (alt >= LOW) & (alt <= HIGH)
    return times, band & (az < 180), band & (az >= 180)


def first_fit(times, mask, need):
    """First grid time from which ``mask`` holds for ``need`` s (plus a margin)."""
    step = times[1] - times[0]
    n = int(np.ceil((need + 120) / step)) + 1
    for i in range(len(times) - n):
        if mask[i : i + n].all():
            return float(times[i + 2])  # a minute inside the window
    raise AssertionError("no window in the reference")


TARGET = shot("DEX00001", 12.401733, 56.1464)  # the spec's sample line


@pytest.fixture(scope="module")
def scheduler():
    s = Scheduler([TARGET, shot("SOUTH", 12.4, -40.0)], SETTINGS)
    s.prepare(NIGHT)
    return s


def test_altitudes_agree_with_astropy_to_a_hundredth_of_a_degree():
    targets = [shot(f"T{i}", ra, dec) for i, (ra, dec) in enumerate(
        [(12.401733, 56.1464), (0.5, 10.0), (6.25, 45.0), (18.0, 70.0), (23.9, -20.0), (9.0, 30.68)])]
    s = Scheduler(targets, SETTINGS)
    for offset_h in (0.0, 3.3, 7.9, 20.1):
        now = NIGHT + offset_h * 3600
        mine = s.altitudes(now)
        for t, alt in zip(targets, mine):
            ref, _ = direct_altaz(t.ra, t.dec, now)
            assert abs(alt - ref[0]) < 0.01, (t.shotid, offset_h, alt, ref[0])


def test_far_future_date_works_offline_with_tolerance():
    now = Time("2031-03-01T06:00:00").unix
    s = Scheduler([TARGET], SETTINGS)
    ref, _ = direct_altaz(TARGET.ra, TARGET.dec, now)
    assert abs(s.altitudes(now)[0] - ref[0]) < 0.1


def test_east_then_west_at_the_times_astropy_says(scheduler):
    times, east, west = direct_windows(TARGET.ra, TARGET.dec, NIGHT)
    t_east = first_fit(times, east, DURATION)
    t_west = first_fit(times, west, DURATION)
    assert t_east < t_west
    assert scheduler.observable(t_east, DURATION) == [(TARGET, EAST)]
    assert scheduler.observable(t_west, DURATION) == [(TARGET, WEST)]
    # Track restrictions: an EAST-only shot is not offered on the west side.
    east_only = Scheduler([shot("E", TARGET.ra, TARGET.dec, track=EAST)], SETTINGS)
    assert east_only.observable(t_west, DURATION) == []
    assert [tr for _, tr in east_only.observable(t_east, DURATION)] == [EAST]


def runs(times, mask):
    """(start, end) of each contiguous run of ``mask`` that starts and ends inside ``times``."""
    edges = np.diff(mask.astype(int))
    starts = np.flatnonzero(edges == 1) + 1
    ends = np.flatnonzero(edges == -1)
    return [(times[a], times[b]) for a in starts for b in ends[ends >= a][:1]]


def test_window_edges_match_astropy_within_a_minute(scheduler):
    times, east, west = direct_windows(TARGET.ra, TARGET.dec, NIGHT, hours=30, step=20.0)
    for track, mask in ((EAST, east), (WEST, west)):
        ref_start, ref_end = runs(times, mask)[0]
        start, end = scheduler.window(TARGET.shotid, track, ref_start - 600)
        assert abs(start - ref_start) < 60 and abs(end - ref_end) < 60, (track, start - ref_start, end - ref_end)


def test_not_observable_for_the_whole_shot_near_the_end_of_a_track(scheduler):
    start, end = scheduler.window(TARGET.shotid, EAST, NIGHT)
    assert scheduler.observable(end - DURATION - 60, DURATION) == [(TARGET, EAST)]
    assert scheduler.observable(end - DURATION + 60, DURATION) == []
    assert scheduler.observable(start + 60, 0) == [(TARGET, EAST)]
    assert scheduler.observable(start - 60, 0) == []


def test_dec_that_never_reaches_the_band_is_never_observable(scheduler):
    for hour in range(24):
        picked = [s.shotid for s, _ in scheduler.observable(NIGHT + hour * 3600, 0)]
        assert "SOUTH" not in picked
    assert scheduler.window("SOUTH", EAST, NIGHT) is None


def test_shots_without_observations_left_are_skipped(scheduler):
    start, _ = scheduler.window(TARGET.shotid, EAST, NIGHT)
    done = scheduler.with_remaining({TARGET.shotid: 0})
    assert done.observable(start + 60, DURATION) == []
    assert done.sky_builds == scheduler.sky_builds  # no recomputation
    again = done.with_remaining({TARGET.shotid: 2})
    assert again.choose(start + 60, DURATION)[0].n_obs == 2


def test_lowest_priority_number_wins_then_the_track_that_ends_first():
    # Same declination, RA a little apart: both on the east track; the one
    # with the smaller RA rises first and leaves the band first.
    early = shot("EARLY", 12.30, 56.1464, priority=2)
    late = shot("LATE", 12.40, 56.1464, priority=2)
    urgent = shot("URGENT", 12.45, 56.1464, priority=1)
    s = Scheduler([late, early], SETTINGS)
    start, _ = s.window("LATE", EAST, NIGHT)
    now = start + 120
    assert {x.shotid for x, _ in s.observable(now, DURATION)} == {"EARLY", "LATE"}
    assert s.choose(now, DURATION) == (early, EAST)
    s2 = Scheduler([late, early, urgent], SETTINGS)
    s2_start, _ = s2.window("URGENT", EAST, NIGHT)
    assert s2.choose(s2_start + 120, DURATION)[0].shotid == "URGENT"


def test_half_width_update_applies_without_recomputing_the_sky(scheduler):
    start, _ = scheduler.window(TARGET.shotid, EAST, NIGHT)
    builds = scheduler.sky_builds
    narrow = DecisionSettings(half_width=1.0)
    s = scheduler.with_remaining({})
    s.configure(narrow)
    assert s.observable(start + 60, 0) == []  # 49 deg is outside 55 +- 1
    s.configure(SETTINGS)
    assert s.observable(start + 60, 0) == [(TARGET, EAST)]
    assert s.sky_builds == builds


def test_sky_is_recomputed_lazily_when_now_leaves_the_span():
    s = Scheduler([TARGET], SETTINGS)
    s.observable(NIGHT, DURATION)
    s.observable(NIGHT + 3600, DURATION)
    assert s.sky_builds == 1
    s.observable(NIGHT + 3 * 86400, DURATION)
    assert s.sky_builds == 2


def sun_reference(times):
    with quiet_repeats():
        t = Time(times, format="unix")
        frame = AltAz(obstime=t, location=HET_LOCATION, pressure=0 * u.hPa)
        return get_body("sun", t, location=HET_LOCATION).transform_to(frame).alt.deg


def test_sun_altitude_and_daylight_before_the_shot_ends(scheduler):
    times = NIGHT + np.arange(0, 24 * 3600, 60.0)
    ref = sun_reference(times)
    assert np.max(np.abs(scheduler.sun_altitude(times) - ref)) < 0.05
    noon = times[np.argmax(ref)]
    assert scheduler.daylight(noon, DURATION, -12.0)
    midnight = times[np.argmin(ref)]
    assert not scheduler.daylight(midnight, DURATION, -12.0)
    # Morning: dark now, but the Sun passes -12 deg before the shot would end.
    dawn = times[(ref < -12.5) & (np.gradient(ref) > 0)]
    rising = dawn[-1]  # last minute below -12.5 while rising
    assert sun_reference([rising])[0] < -12.0
    assert scheduler.daylight(rising, DURATION, -12.0)
    assert not scheduler.daylight(rising, 0.0, -12.0)


def test_a_second_scheduler_at_the_same_moment_reuses_the_time_grid_with_the_same_numbers():
    """The shot-independent grid (LAST, the Sun) is kept per whole hour: a new
    scheduler (a reloaded shot list) later in the same hour gets the very
    numbers the first one computed, shared read-only, and its own shots' places."""
    from ocd.core.scheduler import compute_time_grid

    moment = NIGHT + 1234.5  # a moment no other test asks for
    first = Scheduler([TARGET], SETTINGS)
    first.prepare(moment)
    misses = compute_time_grid.cache_info().misses
    second = Scheduler([TARGET, shot("SOUTH", 12.4, -40.0)], SETTINGS)
    second.prepare(moment + 1000.0)  # the same hour: the same span
    assert compute_time_grid.cache_info().misses == misses
    sky_a, sky_b = first._box.sky, second._box.sky
    assert sky_a.last is sky_b.last and sky_a.sun_alt is sky_b.sun_alt
    assert not sky_b.sun_alt.flags.writeable
    assert len(sky_b.ra) == 2
    assert np.array_equal(first.sun_altitude(moment), second.sun_altitude(moment))
    times = moment + np.array([0.0, 3600.0, 7200.0])
    np.testing.assert_allclose(second._box.sky.sun_at(times), sun_reference(times), atol=0.01)
