"""The replay schedule, driven by twisted.internet.task.Clock (no real sleeps)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from ocd.services.replay import ReplayEvent
from ocd.services.replay_schedule import Replayer, ReplayState


def events(times):
    return [ReplayEvent(i + 1, "a.b.c", {"i": i, "__wire_time": t}, t) for i, t in enumerate(times)]


class Recorder:
    """A ``send`` that notes the clock's time of each message."""

    def __init__(self, clock: Clock, delay: float = 0.0):
        self.clock, self.delay, self.sent = clock, delay, []

    def __call__(self, frames):
        self.sent.append((self.clock.seconds(), json.loads(frames[1])["i"]))
        if self.delay:
            self.clock.advance(self.delay)  # a slow send: time passes while sending


def test_schedule_follows_speedup_exactly():
    clock = Clock()
    clock.advance(1000.0)
    send = Recorder(clock)
    times = [50.0, 50.5, 52.0, 60.0, 60.0, 110.0]
    replayer = Replayer(lambda: iter(events(times)), send, clock, speedup=4.0)
    done = replayer.start()
    for _ in range(200):
        clock.advance(0.125)
    assert [t for t, _ in send.sent] == [1000.0 + (t - 50.0) / 4.0 for t in times]
    assert [i for _, i in send.sent] == list(range(len(times)))
    summary = done.result
    assert summary.sent == 6 and summary.state is ReplayState.FINISHED
    assert summary.wall_time == pytest.approx(15.0) and summary.worst_lateness == 0.0


def test_schedule_is_absolute_errors_do_not_add_up():
    """Each send takes 0.3 s of a 1 s step: every event still leaves on its own slot."""
    clock = Clock()
    send = Recorder(clock, delay=0.3)
    replayer = Replayer(lambda: iter(events([float(i) for i in range(20)])), send, clock, speedup=1.0,
                        keep_lateness=True)
    replayer.start()
    clock.pump([0.05] * 600)
    assert [t for t, _ in send.sent] == pytest.approx([float(i) for i in range(20)], abs=0.051)
    assert max(replayer.lateness) < 0.051  # no drift: lateness stays one tick at most
    # A send that overruns the next slot makes that event late, not everything after.
    clock2 = Clock()
    send2 = Recorder(clock2, delay=2.5)
    late = Replayer(lambda: iter(events([0.0, 1.0, 2.0, 10.0, 11.0])), send2, clock2, keep_lateness=True)
    late.start()
    clock2.pump([0.5] * 40)
    assert [t for t, _ in send2.sent] == [0.0, 2.5, 5.0, 10.0, 12.5]
    assert late.lateness == [0.0, 1.5, 3.0, 0.0, 1.5]
    assert late.worst_lateness == 3.0


def test_unbounded_speedup_sends_in_batches_without_waiting():
    clock = Clock()
    send = Recorder(clock)
    replayer = Replayer(lambda: iter(events([float(i) for i in range(1200)])), send, clock,
                        speedup=float("inf"), batch=500)
    done = replayer.start()
    assert len(send.sent) == 500  # then yields to the reactor
    clock.advance(0)
    clock.advance(0)
    assert len(send.sent) == 1200 and done.called


def test_untimed_events_go_first_then_the_schedule_starts():
    clock = Clock()
    send = Recorder(clock)
    stream = [ReplayEvent(1, "a.b.c", {"i": 0}, None), ReplayEvent(2, "a.b.c", {"i": 1}, None),
              *events([100.0, 102.0])]
    stream[2].payload["i"], stream[3].payload["i"] = 2, 3
    Replayer(lambda: iter(stream), send, clock, speedup=2.0).start()
    clock.pump([0.25] * 8)
    assert send.sent == [(0.0, 0), (0.0, 1), (0.0, 2), (1.0, 3)]


def test_times_going_back_never_send_before_the_previous():
    clock = Clock()
    send = Recorder(clock)
    Replayer(lambda: iter(events([0.0, 4.0, 2.0, 6.0])), send, clock).start()
    clock.pump([1.0] * 8)
    assert [t for t, _ in send.sent] == [0.0, 4.0, 4.0, 6.0]


def test_serve_forever_starts_over_and_stop_gives_the_summary():
    clock = Clock()
    send = Recorder(clock)
    passes = []

    def source():
        passes.append(clock.seconds())
        return iter(events([0.0, 1.0, 2.0]))

    replayer = Replayer(source, send, clock, speedup=1.0, serve_forever=True)
    done = replayer.start()
    clock.pump([0.5] * 13)  # 6.5 s: passes start at 0, 2 (end of pass 1) and 4
    assert passes == [0.0, 2.0, 4.0, 6.0]
    assert [t for t, _ in send.sent][:7] == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0]
    assert not done.called
    replayer.stop()
    summary = done.result
    assert summary.state is ReplayState.STOPPED and summary.sent == len(send.sent)
    assert summary.passes == 4 and summary.wall_time == 6.5
    assert "replay stopped" in summary.describe()
    clock.pump([1.0] * 5)
    assert len(send.sent) == summary.sent  # nothing after the stop
    assert not clock.getDelayedCalls()


def test_send_errors_are_counted_and_the_replay_goes_on():
    clock = Clock()
    calls = []

    def send(frames):
        calls.append(frames)
        if len(calls) == 2:
            raise RuntimeError("socket full")

    replayer = Replayer(lambda: iter(events([0.0, 0.0, 0.0])), send, clock)
    done = replayer.start()
    assert done.result.sent == 2 and done.result.failed == 1


def test_skipped_counts_add_over_passes():
    clock = Clock()
    state = {"skipped": 0}

    def source():
        state["skipped"] = 0

        def gen():
            yield from events([0.0, 1.0])
            state["skipped"] = 3

        return gen()

    replayer = Replayer(source, lambda f: None, clock, serve_forever=True, skipped=lambda: state["skipped"])
    done = replayer.start()
    clock.pump([0.5] * 5)  # passes start at 0, 1 and 2
    replayer.stop()
    assert done.result.passes == 3 and done.result.skipped == 3 + 3 + 0


def test_bad_speedup_is_refused():
    with pytest.raises(ValueError):
        Replayer(lambda: iter([]), lambda f: None, Clock(), speedup=0)


def test_schedule_starts_when_the_first_event_is_read():
    """SQLite sorts before the first row: that wait must not make every event late."""
    clock = Clock()
    send = Recorder(clock)

    def slow_source():
        clock.advance(3.0)  # the first fetch takes 3 s
        yield from events([10.0, 11.0, 12.0])

    replayer = Replayer(slow_source, send, clock, keep_lateness=True)
    replayer.start()
    clock.pump([0.5] * 10)
    assert [t for t, _ in send.sent] == [3.0, 4.0, 5.0]
    assert replayer.lateness == [0.0, 0.0, 0.0]
