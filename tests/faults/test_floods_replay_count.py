"""Loss made visible at the end of a replay (issue 12, section 4).

``ocd db_replay`` tells the main loop how many events it sent (per topic);
the main loop compares with what arrived on the replay URL since that
replay's handshake, and both report the result.
"""

from __future__ import annotations

import io
import json

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from bus_helpers import make_config, wait_until
from ocd.cli import build_parser
from ocd.config import Config
from ocd.core.events import MalformedEvent, UrlKind, make_payload, parse_frames
from ocd.core.topics import Topic
from ocd.services.main_loop import MainLoop
from ocd.services.replay import ReplayDatabase
from ocd.sim.night import generate_night
from conftest import stopped_on_reactor

START = 1740098895.0  # sunset at the HET, 2025-02-20


def frames(topic: str, t: float = START, **fields) -> list[bytes]:
    return [topic.encode(), json.dumps(make_payload(topic, fields, t, t)).encode()]


def feed(loop: MainLoop, message: list[bytes]) -> None:
    try:
        event = parse_frames(message, UrlKind.REPLAY, "tcp://replay")
    except MalformedEvent as exc:
        loop.on_malformed(exc, "tcp://replay", url_kind=UrlKind.REPLAY)
    else:
        loop.handle_event(event)


def test_the_main_loop_counts_since_the_handshake_and_names_the_loss():
    clock = Clock()
    clock.advance(START + 86400)
    loop = MainLoop(Config.load(None, [("urls", "event_urls", ""),
                                       ("urls", "ocd_db_replay", "tcp://127.0.0.1:1")]), clock)
    heard: list = []
    loop.listeners.append(heard.append)
    feed(loop, frames("tcs.receiver.heartbeat", START - 10))  # an earlier replay
    for _ in range(3):  # enquiries repeat until answered: the first one marks the start
        feed(loop, frames("ocd.heartbeat.enquiry", id="hello"))
    sent = {"tcs.receiver.heartbeat": 100, "legacy.weather.status": 10, "tcs.nosuch.thing": 7}
    for i in range(100):
        if i % 10 != 3:  # 10 heartbeats lost on the way
            feed(loop, frames("tcs.receiver.heartbeat", START + i))
    for i in range(9):  # one weather event lost; one arrives malformed
        feed(loop, [b"legacy.weather.status", b"{not json"] if i == 0 else
             frames("legacy.weather.status", START + i, humidity=20, wind_speed=3, ambtemp=5,
                    dewpoint=-10))
    feed(loop, frames("ocd.replay.end", id="end1", handshake_id="hello", sent=117,
                      sent_by_topic=sent))
    answer = [dict(e.payload) for e in heard if e.topic == Topic.REPLAY_COUNTED]
    assert len(answer) == 1
    assert answer[0]["expected"] == 110  # tcs.nosuch.thing is not subscribed: never arrives
    assert answer[0]["counted"] == 99
    assert answer[0]["lost"] == 11
    assert answer[0]["id"] == "end1" and answer[0]["sent"] == 117
    assert loop.counters.get("replay.lost") == 11


def test_an_unknown_start_is_said_not_guessed():
    clock = Clock()
    clock.advance(START + 86400)
    loop = MainLoop(Config.load(None, []), clock)
    heard: list = []
    loop.listeners.append(heard.append)
    feed(loop, frames("ocd.replay.end", id="e", handshake_id="never-seen", sent=5))
    answer = [dict(e.payload) for e in heard if e.topic == Topic.REPLAY_COUNTED]
    assert answer[0]["counted"] is None and answer[0]["lost"] is None


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    path = tmp_path_factory.mktemp("night") / "night.db"
    return generate_night(path, seed=5, start=START, hours=0.1)


@pytest.fixture
def replay_ocd(free_url):
    from twisted.internet import reactor

    from ocd.app import makeService

    config = make_config(free_url, urls__event_urls="", urls__ocd_db_replay=free_url())
    service = makeService(config, reactor)
    service.startService()
    yield config, service
    stopped_on_reactor(service)


@pytest.mark.integration
@pytest.mark.parametrize("lose_every", [0, 7])
@pytest_twisted.inlineCallbacks
def test_db_replay_and_ocd_both_report_the_count(night, replay_ocd, logged, lose_every):
    from twisted.internet import reactor

    from ocd.commands.db_replay import replay

    config, service = replay_ocd
    main_loop = service.getServiceNamed("main_loop")
    subscriber = service.getServiceNamed("subscriber").subscriber
    if lose_every:  # what a full queue does between the socket and the main loop
        deliver, seen = subscriber._on_event, [0]

        def lossy(event):
            if not event.topic.startswith("ocd."):
                seen[0] += 1
                if seen[0] % lose_every == 0:
                    return
            deliver(event)

        subscriber._on_event = lossy
    out = io.StringIO()
    args = build_parser().parse_args(["db_replay", str(night.path), "-s", "1e6"])
    code = yield replay(config, ReplayDatabase(night.path), config.get_urls("urls", "ocd_db_replay"),
                        args, reactor, out, terminal=False)
    assert code == 0, out.getvalue()
    lost = night.events // lose_every if lose_every else 0
    assert f"{night.events} events sent, {night.events} on the topics OCD subscribes to; " \
           f"OCD counted {night.events - lost}: {lost} lost" in out.getvalue()
    reports = [e for e in logged if e.get("ocd_event") == "replay_counted"]
    assert len(reports) == 1 and reports[0]["lost"] == lost
    assert main_loop.counters.get("replay.lost") == lost
