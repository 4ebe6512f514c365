"""The main loop in-process: real sockets on free ports, the global reactor."""

from __future__ import annotations

import io

import pytest
import pytest_twisted
import zmq

from bus_helpers import make_config, sleep, tcs_frames, wait_until
from ocd.core.events import UrlKind

pytestmark = pytest.mark.integration


@pytest.fixture
def tcs_socket():
    """A raw pyzmq PUB, as the TCS would bind it: on a port the kernel picks."""
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.bind("tcp://127.0.0.1:*")
    yield socket
    socket.close(linger=0)
    context.term()


@pytest_twisted.async_yield_fixture
async def ocd(free_url, tcs_socket):
    """``ocd run``'s service tree, started on the test reactor (and stopped: awaited)."""
    from twisted.internet import reactor

    from ocd.app import makeService

    config = make_config(free_url, topics__extra_topics="ocd.states",
                         urls__event_urls=tcs_socket.getsockopt_string(zmq.LAST_ENDPOINT))
    service = makeService(config, reactor)
    service.startService()
    yield service, config
    await service.stopService()


@pytest.fixture
def tcs(ocd, tcs_socket):
    """The TCS's PUB on the event URL ``ocd run`` listens to."""
    return tcs_socket


def main_loop(service):
    return service.getServiceNamed("main_loop")


@pytest_twisted.inlineCallbacks
def test_allow_and_stop_round_trip(ocd):
    from twisted.internet import reactor

    from ocd.commands.allow_hetdex import allow

    service, config = ocd
    loop = main_loop(service)
    changes = []
    loop.listeners.append(lambda e: changes.append(e) if e.topic == "ocd.states.change" else None)
    loop.failed_shot = True
    out = io.StringIO()
    code = yield allow(config, "start", 5, 0.2, reactor, out)
    assert code == 0, out.getvalue()
    assert loop.arming.state == "allowed"
    assert loop.failed_shot is False
    assert "failed_shot cleared" in out.getvalue()
    code = yield allow(config, "start", 5, 0.2, reactor, out)  # nothing to change: still 0
    assert code == 0
    assert "already allowed" in out.getvalue()
    code = yield allow(config, "stop", 5, 0.2, reactor, out)
    assert code == 0, out.getvalue()
    assert loop.arming.state == "not_allowed"
    assert [(c["transition"], c["new_state"]) for c in changes] == [
        ("allow", "allowed"), ("disallow", "not_allowed")]


@pytest_twisted.inlineCallbacks
def test_config_send_applied_and_refused(ocd):
    from twisted.internet import reactor

    from ocd.commands.config_send import send

    service, config = ocd
    out = io.StringIO()
    code = yield send(config, "decision", "max_fwhm", "2.5", 3, 0.2, reactor, out)
    assert code == 0, out.getvalue()
    assert config.get_float("decision", "max_fwhm") == 2.5
    code = yield send(config, "decision", "max_fwhm", "big", 3, 0.2, reactor, out)
    assert code == 1
    assert "max_fwhm" in out.getvalue().splitlines()[-1]
    assert config.get_float("decision", "max_fwhm") == 2.5
    code = yield send(config, "urls", "event_urls", "tcp://127.0.0.1:1", 3, 0.2, reactor, out)
    assert code == 1
    assert "live: no" in out.getvalue().splitlines()[-1]
    counters = main_loop(service).counters
    assert counters.get("config.applied") == 1 and counters.get("config.refused") == 2


@pytest_twisted.inlineCallbacks
def test_no_main_loop_is_exit_3_within_the_timeout(free_url):
    from twisted.internet import reactor

    from ocd.commands.allow_hetdex import allow

    config = make_config(free_url)
    out = io.StringIO()
    started = reactor.seconds()
    code = yield allow(config, "start", 2, 0.5, reactor, out)
    assert code == 3
    assert reactor.seconds() - started < 2.0
    assert "no answer from the OCD main loop" in out.getvalue()


@pytest_twisted.inlineCallbacks
def test_heartbeat_handshake(ocd):
    from ocd.protocols.control import ControlClient
    from ocd.protocols.zmq import Bus

    _, config = ocd
    bus = Bus()
    bus.open()
    client = ControlClient(bus, config.get_urls("urls", "ocd_config"),
                           config.get_urls("urls", "ocd_main_loop"))
    try:
        ok = yield client.handshake(3.0, 0.1)
        assert ok is True
    finally:
        client.close()
        bus.close()


@pytest_twisted.inlineCallbacks
def test_tcs_events_advance_the_clock_and_publish_states(ocd, tcs):
    service, _ = ocd
    loop = main_loop(service)
    states = []
    loop.listeners.append(lambda e: states.append(e) if e.topic == "ocd.states.state" else None)

    def beat():
        tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", 1526371200.25))
        return loop.counters.get("topic.tcs.receiver.heartbeat") > 0

    assert (yield wait_until(beat, 5.0, 0.05))
    assert loop.now() == 1526371200.25
    assert {e["machine_name"] for e in states} == {"hetdex_allowed", "run_shot"}
    assert all(e.data_time == 1526371200.25 for e in states)


