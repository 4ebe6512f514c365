"""State machines and counters: pure, no reactor."""

from __future__ import annotations

import pytest

from ocd.core.counters import Counters
from ocd.core.machines import Change, InvalidTransition, StateMachine, arming_machine, shot_machine


def test_arming_starts_not_allowed_and_changes_are_values():
    machine = arming_machine()
    assert machine.name == "hetdex_allowed" and machine.state == "not_allowed"
    change = machine.fire("allow", "by hand")
    assert change == Change("hetdex_allowed", "allow", "not_allowed", "allowed", "by hand")
    assert change.fields()["new_state"] == "allowed"
    assert machine.fire("self_disarm", "shot failed").new_state == "not_allowed"


def test_invalid_transition_raises_and_keeps_the_state():
    machine = arming_machine()
    with pytest.raises(InvalidTransition, match="cannot disallow from 'not_allowed'"):
        machine.fire("disallow")
    with pytest.raises(InvalidTransition, match="no transition 'fly'"):
        machine.fire("fly")
    assert machine.state == "not_allowed"
    assert not machine.can_fire("disallow") and machine.can_fire("allow")


def test_shot_machine():
    machine = shot_machine()
    assert machine.name == "run_shot" and machine.state == "idle"
    machine.fire("start")
    assert machine.fire("lost", "no FINISH").old_state == "running"
    assert machine.state == "idle"


def test_machine_definition_is_checked():
    with pytest.raises(ValueError, match="unknown states"):
        StateMachine("m", ("a",), {"go": (("a",), "b")}, "a")
    with pytest.raises(ValueError, match="initial state"):
        StateMachine("m", ("a",), {}, "z")


def test_counters():
    counters = Counters()
    counters.increment("malformed.bad_json")
    counters.increment("malformed.bad_json", 2)
    counters.increment("topic.tcs.receiver.heartbeat")
    assert counters.get("malformed.bad_json") == 3 and counters.get("nothing") == 0
    assert counters.total("malformed.") == 3
    snapshot = counters.snapshot()
    counters.increment("malformed.bad_json")
    assert snapshot == {"malformed.bad_json": 3, "topic.tcs.receiver.heartbeat": 1}


def test_main_loop_clock_and_jump_back():
    from twisted.internet.task import Clock

    from ocd.config import Config
    from ocd.core.events import UrlKind, make_event
    from ocd.services.main_loop import MainLoop

    clock = Clock()
    clock.advance(500.0)
    loop = MainLoop(Config.load(None), clock)
    assert loop.now() == 500.0  # tcs clock before the first event: the machine's
    seen = []
    loop.on_time_jump_back = lambda old, new: seen.append((old, new))

    def tcs(t):
        e = make_event("tcs.receiver.heartbeat", {}, t, t)
        return type(e)(e.topic, e.payload, e.data_time, e.wire_time, UrlKind.TCS)

    loop.handle_event(tcs(1000.0))
    loop.handle_event(tcs(990.0))  # a late one: the clock does not go back
    assert loop.now() == 1000.0 and not seen
    loop.handle_event(tcs(100.0))  # a replay starting over
    assert loop.now() == 100.0 and seen == [(1000.0, 100.0)]
    pinned = MainLoop(Config.load(None, [("dates", "mock_time", "2018-05-15T12:00:00")]), clock)
    assert pinned.now() == 1526385600.0
    system = MainLoop(Config.load(None, [("dates", "clock", "system")]), clock)
    system.handle_event(tcs(1000.0))
    assert system.now() == 500.0
