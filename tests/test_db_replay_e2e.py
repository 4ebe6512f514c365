"""``ocd db_replay`` end to end: a generated night into a real main loop."""

from __future__ import annotations

import io
import subprocess

import pytest
import pytest_twisted

from bus_helpers import make_config, wait_until, write_config
from ocd.cli import build_parser, main as ocd_main
from ocd.services.replay import ReplayDatabase
from ocd.sim.night import generate_night

pytestmark = pytest.mark.integration

START = 1740098895.0  # sunset at the HET, 2025-02-20


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    path = tmp_path_factory.mktemp("night") / "night.db"
    return generate_night(path, seed=5, start=START, hours=0.25, bad_weather_minutes=4)


@pytest_twisted.async_yield_fixture
async def replay_ocd(free_url):
    """``ocd run``'s service tree listening to a replay URL; records what it gets."""
    from twisted.internet import reactor

    from ocd.app import makeService

    config = make_config(free_url, urls__event_urls="", urls__ocd_db_replay=free_url())
    service = makeService(config, reactor)
    main_loop = service.getServiceNamed("main_loop")
    received = []
    original = main_loop.on_telescope_event

    def record(event):
        received.append(event)
        original(event)

    main_loop.on_telescope_event = record
    service.startService()
    yield config, main_loop, received
    await service.stopService()


def args_for(*argv: str):
    return build_parser().parse_args(["db_replay", *argv])


@pytest_twisted.inlineCallbacks
def test_main_loop_receives_every_event_in_order_with_converted_types(night, replay_ocd):
    from twisted.internet import reactor

    from ocd.commands.db_replay import replay

    config, main_loop, received = replay_ocd
    urls = config.get_urls("urls", "ocd_db_replay")
    out = io.StringIO()
    code = yield replay(config, ReplayDatabase(night.path), urls, args_for(str(night.path), "-s", "1e6"),
                        reactor, out, terminal=False)
    assert code == 0, out.getvalue()
    ok = yield wait_until(lambda: len(received) >= night.events, timeout=5)
    assert ok, f"received {len(received)} of {night.events}"
    expected = list(ReplayDatabase(night.path).events())
    assert [(e.topic, e["__wire_time"]) for e in received] == [(e.topic, e.payload["__wire_time"]) for e in expected]
    for topic, n in night.topics.items():
        assert main_loop.counters.get(f"topic.{topic}") == n
    assert main_loop.counters.total("malformed.") == 0
    by_topic = {e.topic: e for e in received}
    guider = by_topic["pas.Guider1.metrology_data"]
    assert type(guider["__wire_time"]) is float and guider["__data"] is False
    assert guider["probe"] == "01" and isinstance(guider["offsets"], str)  # "01" and JSON text stay text
    assert type(guider["valid"]) is bool
    weather = by_topic["legacy.weather.status"]
    assert type(weather["pressure"]) is float and isinstance(weather["__data_time"], str)
    assert type(by_topic["tcs.root.ra_dec"]["tracking"]) is bool
    text = out.getvalue()
    assert f"{night.events} events sent, 0 skipped" in text and "worst lateness" in text


@pytest_twisted.inlineCallbacks
def test_no_conversion_sends_text(night, replay_ocd, free_url):
    from twisted.internet import reactor

    from ocd.commands.db_replay import replay

    config, main_loop, received = replay_ocd
    db = ReplayDatabase(night.path, topics=["legacy.weather"], convert_number=False, convert_bool=False)
    code = yield replay(config, db, config.get_urls("urls", "ocd_db_replay"),
                        args_for(str(night.path), "-s", "inf"), reactor, io.StringIO(), terminal=False)
    assert code == 0
    yield wait_until(lambda: len(received) >= night.topics["legacy.weather.status"], timeout=5)
    assert {e.topic for e in received} == {"legacy.weather.status"}
    assert received[0]["pressure"] == str(received[0]["pressure"]) and received[0]["__data"] == "False"


@pytest_twisted.inlineCallbacks
def test_no_main_loop_is_exit_3(night, free_url):
    from twisted.internet import reactor

    from ocd.commands.db_replay import replay

    config = make_config(free_url, urls__event_urls="", urls__ocd_db_replay=free_url())
    out = io.StringIO()
    code = yield replay(config, ReplayDatabase(night.path), config.get_urls("urls", "ocd_db_replay"),
                        args_for(str(night.path), "-t", "0.5"), reactor, out, terminal=False)
    assert code == 3 and "main loop not reachable" in out.getvalue()


