"""Benchmark of ``ocd db_replay`` (issue 4).

    .venv/bin/python bench/replay.py            # about 1.5 min (first run also generates a 1M night)
    .venv/bin/python bench/replay.py --quick    # seconds: every part runs, on a small night (CI)

(a) lateness of each send against its schedule at speedup 1, 10 and 100
    (p50, p99, max; target p99 < 5 ms, no drift: the last tenth is no later
    than the first tenth), on slices of a generated night;
(b) the highest rate (events/s at an unbounded speedup, sort by __wire_time,
    conversion on) against a raw pyzmq loop publishing the same rows read
    with the sqlite3 module, same run, as a ratio (target >= 0.7);
(c) peak memory (VmHWM) of a replay of 1 million events against one of
    10 thousand, each in its own process (target: less than 20 MB apart).

Sample nights come from the cache (``ocd.sim.night.cached_night``). The PUB
sockets have a connected SUB draining them in a thread.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zmq  # noqa: E402

from ocd.sim.ports import free_url  # noqa: E402
from ocd.services.replay import ReplayDatabase  # noqa: E402
from ocd.services.replay_schedule import Replayer  # noqa: E402
from ocd.sim.night import cached_night  # noqa: E402

BIG = dict(seed=0, heartbeat_hz=12.5, pointing_hz=12.5)  # about a million events


class Drain:
    """A SUB in a thread that reads (and counts) what a PUB sends."""

    def __init__(self, context: zmq.Context, url: str):
        self.count = 0
        self._stop = threading.Event()
        self._socket = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(url)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # slow joiner

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(50):
                while True:
                    try:
                        self._socket.recv_multipart(zmq.NOBLOCK)
                        self.count += 1
                    except zmq.Again:
                        break

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close(linger=0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_replay(reactor, source, speedup: float, keep_lateness: bool = True):
    """A Deferred firing (replayer, summary, publisher, drain, wall seconds)."""
    from ocd.protocols.zmq import Bus

    bus = Bus(reactor)
    bus.open()
    url = free_url()
    publisher = bus.publisher([url])
    drain = Drain(bus.context, url)
    replayer = Replayer(source, publisher.publish_raw, reactor, speedup, keep_lateness=keep_lateness)
    began = time.perf_counter()
    d = replayer.start()

    def done(summary):
        wall = time.perf_counter() - began
        time.sleep(0.2)
        drain.close()
        result = (replayer, summary, publisher.sent, publisher.dropped, drain.count, wall)
        bus.close()
        return result

    return d.addCallback(done)


#: (speedup, seconds of night) of each row of part (a)
ROWS = ((1, 20), (10, 150), (100, 1500))
QUICK_ROWS = ((10, 20), (100, 150))


def part_a(reactor, night: Path, rows_wanted=ROWS, offset: float = 3 * 3600):
    from twisted.internet.defer import inlineCallbacks

    @inlineCallbacks
    def run():
        db = ReplayDatabase(night)
        first, _ = db.time_span()
        slice_start = first + offset  # tracking, all topics present
        print("(a) lateness against the schedule (real reactor, PUB + draining SUB)")
        print(f"    {'speedup':>7} {'events':>6} {'night s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'max ms':>7} {'first10% p99':>12} {'last10% p99':>11}")
        rows = []
        for speedup, seconds in rows_wanted:
            def source(a=slice_start, b=slice_start + seconds):
                events = db.events()
                events = itertools.dropwhile(lambda e: e.t is None or e.t < a, events)
                return itertools.takewhile(lambda e: e.t < b, events)

            replayer, summary, *_ = yield run_replay(reactor, source, speedup)
            late = [x * 1e3 for x in replayer.lateness]
            tenth = max(1, len(late) // 10)
            row = (speedup, len(late), seconds, percentile(late, 0.5), percentile(late, 0.99), max(late),
                   percentile(late[:tenth], 0.99), percentile(late[-tenth:], 0.99))
            rows.append(row)
            print("    {:>7} {:>6} {:>7} {:>7.2f} {:>7.2f} {:>7.2f} {:>12.2f} {:>11.2f}".format(*row))
        db.close()
        return rows

    return run()


def raw_loop(night: Path) -> tuple[int, float]:
    """The baseline: sqlite3 rows -> dict -> json -> send_multipart, no framework."""
    context = zmq.Context()
    url = free_url()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.bind(url)
    drain = Drain(context, url)
    began = time.perf_counter()
    conn = sqlite3.connect(night)
    sent = 0
    current, topic, payload = None, None, {}
    for event_id, row_topic, key, value in conn.execute(
            "SELECT e.event_id, e.topic, d.key, d.value FROM events e "
            "JOIN event_data d ON d.event_id = e.event_id ORDER BY e.event_id"):
        if event_id != current:
            if current is not None:
                socket.send_multipart([topic.encode(), json.dumps(payload).encode()])
                sent += 1
            current, topic, payload = event_id, row_topic, {}
        payload[key] = value
    socket.send_multipart([topic.encode(), json.dumps(payload).encode()])
    sent += 1
    wall = time.perf_counter() - began
    time.sleep(0.2)
    drain.close()
    socket.close(linger=0)
    conn.close()
    context.term()
    return sent, wall


def part_b(reactor, night: Path):
    from twisted.internet.defer import inlineCallbacks

    @inlineCallbacks
    def run():
        print("(b) highest rate, whole night, unbounded speedup")
        sent_raw, wall_raw = raw_loop(night)
        db = ReplayDatabase(night)
        _, summary, published, dropped, received, wall = yield run_replay(
            reactor, db.events, float("inf"), keep_lateness=False)
        db.close()
        ours, raw = summary.sent / wall, sent_raw / wall_raw
        print(f"    raw pyzmq loop : {sent_raw} events in {wall_raw:.2f} s = {raw:,.0f} ev/s")
        print(f"    ocd replay     : {summary.sent} events in {wall:.2f} s = {ours:,.0f} ev/s "
              f"(dropped by PUB {dropped}, received by SUB {received})")
        print(f"    ratio          : {ours / raw:.2f} (target >= 0.7)")
        return ours / raw

    return run()


CHILD = """
import resource, sys, time
sys.path.insert(0, {repo!r})
from twisted.internet import task
from ocd.protocols.zmq import Bus
from ocd.services.replay import ReplayDatabase
from ocd.services.replay_schedule import Replayer
db = ReplayDatabase({path!r})
def work(reactor):
    bus = Bus(reactor); bus.open()
    pub = bus.publisher(["tcp://127.0.0.1:0"])
    r = Replayer(db.events, pub.publish_raw, reactor, float("inf"))
    def done(s):
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (the parent's size).
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
        print(s.sent, hwm)
        bus.close()
        return 0
    return r.start().addCallback(done)
task.react(work)
"""


def part_c(small: Path, big: Path | None) -> None:
    print("(c) peak memory (VmHWM) of a whole replay, each in its own process")
    results = {}
    for name, path in (("small", small), ("big", big)):
        if path is None:
            print("    (quick: no 1M-event night, no difference)")
            return
        began = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), path=str(path))],
                             capture_output=True, text=True, check=True).stdout.split()
        sent, rss_kb = int(out[0]), int(out[1])
        results[name] = rss_kb / 1024
        print(f"    {sent:>9} events: peak RSS {rss_kb / 1024:6.1f} MB ({time.perf_counter() - began:.1f} s)")
    print(f"    difference     : {results['big'] - results['small']:.1f} MB (target < 20 MB)")


def main() -> None:
    import argparse

    from twisted.internet import task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="every part on the small night, part (a) at 10x and 100x only, "
                             "no 1M-event night: checks that the bench runs, its figures "
                             "are not the targets'")
    args = parser.parse_args()
    t0 = time.perf_counter()
    small = cached_night(seed=0, hours=2.75, heartbeat_hz=0.5, pointing_hz=0.5)  # ~10k events
    night = small if args.quick else cached_night(seed=0)
    big = None if args.quick else cached_night(**BIG)
    print(f"nights ready in {time.perf_counter() - t0:.1f} s: {night}, {small}, {big}")

    def work(reactor):
        if args.quick:
            d = part_a(reactor, night, QUICK_ROWS, offset=3600)
        else:
            d = part_a(reactor, night)
        d.addCallback(lambda _: part_b(reactor, night))
        d.addCallback(lambda _: part_c(small, big))  # blocking, the reactor has nothing else to do
        return d.addCallback(lambda _: print(f"total {time.perf_counter() - t0:.0f} s"))

    task.react(work)


if __name__ == "__main__":
    main()
