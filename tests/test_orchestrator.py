"""The orchestrator on a Clock: decisions reported, shots lost or failed, obsnum down.

No sockets and no child processes here: events are handed to
``handle_event`` as the subscriber would, and what OCD says is read from
the listeners of ``publish`` (the one place every outgoing event passes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from bus_helpers import NIGHT, clock_loop_config
from bus_helpers import control_event as control
from bus_helpers import good_sky_now as good_sky
from bus_helpers import tcs_event as tcs
from ocd.config import Config
from ocd.core.events import UrlKind
from ocd.services.obsnum import ObsnumUnavailable
from ocd.services.orchestrator import Orchestrator, track_azimuth

class UnreachableObsnum:
    """Stands in for ObsnumPool when the database is down (same interface)."""

    REASON = "MySQL server 127.0.0.1:1, database ocd, user root: Can't connect (MySQL error 2003)"

    def __init__(self) -> None:
        self.tries = 0
        self.available = True
        self.last_error: str | None = None

    def reserve(self, shotid: str) -> defer.Deferred:
        self.tries += 1
        self.available, self.last_error = False, self.REASON
        return defer.fail(ObsnumUnavailable(self.REASON))

    def check(self) -> defer.Deferred:
        self.tries += 1
        return defer.succeed(False)


def test_fake_obsnum_matches_the_real_interface():
    import inspect

    from ocd.services.obsnum import ObsnumPool

    for name in ("reserve", "check"):
        real = inspect.signature(getattr(ObsnumPool, name))
        fake = inspect.signature(getattr(UnreachableObsnum, name))
        assert list(real.parameters) == list(fake.parameters)
    pool = ObsnumPool(Config.load(), Clock())
    assert (pool.available, pool.last_error) == (True, None)


@pytest.fixture
def make_loop(tmp_path: Path):
    loops = []

    def make(obsnum=None, shots: int = 6, options: dict | None = None) -> tuple[Orchestrator, Clock, list]:
        config = clock_loop_config(tmp_path, shots, options=options)
        clock = Clock()
        clock.advance(1000)
        loop = Orchestrator(config, clock, obsnum=obsnum)
        heard: list = []
        loop.listeners.append(heard.append)
        loop.startService()
        loops.append(loop)
        return loop, clock, heard

    yield make
    for loop in loops:
        if loop.running:
            stopped = loop.stopService()
            assert stopped.called  # on the Clock nothing is left to wait for


def decisions(heard: list) -> list[dict]:
    return [dict(e.payload) for e in heard if e.topic == "ocd.decision.made"]


def changes(heard: list, machine: str) -> list[dict]:
    return [dict(e.payload) for e in heard
            if e.topic == "ocd.states.change" and e.payload["machine_name"] == machine]


def test_not_allowed_at_start_and_blockers_reported_in_order(make_loop):
    loop, clock, heard = make_loop()
    good_sky(loop, clock, NIGHT)
    last = decisions(heard)[-1]
    assert last["verdict"] == "wait"
    assert last["blockers"][0] == "not_allowed"
    assert "shutter_closed" not in last["blockers"]
    assert last["now"] == NIGHT


def test_decision_published_on_change_and_every_report_interval(make_loop):
    loop, clock, heard = make_loop(options={("decision", "report_interval"): "60"})
    good_sky(loop, clock, NIGHT)
    count = len(decisions(heard))
    for i in range(1, 30):  # unchanged answer, 30 s of reactor time
        clock.advance(1)
        loop.handle_event(tcs("tcs.receiver.heartbeat", NIGHT + i))
        clock.advance(0)
    assert len(decisions(heard)) == count
    loop.handle_event(tcs("legacy.shutter.status", NIGHT + 31, state="closed"))
    clock.advance(0)
    assert "shutter_closed" in decisions(heard)[-1]["blockers"]
    count = len(decisions(heard))
    for i in range(31, 100):
        clock.advance(1)
        loop.handle_event(tcs("tcs.receiver.heartbeat", NIGHT + i))
        clock.advance(0)
    assert len(decisions(heard)) == count + 1  # the periodic report


def test_tcs_silence_noticed_on_the_reactor_clock(make_loop):
    loop, clock, heard = make_loop(options={("decision", "tcs_timeout"): "30",
                                      ("decision", "decide_interval"): "5"})
    good_sky(loop, clock, NIGHT)
    assert "tcs_silent" not in decisions(heard)[-1]["blockers"]
    clock.advance(31)
    loop.tick()
    assert "tcs_silent" in decisions(heard)[-1]["blockers"]


def test_allow_then_obsnum_unavailable_blocks_and_retries(make_loop):
    obsnum = UnreachableObsnum()
    loop, clock, heard = make_loop(obsnum=obsnum, options={("dates", "mock_time"): str(NIGHT)})
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id="a1"))
    good_sky(loop, clock, NIGHT)
    # the seeded sample night has shots in the band at NIGHT: a reservation is tried
    assert obsnum.tries > 0, decisions(heard)[-1]
    assert "obsnum_unavailable" in decisions(heard)[-1]["blockers"]
    assert decisions(heard)[-1]["details"]["obsnum_unavailable"] == UnreachableObsnum.REASON
    assert loop.shot.state == "idle"
    tries = obsnum.tries
    clock.advance(1)
    loop.handle_event(tcs("tcs.receiver.heartbeat", NIGHT + 1))
    clock.advance(0)
    assert obsnum.tries == tries  # events do not hammer a dead database
    loop.tick()
    assert obsnum.tries == tries + 1  # the timer retries
    assert loop.running


def run_shot_event(exec_status: int, **extra) -> object:
    fields = dict(shotid="HAND01", obs_number=77, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                  exptimes=[10, 10, 10], exec_status=exec_status, **extra)
    return control(UrlKind.RUN_SHOT, "ocd.run_shot.run", **fields)


def test_shot_by_hand_blocks_and_is_declared_lost(make_loop):
    loop, clock, heard = make_loop(options={("decision", "shot_grace"): "60"})
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id="a1"))
    loop.handle_event(run_shot_event(0))
    clock.advance(0)
    assert loop.shot.state == "running"
    assert "shot_running" in decisions(heard)[-1]["blockers"]
    clock.advance(89)
    loop.tick()
    assert loop.shot.state == "running"
    clock.advance(2)  # 30 s of exposures + 60 s grace
    loop.tick()  # lost shots are found on the timer
    assert changes(heard, "run_shot")[-1]["msg"] == "lost"
    assert loop.failed_shot
    assert loop.arming.state == "not_allowed"
    assert changes(heard, "hetdex_allowed")[-1]["transition"] == "self_disarm"
    # a person re-arms: failed_shot cleared
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id="a2"))
    clock.advance(0)
    assert not loop.failed_shot
    answer = [e for e in heard if e.topic == "ocd.states.hetdex_allowed_changed"][-1]
    assert "failed_shot cleared" in answer["reason"]


def test_failed_shot_by_hand_disarms(make_loop):
    loop, clock, heard = make_loop()
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id="a1"))
    loop.handle_event(run_shot_event(0))
    loop.handle_event(run_shot_event(1, error=True, exc_type="ProcessFailed",
                                     exc_value="syscmd exited 1", traceback=""))
    clock.advance(0)
    assert loop.shot.state == "idle"
    assert loop.failed_shot
    assert "failed_shot" in decisions(heard)[-1]["blockers"]
    clock.advance(10_000)  # no lost timer left behind
    assert [c["msg"] for c in changes(heard, "run_shot")].count("lost") == 0


def test_rejected_shot_file_keeps_the_last_good_list_and_loop_alive(make_loop, tmp_path):
    loop, clock, heard = make_loop()
    before = loop.scheduler.shots
    (tmp_path / "shots.txt").write_text("DEX1 not-a-number 10 2 1 1 -1\n")
    loop.tick()
    good_sky(loop, clock, NIGHT)
    assert loop.scheduler.shots == before and before  # shots.md section 1
    assert loop.counters.get("shot_file.rejected") == 1
    assert decisions(heard)[-1]["blockers"]  # still deciding


def test_track_azimuth_east_and_west():
    east = track_azimuth(56.1464, 0)
    west = track_azimuth(56.1464, 1)
    assert 0 < east < 180
    assert west == pytest.approx(360 - east)


class PendingObsnum:
    """Stands in for ObsnumPool while a reservation is still in flight."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred] = []
        self.available = True
        self.last_error: str | None = None

    def check(self) -> defer.Deferred:
        return defer.succeed(True)

    def reserve(self, shotid: str) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d