@pytest_twisted.inlineCallbacks
def test_hetdex_allowed_on_a_tcs_url_does_not_arm(ocd, tcs):
    service, _ = ocd
    loop = main_loop(service)

    def send():
        tcs.send_multipart(tcs_frames("ocd.states.hetdex_allowed", 1.0, allow=True, id="x"))
        return loop.counters.get("dropped.tcs") > 0

    assert (yield wait_until(send, 5.0, 0.05))
    assert loop.arming.state == "not_allowed"


@pytest_twisted.inlineCallbacks
def test_malformed_frames_are_counted_and_the_loop_lives(ocd, tcs):
    service, _ = ocd
    loop = main_loop(service)
    good = tcs_frames("tcs.receiver.heartbeat", 10.0)
    topic = b"tcs.receiver.heartbeat"
    bad = {
        "frame_count": [[topic + b"\0{}"], good + [b"extra"]],
        "bad_utf8": [[topic, b"\xff\xfe{}"]],
        "not_object": [[topic, b"[1, 2]"]],
        "bad_json": [[topic, b"{nope"]],
        "bad_topic": [[b"tcs.receiver", good[1]]],
        "missing_key": [[topic, b'{"__system": "tcs"}']],
    }
    # Prime the connection (slow joiner) with good events first.
    assert (yield wait_until(lambda: tcs.send_multipart(good) or
                             loop.counters.get("topic.tcs.receiver.heartbeat") > 0, 5.0, 0.05))
    for messages in bad.values():
        for frames in messages:
            tcs.send_multipart(frames)
    tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", 20.0))
    assert (yield wait_until(lambda: loop.now() == 20.0, 5.0))
    counters = loop.counters
    assert counters.get("malformed.frame_count") == 2
    for kind in ("bad_utf8", "not_object", "bad_json", "missing_key"):
        assert counters.get(f"malformed.{kind}") == 1, kind
    # A topic that is not a.b.c does not even match the subscription unless it
    # shares a prefix; "tcs.receiver" does not match "tcs.receiver.heartbeat".
    assert counters.get("malformed.bad_topic") == 0


@pytest_twisted.inlineCallbacks
def test_bad_topic_is_counted(free_url):
    """A subscriber with a broad prefix sees a topic that is not a.b.c."""
    from ocd.protocols.zmq import Bus

    from ocd.core.counters import Counters

    url = free_url()
    bus = Bus()
    bus.open()
    counters = Counters()
    publisher = bus.publisher([url])
    bus.subscriber([url], UrlKind.TCS, ["tcs"], lambda e: counters.increment("ok"),
                   lambda exc, u: counters.increment(exc.kind))
    try:
        def send():
            publisher.publish_raw(tcs_frames("tcs.receiver.heartbeat", 1.0))
            return counters.get("ok") > 0

        assert (yield wait_until(send, 5.0, 0.05))
        publisher.publish_raw([b"tcs..x", b"{}"])
        publisher.publish_raw([b"tcs", b"{}"])
        assert (yield wait_until(lambda: counters.get("bad_topic") == 2, 2.0))
    finally:
        bus.close()


@pytest_twisted.inlineCallbacks
def test_tcs_publisher_that_comes_back(ocd, tcs_socket):
    service, config = ocd
    loop = main_loop(service)
    url = config.get_urls("urls", "event_urls")[0]
    # the TCS goes away (its port freed: term waits for the close); it comes back
    # twice on the same URL
    tcs_socket.close(linger=0)
    tcs_socket.context.term()
    for round_ in (1, 2):
        context = zmq.Context()
        socket = context.socket(zmq.PUB)
        socket.bind(url)
        target = 100.0 * round_

        def beat(socket=socket, target=target):
            socket.send_multipart(tcs_frames("tcs.receiver.heartbeat", target))
            return loop.now() == target

        try:
            assert (yield wait_until(beat, 5.0, 0.05)), f"round {round_}"
        finally:
            socket.close(linger=0)
            context.term()
        yield sleep(0.05)


@pytest_twisted.inlineCallbacks
def test_run_shot_events_drive_the_shot_machine(ocd):
    from ocd.protocols.control import ControlClient
    from ocd.protocols.zmq import Bus

    service, config = ocd
    loop = main_loop(service)
    bus = Bus()
    bus.open()
    client = ControlClient(bus, [config.get_urls("urls", "ocd_run_shot")[1]],
                           config.get_urls("urls", "ocd_main_loop"))
    try:
        assert (yield client.handshake(3.0, 0.1))
        shot = {"shotid": "20180515v017", "obs_number": 17, "exptimes": [360, 360, 360]}
        client.emit("ocd.run_shot.run", {"exec_status": 0, **shot})
        assert (yield wait_until(lambda: loop.shot.state == "running", 3.0))
        client.emit("ocd.run_shot.run", {"exec_status": 1, "error": False, **shot})
        assert (yield wait_until(lambda: loop.shot.state == "idle", 3.0))
    finally:
        client.close()
        bus.close()


