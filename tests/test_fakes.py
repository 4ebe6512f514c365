"""The fakes of tests/fakes.py against the real interfaces they stand in for.

A scenario on a fake proves something only while the fake offers what the
real class offers, with the same parameters: these checks break first when
one of them changes.
"""

from __future__ import annotations

import inspect

import pytest
from twisted.internet.task import Clock

from fakes import HANG, FakeProcess, FakeProcessRunner, MemoryBus, MemoryPublisher, \
    MemorySubscriber, Outcome, fails
from ocd.core.events import UrlKind, make_event
from ocd.protocols.process import ProcessFailed, ProcessRunner, RunningProcess
from ocd.protocols.zmq import Bus, EventPublisher, EventSubscriber

#: (fake, real, the methods OCD calls on it)
SEAMS = [
    (FakeProcessRunner, ProcessRunner, ["start", "run", "stop_all"]),
    (FakeProcess, RunningProcess, ["terminate"]),
    (MemoryBus, Bus, ["open", "close", "publisher", "subscriber"]),
    (MemoryPublisher, EventPublisher, ["publish", "publish_raw", "close"]),
    (MemorySubscriber, EventSubscriber, ["subscribe", "close"]),
]


def parameters(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("fake, real, methods", SEAMS, ids=lambda x: getattr(x, "__name__", ""))
def test_fake_methods_have_the_real_signatures(fake, real, methods):
    for name in methods:
        assert parameters(getattr(fake, name)) == parameters(getattr(real, name)), name


def test_fake_process_has_the_attributes_the_shot_runner_reads():
    clock = Clock()
    child = FakeProcessRunner(clock).start(["x"], name="x", timeout=None)
    real = RunningProcess("x", ["x"], None, 1.0, clock)
    for attribute in ("name", "argv", "pid", "result", "ended", "timeout", "kill_grace"):
        assert hasattr(child, attribute) and hasattr(real, attribute), attribute


def test_scripted_outcomes_on_the_clock():
    clock = Clock()
    runner = FakeProcessRunner(clock, script={"slow": Outcome(after=10), "bad": fails(2),
                                              "stuck": HANG})
    seen: list = []
    runner.run(["a"], name="slow one", timeout=None).addCallback(seen.append)
    runner.run(["b"], name="bad", timeout=None).addErrback(lambda f: seen.append(f.value))
    stuck = runner.start(["c"], name="stuck", timeout=30)
    stuck.result.addErrback(seen.append)
    clock.advance(0)
    assert isinstance(seen[0], ProcessFailed) and seen[0].result.exit_code == 2
    clock.advance(10)
    assert seen[1].ok and seen[1].duration == 10
    assert stuck in runner.running
    clock.advance(20)
    assert not runner.running and runner.ended[-1].timed_out
    assert seen[2].check(ProcessFailed)
    stopped = runner.start(["d"], name="stuck", timeout=None)
    stopped.result.addErrback(seen.append)
    runner.stop_all()
    assert runner.ended[-1].stopped and seen[3].value.result.stopped


def test_memory_bus_delivers_on_a_later_turn_by_url_and_prefix():
    clock = Clock()
    ours = MemoryBus(clock)
    theirs = MemoryBus(clock, ours.network)
    ours.open()
    theirs.open()
    got: list = []
    publisher = ours.publisher(["tcp://a:1"])
    theirs.subscriber(["tcp://a:1"], UrlKind.TCS, ["tcs.receiver."], got.append)
    theirs.subscriber(["tcp://b:2"], UrlKind.TCS, [""], got.append)
    publisher.publish(make_event("tcs.receiver.heartbeat", {}, 1.0, 1.0))
    publisher.publish(make_event("tcs.other.thing", {}, 1.0, 1.0))
    assert got == []  # not within the sender's turn
    clock.advance(0)
    assert [e.topic for e in got] == ["tcs.receiver.heartbeat"]
    assert got[0].url_kind is UrlKind.TCS and got[0].url == "tcp://a:1"
    with pytest.raises(Exception, match="already in use"):
        theirs.publisher(["tcp://a:1"])
    ours.close()  # closes only our sockets
    assert theirs.network.subscribers
