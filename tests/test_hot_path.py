"""The fast paths of the event hot path build the same values as the plain ones.

``Event._trusted``, ``state._build`` and ``state._evolve`` bypass the
frozen dataclass ``__init__`` for speed (bench/ingest.py); the metrology
window is pruned and queried by bisection. These tests hold them to the
straightforward code they replace.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from ocd.core.events import Event, MalformedEvent, UrlKind, event_from_payload, make_payload, parse_frames
from ocd.core.state import METROLOGY_KEEP, Metrology, Pointing, TelescopeState, fold


def frames(topic: str, **fields):
    return [topic.encode(), json.dumps(make_payload(topic, fields, 100.5, 101.0)).encode()]


def test_parsed_event_equals_constructed_one():
    event = parse_frames(frames("tcs.root.ra_dec", ra=1, dec="2.5", az=3.0, dir="EAST",
                                tracking="true"), UrlKind.TCS, "tcp://a")
    assert type(event) is Event
    assert event == Event(event.topic, dict(event.payload), 100.5, 101.0, UrlKind.TCS, "tcp://b")
    assert event.url == "tcp://a"
    assert (event["ra"], event["dec"], event["tracking"]) == (1, 2.5, True)
    with pytest.raises(TypeError):
        event.payload["ra"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.topic = "x"  # type: ignore[misc]


def test_event_from_payload_leaves_the_callers_dict_alone():
    payload = make_payload("tcs.root.ra_dec", {"ra": "1", "dec": 2, "az": 3, "dir": "E",
                                               "tracking": True}, 1.0, 1.0)
    event = event_from_payload("tcs.root.ra_dec", payload, UrlKind.TCS)
    assert payload["ra"] == "1" and event["ra"] == 1.0
    payload["dec"] = 99
    assert event["dec"] == 2


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, None, "x"])
def test_fast_path_still_rejects_bad_numbers(value):
    payload = make_payload("tcs.root.ra_dec", {"ra": value, "dec": 2, "az": 3, "dir": "E",
                                               "tracking": True}, 1.0, 1.0)
    with pytest.raises(MalformedEvent) as info:
        event_from_payload("tcs.root.ra_dec", payload, UrlKind.TCS)
    assert info.value.kind == "bad_field"


def test_fast_fold_builds_the_same_state():
    event = event_from_payload("tcs.root.ra_dec", make_payload(
        "tcs.root.ra_dec", {"ra": 1, "dec": 2.0, "az": 3, "dir": "east", "tracking": True},
        7.0, 7.0), UrlKind.TCS)
    state = fold(TelescopeState(last_heartbeat=3.0), event, 9.0)
    expected = replace(TelescopeState(last_heartbeat=3.0), tcs_time=7.0,
                       pointing=Pointing(1.0, 2.0, 3.0, "EAST", True, 7.0))
    assert state == expected and hash(state.pointing) == hash(expected.pointing)
    assert type(state) is TelescopeState and type(state.pointing) is Pointing
    with pytest.raises(AttributeError):
        state.pointing.ra = 5.0  # type: ignore[misc]


def test_metrology_window_matches_a_plain_filter():
    rng = random.Random(3)
    state = TelescopeState()
    reference: list[Metrology] = []
    newest = None
    for i in range(400):
        t = i * 20.0 + rng.uniform(-300, 300)  # out of order now and then
        newest = t if newest is None else max(newest, t)
        fwhm = rng.uniform(0.5, 3)
        state = fold(state, event_from_payload("pas.Guider1.metrology_data", make_payload(
            "pas.Guider1.metrology_data", {"fwhm": fwhm, "transparency": 0.9, "valid": True},
            t, t), UrlKind.TCS), 0.0)
        reference = [m for m in reference if m.time >= newest - METROLOGY_KEEP]
        reference.append(Metrology(t, fwhm, 0.9, "Guider1"))
        reference.sort(key=lambda m: m.time)
        assert state.metrology == tuple(reference)
    for now, window in ((newest, 300.0), (newest - 500, 1000.0), (newest + 1e4, 10.0)):
        inside = [m.fwhm for m in reference if now - window <= m.time <= now]
        assert state.samples(now, window) == len(inside)
        mean = state.mean_fwhm(now, window)
        assert mean == (pytest.approx(sum(inside) / len(inside)) if inside else None)


def test_a_huge_integer_is_a_malformed_event_not_a_crash():
    import pytest

    import json

    from ocd.core.events import MalformedEvent, UrlKind, event_from_payload, parse_frames

    huge = "1" + "0" * 400
    payload = ('{"__system":"legacy","__source":"weather","__key":"status","__data_time":1.0,'
               '"__wire_time":1.0,"__data":false,"humidity":' + huge +
               ',"wind_speed":1,"ambtemp":1,"dewpoint":1}')
    # On the wire, the decoder (orjson) refuses an integer beyond 64 bits: bad JSON.
    with pytest.raises(MalformedEvent) as info:
        parse_frames([b"legacy.weather.status", payload.encode()], UrlKind.TCS)
    assert info.value.kind == "bad_json"
    # A payload decoded elsewhere (the replay reader) still meets the field checks.
    decoded = json.loads(payload)
    with pytest.raises(MalformedEvent) as info:
        event_from_payload("legacy.weather.status", decoded, UrlKind.TCS)
    assert info.value.kind == "bad_field"
    timed = json.loads(payload.replace('"__data_time":1.0', '"__data_time":' + huge))
    with pytest.raises(MalformedEvent) as info:
        event_from_payload("legacy.weather.status", timed, UrlKind.TCS)
    assert info.value.kind == "bad_time"
