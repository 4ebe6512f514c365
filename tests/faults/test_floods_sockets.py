"""Floods and garbage through real sockets into ``ocd run``'s service tree.

A raw PUB bound on the TCS URL (as a broken or hostile TCS would be) sends
thousands of unique topics, deeply nested payloads and impossible times;
the main loop stays bounded, counts everything, and still answers.
"""

from __future__ import annotations

import json
import time

import pytest
import pytest_twisted
import zmq

from bus_helpers import make_config, tcs_frames, wait_until
from ocd.core.counters import MAX_NAMES

pytestmark = pytest.mark.integration


@pytest.fixture
def ocd(free_url):
    from twisted.internet import reactor

    from ocd.app import makeService

    # The time check is on (make_config switches it off for historical test data).
    config = make_config(free_url, topics__extra_topics="tcs.flood", dates__max_time_offset="86400")
    service = makeService(config, reactor)
    service.startService()
    yield service.getServiceNamed("main_loop"), config
    service.stopService()


@pytest.fixture
def tcs(ocd):
    _, config = ocd
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.bind(config.get_urls("urls", "event_urls")[0])
    yield socket
    socket.close(linger=0)
    context.term()


@pytest_twisted.inlineCallbacks
def test_a_flood_of_garbage_stays_bounded_and_counted(ocd, tcs):
    loop, _ = ocd
    now = time.time()

    def joined():  # the slow joiner: wait until our messages arrive
        tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", time.time()))
        return loop.counters.get("topic.tcs.receiver.heartbeat") > 0

    assert (yield wait_until(joined, 5.0, 0.05))
    unique = MAX_NAMES * 4
    deep = b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    for i in range(unique):
        tcs.send_multipart(tcs_frames(f"tcs.flood.k{i}", now))
    for _ in range(200):
        tcs.send_multipart([b"tcs.flood.deep", deep])
    far = tcs_frames("tcs.receiver.heartbeat", 1e308)
    for _ in range(200):
        tcs.send_multipart(far)

    def all_counted():
        return (loop.counters.total("topic.tcs.flood") + loop.counters.get("topic.other") >= unique
                and loop.counters.get("malformed.too_deep") >= 200
                and loop.counters.get("malformed.far_time") >= 200)

    assert (yield wait_until(all_counted, 20.0, 0.05)), loop.counters.snapshot()
    assert loop.counters.get("topic.other") == unique - (MAX_NAMES - 1)  # heartbeat took a name
    assert len(loop.counters.snapshot()) < MAX_NAMES + 40
    assert loop.now() < now + 60  # 1e308 never became OCD's clock