def starts(heard: list) -> list[dict]:
    return [dict(e.payload) for e in heard
            if e.topic == "ocd.run_shot.run" and e.payload["exec_status"] == 0]


def armed_with_a_pending_reservation(make_loop):
    obsnum = PendingObsnum()
    loop, clock, heard = make_loop(obsnum=obsnum, options={("dates", "mock_time"): str(NIGHT)})
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id="a1"))
    good_sky(loop, clock, NIGHT)
    # the seeded sample night has shots in the band at NIGHT: a reservation is made
    assert obsnum.pending, decisions(heard)[-1]
    assert loop.shot.state == "running"  # marked at once, before the number
    return loop, clock, heard, obsnum


def test_disarmed_while_the_number_is_reserved_starts_nothing(make_loop):
    loop, clock, heard, obsnum = armed_with_a_pending_reservation(make_loop)
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=False, id="a2"))
    obsnum.pending[0].callback(41)
    clock.advance(0)
    assert starts(heard) == [] and loop.own_shot is None
    assert loop.shot.state == "idle"
    assert "not started: shots are no longer allowed" in changes(heard, "run_shot")[-1]["msg"]


def test_stopping_while_the_number_is_reserved_starts_nothing(make_loop):
    loop, clock, heard, obsnum = armed_with_a_pending_reservation(make_loop)
    stopped = loop.stopService()
    assert not stopped.called  # waits for the reservation
    obsnum.pending[0].callback(41)
    assert stopped.called
    assert starts(heard) == [] and loop.own_shot is None


