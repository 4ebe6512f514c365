"""Folding TCS events into TelescopeState (events.md section 2)."""

from __future__ import annotations

from ocd.core.events import UrlKind, event_from_payload, make_event, make_payload
from ocd.core.state import METROLOGY_KEEP, TelescopeState, fold, reset_windows


def tcs(topic, data_time, **fields):
    return event_from_payload(topic, make_payload(topic, fields, data_time, data_time), UrlKind.TCS)


def test_heartbeat_stamps_reactor_time_and_tcs_time():
    s = fold(TelescopeState(), tcs("tcs.receiver.heartbeat", 500.0), received=7.0)
    assert s.last_heartbeat == 7.0 and s.tcs_time == 500.0
    s = fold(s, tcs("tcs.receiver.heartbeat", 499.0), received=8.0)
    assert s.last_heartbeat == 8.0 and s.tcs_time == 500.0  # TCS time never goes back here


def test_pointing_weather_shutter_with_replayed_strings():
    s = TelescopeState()
    s = fold(s, tcs("tcs.root.ra_dec", 1.0, ra="12.5", dec="56.1", az="60", dir="east", tracking="True"), 1.0)
    assert (s.pointing.ra, s.pointing.dec, s.pointing.az, s.pointing.dir, s.pointing.tracking) == (
        12.5, 56.1, 60.0, "EAST", True)
    s = fold(s, tcs("legacy.weather.status", 2.0, humidity="55", wind_speed=3.5, ambtemp=10, dewpoint=-1), 9.0)
    assert (s.weather.humidity, s.weather.wind_speed, s.weather.received, s.weather.time) == (55.0, 3.5, 9.0, 2.0)
    s = fold(s, tcs("legacy.shutter.status", 3.0, state="OPEN"), 10.0)
    assert s.shutter == "open"
    s = fold(s, tcs("legacy.shutter.status", 4.0, state="moving"), 10.0)
    assert s.shutter is None  # unknown


def test_other_topics_leave_the_state_alone():
    s = fold(TelescopeState(), tcs("tcs.receiver.heartbeat", 5.0), 1.0)
    other = make_event("ocd.run_shot.run", {"exec_status": 0}, 6.0, 6.0)
    assert fold(s, other, 2.0) is s
    assert fold(s, tcs("tcs.something.else", 7.0, x=1), 2.0) is s


def test_metrology_window_valid_only_and_pruned():
    s = TelescopeState()
    for t, fwhm, valid in ((100.0, 1.0, True), (110.0, 3.0, True), (115.0, 50.0, False), (120.0, 2.0, True)):
        s = fold(s, tcs("pas.Guider1.metrology_data", t, fwhm=fwhm, transparency=0.9, valid=valid), 0.0)
    assert len(s.metrology) == 3
    assert s.mean_fwhm(120.0, 30.0) == 2.0
    assert s.mean_fwhm(120.0, 10.0) == 2.5
    assert s.mean_transparency(120.0, 10.0) == 0.9
    assert s.mean_fwhm(1000.0, 60.0) is None
    # Samples older than METROLOGY_KEEP behind the newest are dropped.
    s = fold(s, tcs("pas.Guider2.metrology_data", 120.0 + METROLOGY_KEEP + 5, fwhm=1.5, transparency=1, valid=True), 0.0)
    assert [m.time for m in s.metrology] == [120.0 + METROLOGY_KEEP + 5]
    assert s.metrology[0].source == "Guider2"


def test_out_of_order_samples_stay_sorted():
    s = TelescopeState()
    for t in (10.0, 30.0, 20.0):
        s = fold(s, tcs("pas.Guider1.metrology_data", t, fwhm=1, transparency=1, valid=True), 0.0)
    assert [m.time for m in s.metrology] == [10.0, 20.0, 30.0]


def test_reset_windows_after_a_jump_back():
    s = fold(TelescopeState(), tcs("tcs.receiver.heartbeat", 5000.0), 3.0)
    s = fold(s, tcs("pas.Guider1.metrology_data", 5000.0, fwhm=3, transparency=0.2, valid=True), 3.0)
    r = reset_windows(s)
    assert r.metrology == () and r.tcs_time is None
    assert r.last_heartbeat == 3.0  # reactor-clock stamps survive
