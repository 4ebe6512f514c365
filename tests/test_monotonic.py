"""Silences, timeouts and deadlines on a monotonic clock (issue 9 item 4).

A step of the machine's clock (NTP, an operator's ``date``) must move no
deadline: OCD measures silences and deadlines on the injected reactor clock
(monotonic in the daemons; a ``Clock`` here) and reads the wall clock only
for its time and stamps.
"""

from __future__ import annotations

import subprocess
import sys
import time

from twisted.internet.task import Clock

from ocd.config import Config
from ocd.core.events import UrlKind, event_from_payload, make_payload
from conftest import stopped

NIGHT = 1740031200.0


class SteppingWall:
    """A wall clock an operator can step (a real peer of ``time.time``)."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


def _event(topic: str, t: float, kind: UrlKind = UrlKind.TCS, **fields):
    return event_from_payload(topic, make_payload(topic, fields, t, t), kind, "tcp://peer")


def _loop(tmp_path, wall, options):
    from ocd.services.orchestrator import Orchestrator

    overrides = [("shots", "shot_file", str(tmp_path / "none.txt")),
                 ("shots", "state_db", str(tmp_path / "state.sqlite")),
                 ("dates", "clock", "system")]
    overrides += [(s, o, v) for (s, o), v in options.items()]
    clock = Clock()
    clock.advance(5000)
    loop = Orchestrator(Config.load(None, overrides), clock, wall=wall)
    heard: list = []
    loop.listeners.append(heard.append)
    loop.startService()
    return loop, clock, heard


def test_a_step_back_of_the_wall_clock_hides_no_dead_tcs(tmp_path):
    wall = SteppingWall(NIGHT)
    loop, clock, heard = _loop(tmp_path, wall, {("decision", "tcs_timeout"): "30"})
    try:
        loop.handle_event(_event("tcs.receiver.heartbeat", NIGHT))
        clock.advance(1)
        assert "tcs_silent" not in loop.last_decision.blockers
        wall.now -= 3600  # an operator sets the date back an hour
        clock.advance(31)  # 31 s pass for real
        loop.tick()
        assert "tcs_silent" in loop.last_decision.blockers
        assert loop.now() == wall.now  # OCD's time (clock = system) is the wall clock
        made = [e for e in heard if e.topic == "ocd.decision.made"][-1]
        assert made.wire_time == wall.now  # stamps too
    finally:
        stopped(loop)


def test_a_step_forward_does_not_declare_a_shot_lost(tmp_path):
    wall = SteppingWall(NIGHT)
    loop, clock, heard = _loop(tmp_path, wall, {("decision", "shot_grace"): "60"})
    try:
        shot = dict(shotid="HAND01", obs_number=5, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                    exptimes=[10, 10, 10])
        loop.handle_event(_event("ocd.run_shot.run", NIGHT, UrlKind.RUN_SHOT, exec_status=0,
                                 **shot))
        clock.advance(0)
        wall.now += 7200  # the wall clock jumps two hours ahead
        clock.advance(30)
        loop.tick()
        assert loop.shot.state == "running" and not loop.failed_shot
        clock.advance(61)  # past 30 s of exposures + 60 s grace, for real
        loop.tick()
        assert loop.failed_shot and loop.shot.state == "idle"
    finally:
        stopped(loop)


def test_use_monotonic_clock_keeps_pending_delays():
    from twisted.internet.selectreactor import SelectReactor

    from ocd.app import use_monotonic_clock

    reactor = SelectReactor()  # a reactor of its own, never run
    earlier = reactor.callLater(10, lambda: None)
    use_monotonic_clock(reactor)
    assert reactor.seconds is time.monotonic
    assert abs(earlier.getTime() - time.monotonic() - 10) < 1
    later = reactor.callLater(5, lambda: None)
    assert abs(later.getTime() - time.monotonic() - 5) < 1
    assert reactor.getDelayedCalls()[0].getTime() < time.monotonic() + 11
    for call in (earlier, later):
        call.cancel()
    use_monotonic_clock(reactor)  # twice is harmless


def test_ocd_run_measures_on_the_monotonic_clock(child_env, tmp_path):
    """``ocd run`` switches the global reactor before anything is scheduled."""
    code = (
        "import os, time, sys\n"
        "from twisted.internet import reactor\n"
        "import ocd.commands\n"
        # build and start the tree as ocd run does, then report, without running
        "ocd.commands.react = lambda work: (work(reactor), "
        "print(reactor.seconds is time.monotonic, flush=True), os._exit(0))\n"
        "import ocd.commands.run as run\n"
        "from ocd.config import Config\n"
        f"cfg = Config.load(None, [('urls', u, 'ipc://{tmp_path}/' + u) for u in "
        "('event_urls', 'ocd_main_loop', 'ocd_allow_hetdex', 'ocd_config')] + "
        f"[('urls', 'ocd_run_shot', 'ipc://{tmp_path}/a ipc://{tmp_path}/b'), "
        f"('shots', 'state_db', '{tmp_path}/s.sqlite'), "
        f"('database', 'sqlite_file', '{tmp_path}/o.sqlite')])\n"
        "run.main(None, cfg)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "True", done.stdout + done.stderr