def test_two_shots_by_hand_the_first_finish_keeps_shot_running(make_loop):
    loop, clock, heard = make_loop()
    loop.handle_event(run_shot_event(0))
    second = dict(shotid="HAND02", obs_number=78, ra=2.0, dec=25.0, azimuth=50.0, track=1,
                  exptimes=[10, 10, 10])
    # its run START was lost (slow joiner): an exp_hetdex START still counts
    loop.handle_event(control(UrlKind.RUN_SHOT, "ocd.run_shot.exp_hetdex", exec_status=0,
                              exposure=1, **second))
    loop.handle_event(run_shot_event(1, error=False))
    clock.advance(0)
    assert loop.shot.state == "running"
    assert "shot_running" in decisions(heard)[-1]["blockers"]
    loop.handle_event(control(UrlKind.RUN_SHOT, "ocd.run_shot.run", exec_status=1, error=False,
                              **second))
    clock.advance(0)
    assert loop.shot.state == "idle"
    assert "shot_running" not in decisions(heard)[-1]["blockers"]


def test_a_finish_after_lost_is_ignored(make_loop):
    loop, clock, heard = make_loop(options={("decision", "shot_grace"): "60"})
    shotid = loop.scheduler.shots[0].shotid
    before = loop.store.remaining(shotid)
    fields = dict(shotid=shotid, obs_number=90, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                  exptimes=[10, 10, 10])
    loop.handle_event(control(UrlKind.RUN_SHOT, "ocd.run_shot.run", exec_status=0, **fields))
    clock.advance(100)
    loop.tick()
    assert changes(heard, "run_shot")[-1]["msg"] == "lost" and loop.failed_shot
    loop.handle_event(control(UrlKind.RUN_SHOT, "ocd.run_shot.run", exec_status=1, error=False,
                              **fields))
    clock.advance(0)
    assert loop.store.remaining(shotid) == before
