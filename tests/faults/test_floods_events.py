"""Floods and garbage on the event URLs (issue 12, section 4): bounded and visible.

Each scenario hands the main loop what a hostile or broken peer sends, through
the same path as the subscriber (``parse_frames`` then ``handle_event`` or
``on_malformed``), on a Clock; the last one goes through real sockets.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from ocd.config import Config
from ocd.core.counters import MAX_NAMES
from ocd.core.events import MalformedEvent, UrlKind, make_payload, parse_frames
from ocd.services.main_loop import MainLoop

NIGHT = 1740031200.0  # 2025-02-20 06:00 UTC


@pytest.fixture
def loop():
    clock = Clock()
    clock.advance(NIGHT)
    main = MainLoop(Config.load(None, []), clock)
    return main


def frames(topic: str, t: float = NIGHT, **fields) -> list[bytes]:
    return [topic.encode(), json.dumps(make_payload(topic, fields, t, t)).encode()]


def feed(loop: MainLoop, message: list[bytes], kind: UrlKind = UrlKind.TCS) -> None:
    """What the subscriber does with one message."""
    try:
        event = parse_frames(message, kind, "tcp://peer")
    except MalformedEvent as exc:
        loop.on_malformed(exc, "tcp://peer")
    else:
        loop.handle_event(event)


def warnings(logged: list[dict], text: str) -> list[dict]:
    return [e for e in logged if e.get("log_level") in (LogLevel.warn, LogLevel.error,
                                                         LogLevel.critical)
            and text in e.get("log_format", "")]


def test_unique_topics_keep_a_bounded_number_of_counters(loop):
    n = MAX_NAMES * 8
    for i in range(n):
        feed(loop, frames(f"tcs.flood.k{i}"))
    snapshot = loop.counters.snapshot()
    topics = {k: v for k, v in snapshot.items() if k.startswith("topic.")}
    assert len(topics) == MAX_NAMES + 1  # MAX_NAMES names, then topic.other
    assert topics["topic.other"] == n - MAX_NAMES
    assert sum(topics.values()) == n == loop.counters.get("received.tcs")
    assert len(loop._topic_names) <= MAX_NAMES


def test_unique_unknown_control_topics_write_a_bounded_number_of_warnings(loop, logged):
    n = MAX_NAMES * 8
    for i in range(n):
        feed(loop, frames(f"ocd.nosuch.t{i}", id="x"), UrlKind.CONFIG)
    assert loop.counters.get("dropped.config") == n
    lines = warnings(logged, "dropped {topic}")
    assert 1 <= len(lines) <= MAX_NAMES + 1
    assert len(loop._warnings) <= MAX_NAMES + 1


def test_deeply_nested_payload_is_malformed_not_a_traceback(loop, logged):
    deep = "[" * 100_000 + "]" * 100_000  # RecursionError inside json.loads
    nested = "[" * 200 + "]" * 200  # parses, but deeper than any event needs
    for inner in (deep, nested):
        payload = '{"a":%s,"__system":"tcs","__source":"receiver","__key":"heartbeat",' \
                  '"__data_time":%r,"__wire_time":%r,"__data":false}' % (inner, NIGHT, NIGHT)
        for _ in range(50):
            feed(loop, [b"tcs.receiver.heartbeat", payload.encode()])
    assert loop.counters.get("malformed.too_deep") == 100
    assert [e for e in logged if e.get("log_level") == LogLevel.critical] == []
    assert len(warnings(logged, "malformed event")) == 1  # rate-limited


def test_brackets_inside_strings_are_not_nesting(loop):
    feed(loop, frames("tcs.receiver.heartbeat", NIGHT, note="[{" * 500 + '\\"' + "[" * 50,
                      ok=[[1, {"a": [2]}]]))
    # The depth is read from the frame's bytes: characters beyond ASCII around
    # the brackets (in keys and values) are text like any other.
    fields = {"n\u00e9[": "\u00fc[{" * 500 + "\u2603", "ok": ["\u00e9", {"\u00fc": ["[" * 40]}]}
    payload = make_payload("tcs.receiver.heartbeat", fields, NIGHT, NIGHT)
    feed(loop, [b"tcs.receiver.heartbeat", json.dumps(payload, ensure_ascii=False).encode()])
    assert loop.counters.total("malformed.") == 0
    assert loop.counters.get("topic.tcs.receiver.heartbeat") == 2


def test_a_list_as_shotid_is_malformed_and_changes_nothing(loop, logged):
    for _ in range(30):
        feed(loop, frames("ocd.run_shot.run", shotid=["a", "b"], obs_number=7, exec_status=0,
                          exptimes=[1, 1, 1]), UrlKind.RUN_SHOT)
        feed(loop, frames("ocd.run_shot.run", shotid={"x": 1}, obs_number=[7], exec_status=1),
             UrlKind.RUN_SHOT)
    assert loop.counters.get("malformed.bad_field") == 60
    assert loop.shot.state == "idle"
    assert [e for e in logged if e.get("log_level") == LogLevel.critical] == []
    assert len(warnings(logged, "malformed event")) == 1


def test_a_handler_that_raises_counts_a_malformed_event_at_a_bounded_rate(loop, logged):
    def broken(event):
        raise TypeError("unhashable type: 'list'")

    loop.on_telescope_event = broken
    for i in range(100):
        feed(loop, frames("tcs.receiver.heartbeat", NIGHT + i))
    assert loop.counters.get("malformed.handler_error") == 100
    assert [e for e in logged if e.get("log_level") == LogLevel.critical] == []
    assert len(warnings(logged, "handling it raised")) == 1


@pytest.mark.parametrize("bad", [1e308, "9999-12-31T23:59:59", 0, -5, NIGHT + 2 * 86400,
                                 NIGHT - 2 * 86400])
def test_a_tcs_time_far_from_the_machine_clock_is_malformed(loop, bad):
    feed(loop, frames("tcs.receiver.heartbeat", NIGHT))
    assert loop.now() == NIGHT
    topic = "tcs.receiver.heartbeat"
    payload = make_payload(topic, {}, NIGHT, NIGHT)
    payload["__data_time"] = bad
    feed(loop, [topic.encode(), json.dumps(payload).encode()])
    assert loop.counters.get("malformed.far_time") == 1
    assert loop.now() == NIGHT  # the clock did not follow it
    feed(loop, frames(topic, NIGHT + 1))
    assert loop.now() == NIGHT + 1


def test_a_replay_may_be_old_but_not_in_the_future(loop):
    old = NIGHT - 5 * 365 * 86400
    feed(loop, frames("tcs.receiver.heartbeat", old), UrlKind.REPLAY)
    assert loop.now() == old
    for bad in (1e308, 0, -1.0):
        feed(loop, frames("tcs.receiver.heartbeat", bad), UrlKind.REPLAY)
    assert loop.counters.get("malformed.far_time") == 3
    assert loop.now() == old


def test_time_check_can_be_switched_off():
    clock = Clock()
    clock.advance(1000)
    loop = MainLoop(Config.load(None, [("dates", "max_time_offset", "0")]), clock)
    feed(loop, frames("tcs.receiver.heartbeat", NIGHT))
    assert loop.now() == NIGHT


def test_heartbeat_gaps_are_counted_and_logged_once_per_stretch(loop, logged):
    t = NIGHT - 3600
    beats = []
    for second in range(600):  # 10 minutes at 1 Hz, with holes in minutes 2 to 4
        if 120 <= second < 300 and second % 10 != 0:
            continue  # 9 of every 10 lost
        beats.append(t + second)
    for beat in beats:
        feed(loop, frames("tcs.receiver.heartbeat", beat))
    assert loop.counters.get("heartbeat.missed") == 600 - len(beats) == 162
    assert loop.counters.get("heartbeat.gaps") == 18
    started = [e for e in logged if e.get("ocd_event") == "heartbeat_gap"]
    ended = [e for e in logged if e.get("ocd_event") == "heartbeat_gap_end"]
    assert len(started) == 1 and len(ended) == 1
    assert ended[0]["missed"] == 162 and ended[0]["gaps"] == 18
