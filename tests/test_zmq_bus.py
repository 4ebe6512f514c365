"""The ZeroMQ adapter: binding errors, two frames, bounded reads under a burst."""

from __future__ import annotations

import threading

import pytest
import pytest_twisted
import zmq

from bus_helpers import make_config, tcs_frames, wait_until
from ocd.core.events import make_event

pytestmark = pytest.mark.integration


def test_bind_error_names_the_url_and_reason(free_url):
    from ocd.protocols.zmq import BindError, Bus

    url = free_url()
    bus = Bus()
    bus.open()
    try:
        bus.publisher([url])
        with pytest.raises(BindError, match=f"cannot bind {url}: address already in use"):
            bus.publisher([url])
        with pytest.raises(BindError, match="cannot bind tcp://nowhere: bad address"):
            bus.publisher(["tcp://nowhere"])
    finally:
        bus.close()  # must not hang on the half-made sockets


@pytest_twisted.inlineCallbacks
def test_publish_sends_two_frames(free_url):
    from ocd.protocols.zmq import Bus

    url = free_url()
    bus = Bus()
    bus.open()
    raw = zmq.Context()
    sub = raw.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(url)
    publisher = bus.publisher([url])
    got = []

    def poll():
        publisher.publish(make_event("ocd.heartbeat.reply", {"id": "a"}, 1.0, 2.0))
        try:
            got.append(sub.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            pass
        return bool(got)

    try:
        assert (yield wait_until(poll, 5.0, 0.05))
        assert len(got[0]) == 2 and got[0][0] == b"ocd.heartbeat.reply"
    finally:
        sub.close(linger=0)
        raw.term()
        bus.close()


@pytest_twisted.inlineCallbacks
def test_burst_of_100k_events_never_blocks_the_reactor(free_url):
    """A 10 ms LoopingCall never waits more than 100 ms while 100k events arrive."""
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from ocd.app import makeService

    config = make_config(free_url)
    service = makeService(config, reactor)
    service.startService()
    loop = service.getServiceNamed("main_loop")
    url = config.get_urls("urls", "event_urls")[0]
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(url)
    total = 100_000
    frames = tcs_frames("tcs.root.ra_dec", 1526371200.0, ra=12.5, dec=51.2, az=180.0,
                        dir="EAST", tracking=True)
    gaps = []
    last = [reactor.seconds()]

    def tick():
        now = reactor.seconds()
        gaps.append(now - last[0])
        last[0] = now

    ticker = LoopingCall(tick)
    try:
        # the slow joiner: wait until the subscription has reached the publisher
        assert (yield wait_until(lambda: pub.send_multipart(frames) or
                                 loop.counters.get("topic.tcs.root.ra_dec") > 0, 5.0, 0.05))
        base = loop.counters.get("topic.tcs.root.ra_dec")
        last[0] = reactor.seconds()
        ticker.start(0.01, now=False)
        sender = threading.Thread(target=lambda: [pub.send_multipart(frames) for _ in range(total)])
        sender.start()
        done = yield wait_until(
            lambda: loop.counters.get("topic.tcs.root.ra_dec") - base >= total, 30.0, 0.01)
        sender.join()
        assert done, loop.counters.snapshot()
    finally:
        if ticker.running:
            ticker.stop()
        pub.close(linger=0)
        context.term()
        service.stopService()
    print(f"100k burst: {len(gaps)} ticks, max gap {max(gaps) * 1000:.1f} ms")
    assert len(gaps) > 10
    assert max(gaps) < 0.1, f"max gap {max(gaps) * 1000:.0f} ms"