@pytest_twisted.inlineCallbacks
def test_replay_url_answers_heartbeats_and_advances_the_clock(free_url):
    """``ocd db_replay`` binds ocd_db_replay and shakes hands on it."""
    from twisted.internet import reactor

    from ocd.protocols.control import ControlClient
    from ocd.protocols.zmq import Bus
    from ocd.app import makeService

    replay = free_url()
    config = make_config(free_url, urls__event_urls="", urls__ocd_db_replay=replay,
                         topics__extra_topics="ocd.states")
    service = makeService(config, reactor)
    service.startService()
    bus = Bus()
    bus.open()
    client = ControlClient(bus, [replay], config.get_urls("urls", "ocd_main_loop"))
    try:
        assert (yield client.handshake(3.0, 0.1))
        client.emit("tcs.receiver.heartbeat", {}, data_time=1526371200.0)
        loop = main_loop(service)
        assert (yield wait_until(lambda: loop.now() == 1526371200.0, 3.0))
        client.emit("ocd.states.hetdex_allowed", {"allow": True, "id": "x"})
        assert (yield wait_until(lambda: loop.counters.get("dropped.replay") == 1, 3.0))
        assert loop.arming.state == "not_allowed"
    finally:
        client.close()
        bus.close()
        yield service.stopService()


def _run_shot_args(**extra):
    import argparse

    values = dict(emit_events=True, wait_for_connection=True, timeout=3.0, force=False)
    values.update(extra)
    return argparse.Namespace(**values)


@pytest_twisted.inlineCallbacks
def test_run_shot_c_is_refused_while_a_shot_runs_and_the_loop_says_who(ocd):
    """Issue 9 item 5: ``run_shot -e -c`` asks the main loop first."""
    from twisted.internet import defer, reactor
    from twisted.logger import globalLogPublisher

    from ocd.commands.run_shot import _connect
    from ocd.config import Config

    service, config = ocd
    loop = main_loop(service)
    loop.shots.start(("DEX00042", 1001), reactor.seconds(), 3600.0, own=True)
    hand = Config.load(None, [("urls", "ocd_main_loop", " ".join(config.get_urls("urls", "ocd_main_loop"))),
                              ("urls", "ocd_run_shot", " ".join(config.get_urls("urls", "ocd_run_shot")))])
    out = io.StringIO()
    bus, client, status = yield defer.ensureDeferred(_connect(_run_shot_args(), hand, reactor, out))
    assert status == 1 and bus is None
    assert "shot DEX00042 running (observation 1001, by ocd)" in out.getvalue()
    assert "--force" in out.getvalue()

    logged: list = []
    observer = lambda e: logged.append(e)
    globalLogPublisher.addObserver(observer)
    out = io.StringIO()
    bus, client, status = yield defer.ensureDeferred(
        _connect(_run_shot_args(force=True), hand, reactor, out))
    try:
        assert status is None and "WARNING" in out.getvalue()
        client.emit("ocd.run_shot.run", {"exec_status": 0, "shotid": "HAND01", "obs_number": 7,
                                         "exptimes": [1, 1, 1]})
        assert (yield wait_until(lambda: any("another runner" in str(e.get("log_format"))
                                             for e in logged), 3.0))
        from twisted.logger import formatEvent

        line = next(formatEvent(e) for e in logged if "another runner" in str(e.get("log_format")))
        assert "HAND01" in line and "WHILE OCD's own shot DEX00042 runs" in line
    finally:
        globalLogPublisher.removeObserver(observer)
        client.close()
        bus.close()


@pytest.mark.parametrize("option, own", [
    ("ocd_allow_hetdex", "ocd_run_shot"), ("ocd_config", "ocd_main_loop"),
    ("event_urls", "ocd_main_loop"),
])
def test_a_url_another_program_binds_may_not_be_one_ocd_binds(option, own):
    """OCD started with ocd_allow_hetdex = its own ocd_run_shot URL, and then
    `ocd allow_hetdex` could never bind it: OCD could never be armed."""
    from ocd.config import Config, ConfigError
    from ocd.services.main_loop import telescope_source

    config = Config.load(None, [])
    url = config.get_urls("urls", own)[0]
    bad = Config.load(None, [("urls", option, url)])
    with pytest.raises(ConfigError) as refused:
        telescope_source(bad)
    assert f"[urls] {option} {url} is the URL OCD binds itself for [urls] {own}" in str(refused.value)
    telescope_source(config)  # the master's URLs are apart
