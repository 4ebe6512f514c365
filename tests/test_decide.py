"""The decision table of shots.md section 2: each blocker alone, and together."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ocd.config import Config
from ocd.core.decide import BLOCKERS, DecisionInputs, DecisionSettings, decide
from ocd.core.events import UrlKind, event_from_payload, make_payload
from ocd.core.scheduler import Scheduler
from ocd.core.shots import WEST, Shot
from ocd.core.state import TelescopeState, fold

from astropy.time import Time  # noqa: E402

SETTINGS = DecisionSettings()
TARGET = Shot("DEX00001", 12.401733, 56.1464, 2, 1, 1, -1.0, {})
EVENING = Time("2018-05-15T02:00:00").unix
MONO = 1000.0  # the reactor's clock


@pytest.fixture(scope="module")
def scheduler():
    s = Scheduler([TARGET], SETTINGS)
    s.prepare(EVENING)
    return s


@pytest.fixture(scope="module")
def good_now(scheduler):
    """Dark, and the target on its west track for a whole shot."""
    start, _ = scheduler.window(TARGET.shotid, WEST, EVENING)
    now = start + 60
    assert not scheduler.daylight(now, SETTINGS.duration, SETTINGS.max_sun_alt)
    return now


def tcs(topic, data_time, **fields):
    payload = make_payload(topic, fields, data_time, data_time)
    return event_from_payload(topic, payload, UrlKind.TCS)


def good_state(now, mono=MONO):
    s = TelescopeState()
    s = fold(s, tcs("tcs.receiver.heartbeat", now), mono)
    s = fold(s, tcs("legacy.shutter.status", now, state="open"), mono)
    s = fold(s, tcs("legacy.weather.status", now, humidity=40, wind_speed=5, ambtemp=10, dewpoint=0), mono)
    s = fold(s, tcs("pas.Guider1.metrology_data", now - 10, fwhm=1.2, transparency=0.95, valid=True), mono)
    return s


def run(scheduler, now, state=None, mono=MONO, settings=SETTINGS, **flags):
    inputs = DecisionInputs(
        telescope=good_state(now) if state is None else state,
        allowed=flags.get("allowed", True),
        shot_running=flags.get("shot_running", False),
        failed_shot=flags.get("failed_shot", False),
        obsnum_ok=flags.get("obsnum_ok", True),
        obsnum_error=flags.get("obsnum_error"),
        programs_missing=flags.get("programs_missing"),
        stand_ins=flags.get("stand_ins"),
    )
    return decide(inputs, scheduler, now, mono, settings)


def test_all_clear_runs_the_scheduler_pick(scheduler, good_now):
    d = run(scheduler, good_now)
    assert d.verdict == "run" and d.blockers == ()
    assert d.shot == TARGET and d.track == WEST
    assert d.summary() == "run: DEX00001 on the WEST track"
    assert d.to_fields(good_now) == {
        "verdict": "run", "shotid": "DEX00001", "track": WEST, "blockers": [], "details": {}, "now": good_now,
    }


@pytest.mark.parametrize(
    "flags, blocker",
    [
        (dict(allowed=False), "not_allowed"),
        (dict(shot_running=True), "shot_running"),
        (dict(obsnum_ok=False), "obsnum_unavailable"),
        (dict(failed_shot=True), "failed_shot"),
        (dict(programs_missing="[run_shot] syscmd_command names 'syscmd', not found on PATH"),
         "programs_missing"),
    ],
)
def test_flags_alone(scheduler, good_now, flags, blocker):
    d = run(scheduler, good_now, **flags)
    assert d.verdict == "wait" and d.blockers == (blocker,)
    assert d.shot == TARGET  # the pick is reported while waiting
    assert blocker in d.details


def test_tcs_silent_on_the_reactor_clock(scheduler, good_now):
    state = good_state(good_now, mono=MONO)
    # TCS time stands still; only the reactor clock moves.
    assert run(scheduler, good_now, state, mono=MONO + 30).blockers == ()
    d = run(scheduler, good_now, state, mono=MONO + 31)
    assert d.blockers == ("tcs_silent",)
    assert d.details["tcs_silent"] == "no TCS heartbeat for 31 s > 30 s"
    no_heartbeat = replace(state, last_heartbeat=None)
    assert run(scheduler, good_now, no_heartbeat).blockers == ("tcs_silent",)


def test_weather_timeout_on_the_reactor_clock(scheduler, good_now):
    state = good_state(good_now)
    state = fold(state, tcs("tcs.receiver.heartbeat", good_now), MONO + 301)
    d = run(scheduler, good_now, state, mono=MONO + 301)
    assert d.blockers == ("weather",)
    assert "no weather report for 301 s" in d.details["weather"]
    assert run(scheduler, good_now, replace(state, weather=None), mono=MONO + 1).blockers == ("weather",)


@pytest.mark.parametrize("humidity, wind, text", [(85, 5, "humidity 85% > 80%"), (40, 20, "wind 20 m/s > 15 m/s")])
def test_weather_limits(scheduler, good_now, humidity, wind, text):
    state = fold(good_state(good_now), tcs("legacy.weather.status", good_now, humidity=humidity,
                                           wind_speed=wind, ambtemp=1, dewpoint=0), MONO)
    d = run(scheduler, good_now, state)
    assert d.blockers == ("weather",) and d.details["weather"] == text


def test_shutter(scheduler, good_now):
    closed = fold(good_state(good_now), tcs("legacy.shutter.status", good_now, state="closed"), MONO)
    assert run(scheduler, good_now, closed).blockers == ("shutter_closed",)
    unknown = replace(good_state(good_now), shutter=None)
    assert run(scheduler, good_now, unknown).blockers == ("shutter_closed",)
    lenient = replace(SETTINGS, require_shutter=False)
    assert run(scheduler, good_now, unknown, settings=lenient).blockers == ()
    assert run(scheduler, good_now, closed, settings=lenient).blockers == ("shutter_closed",)


def test_seeing_and_transparency_from_the_metrology_window(scheduler, good_now):
    state = good_state(good_now)
    for dt, fwhm, tr in ((-100, 2.6, 0.5), (-50, 2.2, 0.6), (-20, 2.4, 0.7)):
        state = fold(state, tcs("pas.Guider2.metrology_data", good_now + dt, fwhm=fwhm, transparency=tr, valid=True), MONO)
    # An invalid sample is ignored.
    state = fold(state, tcs("pas.Guider1.metrology_data", good_now, fwhm=9.0, transparency=0.0, valid=False), MONO)
    d = run(scheduler, good_now, state)
    assert d.blockers == ("bad_seeing", "low_transparency")
    assert d.details["bad_seeing"] == "FWHM 2.1 > 2.0"  # (1.2 + 2.6 + 2.2 + 2.4) / 4
    assert d.details["low_transparency"] == "transparency 0.69 < 0.70"
    assert d.summary().startswith("waiting: bad_seeing (FWHM 2.1 > 2.0), low_transparency (transparency 0.69")
    # Samples older than fwhm_window leave the mean.
    narrow = replace(SETTINGS, fwhm_window=15)  # only the good sample at -10 s
    assert run(scheduler, good_now, state, settings=narrow).blockers == ()
    # ... and samples from OCD's future (a replay that started over) too.
    assert state.samples(good_now - 60, 300) == 1
    assert state.mean_fwhm(good_now - 60, 300) == 2.6


def test_no_metrology_uses_the_defaults(scheduler, good_now):
    state = replace(good_state(good_now), metrology=())
    assert run(scheduler, good_now, state).blockers == ()
    strict = replace(SETTINGS, default_fwhm=2.5, default_transparency=0.5)
    d = run(scheduler, good_now, state, settings=strict)
    assert d.blockers == ("bad_seeing", "low_transparency")
    assert "no metrology: default" in d.details["bad_seeing"]


def test_daylight_now_and_before_the_shot_would_end(scheduler):
    noon = Time("2018-05-15T18:00:00").unix
    d = run(scheduler, noon)
    assert "daylight" in d.blockers
    # Find a morning minute that is dark now but not for the whole shot.
    t = Time("2018-05-15T09:00:00").unix
    while scheduler.highest_sun(t, 0) < SETTINGS.max_sun_alt - 1.0:
        t += 60
    assert scheduler.highest_sun(t, 0) < SETTINGS.max_sun_alt
    assert "daylight" in run(scheduler, t).blockers
    assert "daylight" not in run(scheduler, t, settings=replace(SETTINGS, exptimes=(1, 1, 1), overhead=0)).blockers


def test_no_target(scheduler, good_now):
    d = run(scheduler, good_now, settings=replace(SETTINGS, half_width=0.5))
    assert d.blockers == ("no_target",) and d.shot is None
    empty = Scheduler([], SETTINGS)
    d = run(empty, good_now)
    assert d.blockers == ("no_target",) and d.details["no_target"] == "no shots in the list"
    scheduler.configure(SETTINGS)


def test_everything_at_once_in_table_order(scheduler):
    noon = Time("2018-05-15T18:00:00").unix
    state = TelescopeState()
    state = fold(state, tcs("legacy.shutter.status", noon, state="closed"), MONO)
    for dt in (-30, -10):
        state = fold(state, tcs("pas.Guider1.metrology_data", noon + dt, fwhm=3, transparency=0.1, valid=True), MONO)
    d = run(scheduler, noon, state, allowed=False, shot_running=True, failed_shot=True, obsnum_ok=False,
            programs_missing="syscmd not found", settings=replace(SETTINGS, half_width=0.1))
    assert d.blockers == BLOCKERS
    assert list(d.to_fields(noon)["details"]) == list(BLOCKERS)
    scheduler.configure(SETTINGS)


def test_obsnum_detail_is_the_databases_own_reason(scheduler, good_now):
    reason = "MySQL server 127.0.0.1:3306, database nosuch, user root: Unknown database 'nosuch'"
    d = run(scheduler, good_now, obsnum_ok=False, obsnum_error=reason)
    assert d.details["obsnum_unavailable"] == reason


def test_stand_ins_are_said_in_every_decision(scheduler, good_now):
    note = "STAND-IN programs, no data is taken: [run_shot] syscmd_command runs python -m ocd.sim.syscmd"
    running = run(scheduler, good_now, stand_ins=note)
    assert running.verdict == "run"  # a stand-in is loud, not a blocker
    assert running.to_fields(good_now)["details"] == {"stand_ins": note}
    waiting = run(scheduler, good_now, allowed=False, stand_ins=note)
    assert waiting.to_fields(good_now)["details"]["stand_ins"] == note


def test_settings_from_the_master_configuration():
    settings = DecisionSettings.from_config(Config.load())
    assert settings == DecisionSettings()
    assert settings.duration == 1380.0


def test_metrology_is_windowed_on_the_tcs_time_when_the_clock_is_pinned():
    """mock_time (or the system clock) must not leave live samples outside the window."""
    from ocd.core.decide import DecisionInputs, DecisionSettings, decide
    from ocd.core.events import UrlKind, event_from_payload, make_payload
    from ocd.core.scheduler import Scheduler
    from ocd.core.state import TelescopeState, fold

    pinned = 1740031200.0
    live = pinned + 3600.0  # the TCS an hour after the pinned clock
    state = TelescopeState()
    for i in range(5):
        payload = make_payload("pas.Guider1.metrology_data",
                               dict(fwhm=3.0, transparency=0.3, valid=True), live + i, live + i)
        event = event_from_payload("pas.Guider1.metrology_data", payload, UrlKind.TCS)
        state = fold(state, event, 100.0 + i)
    settings = DecisionSettings()
    decision = decide(DecisionInputs(state, allowed=True), Scheduler([], settings), pinned,
                      105.0, settings)
    assert "bad_seeing" in decision.blockers and "low_transparency" in decision.blockers


@pytest.mark.parametrize("value, op, limit, unit, places, text", [
    (0.69, "<", 0.7, "", 2, "0.69 < 0.70"),
    (0.6996, "<", 0.7, "", 2, "0.6996 < 0.7000"),
    (92.0, ">", 90, "%", 0, "92% > 90%"),
    (90.3, ">", 90, "%", 0, "90.3% > 90.0%"),
    (30.4, ">", 30, " s", 0, "30.4 s > 30.0 s"),
])
def test_numbers_are_shown_so_that_the_comparison_is_true(value, op, limit, unit, places, text):
    from ocd.core.precision import comparison

    assert comparison(value, op, limit, unit, places) == text