@pytest_twisted.inlineCallbacks
def test_child_process_replays_with_progress_lines(night, replay_ocd, tmp_path, ocd_command, child_env):
    """The real command in a child process; the test reactor runs the main loop meanwhile."""
    config, main_loop, received = replay_ocd
    cfg = write_config(config, tmp_path / "replay.cfg")
    (tmp_path / "replay.cfg").write_text((tmp_path / "replay.cfg").read_text() +
                                         "[db_replay]\nprogress_interval = 0.2\n")
    process = subprocess.Popen(
        [*ocd_command, "db_replay", "--config", cfg, "-s", "1500", "-T", "tcs.receiver", "legacy",
         "-t", "5", str(night.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, text=True)
    wanted = night.topics["tcs.receiver.heartbeat"] + night.topics["legacy.weather.status"] + \
        night.topics["legacy.shutter.status"]
    ok = yield wait_until(lambda: process.poll() is not None, timeout=20)
    out, err = process.communicate()
    assert ok and process.returncode == 0, err
    yield wait_until(lambda: len(received) >= wanted, timeout=5)
    assert len(received) == wanted
    assert f"{wanted} events sent" in err and "progress:" in err


def test_usage_errors_are_exit_2(night, tmp_path, capsys):
    assert ocd_main(["db_replay", str(night.path)]) == 2
    assert "give --ocd-db-replay URL or a replay configuration" in capsys.readouterr().err
    url = "tcp://127.0.0.1:1"
    assert ocd_main(["db_replay", str(tmp_path / "nope.db"), "--ocd-db-replay", url]) == 2
    assert "nope.db: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 10)
    assert ocd_main(["db_replay", str(bad), "--ocd-db-replay", url]) == 2
    assert "bad.db: not an SQLite 3 database" in capsys.readouterr().err
    assert ocd_main(["db_replay", "-s", "0", str(night.path), "--ocd-db-replay", url]) == 2


def test_progress_bar_on_a_terminal_and_log_lines_otherwise():
    from twisted.internet.task import Clock
    from twisted.logger import globalLogPublisher

    from ocd.commands.db_replay import Progress
    from ocd.services.replay import ReplayEvent
    from ocd.services.replay_schedule import Replayer

    clock = Clock()
    stream = [ReplayEvent(i, "a.b.c", {"i": i}, 1740100000.0 + i) for i in range(10)]
    replayer = Replayer(lambda: iter(stream), lambda frames: None, clock, speedup=2.0)
    bar = io.StringIO()
    progress = Progress(replayer, 10, (1740100000.0, 1740100009.0), clock, 5, True, bar)
    replayer.start()
    clock.pump([0.25] * 8)
    progress.close()
    assert "night 01:06:" in bar.getvalue() and "/10" in bar.getvalue() and "left" in bar.getvalue()

    lines = []
    globalLogPublisher.addObserver(lines.append)
    try:
        clock2 = Clock()
        replayer2 = Replayer(lambda: iter(stream), lambda frames: None, clock2, speedup=2.0)
        progress2 = Progress(replayer2, 10, (1740100000.0, 1740100009.0), clock2, 1.0, False, io.StringIO())
        replayer2.start()
        clock2.pump([0.5] * 4)
        progress2.close()
    finally:
        globalLogPublisher.removeObserver(lines.append)
    progress_lines = [e for e in lines if "progress:" in e.get("log_format", "")]
    assert len(progress_lines) == 2 and progress_lines[-1]["sent"] in (4, 5)


def test_log_lines_go_above_the_bar_and_it_shows_one_remaining_time():
    """Issue 11: a log line never writes over the bar; tqdm's own estimate is gone."""
    from twisted.internet.task import Clock
    from twisted.logger import Logger, LogPublisher

    from ocd.commands.db_replay import Progress
    from ocd.config import Config
    from ocd.logs import observers_for
    from ocd.services.replay import ReplayEvent
    from ocd.services.replay_schedule import Replayer

    clock = Clock()
    stream = [ReplayEvent(i, "a.b.c", {"i": i}, 1740100000.0 + i) for i in range(10)]
    replayer = Replayer(lambda: iter(stream), lambda frames: None, clock, speedup=2.0)
    terminal = io.StringIO()
    console = Logger(namespace="ocd.test",
                     observer=LogPublisher(*observers_for(Config.load(), terminal)))
    progress = Progress(replayer, 10, (1740100000.0, 1740100009.0), clock, 5, True, terminal)
    replayer.start()
    clock.pump([0.25] * 4)
    console.warn("the main loop stopped answering")
    clock.pump([0.25] * 4)
    progress.close()
    text = terminal.getvalue()
    # tqdm.write clears the bar's line first and redraws the bar below the message.
    before, _, after = text.partition("[ocd.test#warn] the main loop stopped answering")
    segments = before.split("\r")
    assert segments[-1].endswith("Z ") and segments[-2].strip() == "", repr(before[-200:])
    assert after.startswith("\n") and "/10" in after
    assert text.count("left ") >= 1 and "<" not in text and "it/s" not in text  # one estimate
    assert "0:0" in text  # the remaining time as a clock duration, not seconds


def test_the_replay_warns_when_the_main_loop_stops_answering():
    from twisted.internet.defer import Deferred
    from twisted.internet.task import Clock
    from twisted.logger import globalLogPublisher

    from ocd.commands.db_replay import MainLoopWatch

    class Client:
        """The main loop answers while ``alive``; a handshake lasts ``timeout``."""

        def __init__(self, clock):
            self.clock, self.alive = clock, True

        def handshake(self, timeout):
            d = Deferred()
            if self.alive:
                self.clock.callLater(0.01, d.callback, True)
            else:
                self.clock.callLater(timeout, d.callback, False)
            return d

    clock = Clock()
    client = Client(clock)
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        watch = MainLoopWatch(client, ["tcp://127.0.0.1:1"], 2.0, clock)
        clock.pump([0.5] * 8)
        assert watch.silent_since is None
        client.alive = False
        clock.pump([0.5] * 12)
        assert watch.silent_since is not None
        client.alive = True
        clock.pump([0.5] * 12)
        assert watch.silent_since is None
        watch.stop()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    texts = [e["log_format"] for e in seen if e.get("log_namespace") == "ocd.db_replay"]
    assert sum("stopped answering" in t for t in texts) == 1  # warned once, not per check
    assert sum("answers again" in t for t in texts) == 1


def test_a_remaining_time_too_long_to_show_is_said_in_words():
    """--speedup 1e-308 made each progress report raise OverflowError (int of inf)."""
    from ocd.commands.db_replay import _duration

    assert _duration(3725) == "1:02:05"
    for endless in (1e308, float("inf"), float("nan")):
        assert _duration(endless) == "more than a century"
