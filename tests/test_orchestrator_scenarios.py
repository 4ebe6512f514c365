"""Whole-shot scenarios of the orchestrator on fakes: milliseconds each.

``ocd run``'s own service tree (control channels, telescope subscriber,
orchestrator, timer) runs on a ``task.Clock`` with a :class:`MemoryBus`
and a :class:`FakeProcessRunner` (tests/fakes.py): events go in through the
subscribers as frames, what OCD says is read off its publishers, and every
child (``syscmd``, ``hetdex-dither.py``, the alert command) has a scripted
outcome. Minutes of exposures and deadlines pass in ``clock.advance``.
A few real nights (sockets, processes, MariaDB) stay in test_e2e_night.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.internet.task import Clock

from fakes import HANG, FakeProcessRunner, MemoryBus, Outcome, fails
from ocd.config import Config
from ocd.core.events import make_event
from ocd.services.channels import ControlChannels, OcdService, TelescopeSubscriber
from ocd.services.obsnum import MAX_CONFLICT_RETRIES, ObsnumPool, ObsnumUnavailable
from ocd.services.orchestrator import Orchestrator
from ocd.services.shot_store import ShotStore
from ocd.sim.shotlist import make_sample_shots, shot_list_text
from ocd.sim.shuffle_files import write_shuffle_files
from conftest import stopped

# A dark moment of the default sample night (2025-02-20, 06:00 UTC).
NIGHT = 1740031200.0
#: Each exposure of the scenarios' shots, in reactor seconds. One minute, not
#: the survey's six: what the scenarios check (order, holds, disarming, a shot
#: declared lost) does not depend on it, and the main loop ticks once a
#: second of it, about 2 ms of this process's CPU a tick (a decision and the
#: programs looked up on PATH): at 360 s these tests took 4.5 s of a worker's CPU.
EXPOSURE = 60.0
URLS = {
    "event_urls": "tcp://tcs.test:1",
    "ocd_main_loop": "tcp://ocd.test:2",
    "ocd_allow_hetdex": "tcp://allow.test:3",
    "ocd_config": "tcp://config.test:4",
    "ocd_run_shot": "tcp://shots.test:5 tcp://hand.test:6",
}


class CountingObsnum:
    """Observation numbers from 1, in memory (what the orchestrator uses of ObsnumPool)."""

    def __init__(self) -> None:
        self.reserved: list[tuple[str, int]] = []
        self.available = True
        self.last_error: str | None = None

    def check(self) -> defer.Deferred[bool]:
        return defer.succeed(True)

    def reserve(self, shotid: str) -> defer.Deferred[int]:
        number = len(self.reserved) + 1
        self.reserved.append((shotid, number))
        return defer.succeed(number)


def test_counting_obsnum_has_what_the_orchestrator_uses_of_the_real_pool():
    import inspect

    for name in ("reserve", "check"):
        real = inspect.signature(getattr(ObsnumPool, name))
        assert list(inspect.signature(getattr(CountingObsnum, name)).parameters) == \
            list(real.parameters)
    pool = ObsnumPool(Config.load(), Clock())
    fake = CountingObsnum()
    assert (fake.available, fake.last_error) == (pool.available, pool.last_error)


class Site:
    """One ``ocd run`` on fakes, with the peers around it (TCS, people, runners)."""

    def __init__(self, tmp_path: Path, script: dict[str, Any] | None = None,
                 options: dict[tuple[str, str], str] | None = None,
                 obsnum: Any = None, before_start: Any = None) -> None:
        sample = make_sample_shots(NIGHT - 3600, NIGHT + 3600, 6, seed=3)
        (tmp_path / "shots.txt").write_text(shot_list_text(sample))
        write_shuffle_files(sample, tmp_path)
        overrides = [("urls", option, value) for option, value in URLS.items()]
        overrides += [
            ("shots", "shot_file", str(tmp_path / "shots.txt")),
            ("shots", "state_db", str(tmp_path / "state.sqlite")),
            ("paths", "shuffle_shot", str(tmp_path)),
            ("dates", "mock_time", str(NIGHT)),
            ("decision", "decide_interval", "1"),
            ("run_shot", "exptimes", f"{EXPOSURE} {EXPOSURE} {EXPOSURE}"),
            # found on PATH (programs_missing otherwise); the fake runner never runs them
            ("run_shot", "syscmd_command", "true {switch} {command}"),
            ("run_shot", "dither_command", "true --exposure {exposure} --exptime {seconds}"),
        ]
        overrides += [(s, o, v) for (s, o), v in (options or {}).items()]
        self.config = config = Config.load(None, overrides)
        if before_start is not None:
            before_start(config)
        self.clock = Clock()
        self.clock.advance(1000)
        self.bus = MemoryBus(self.clock)
        #: A syscmd takes a second, an exposure its exposure time, unless scripted.
        self.processes = FakeProcessRunner(self.clock, script={
            "syscmd": Outcome(after=1.0), "hetdex-dither.py": Outcome(after=EXPOSURE),
            **(script or {})})
        self.obsnum = obsnum if obsnum is not None else CountingObsnum()
        self.loop = Orchestrator(config, self.clock, obsnum=self.obsnum,
                                 processes=self.processes)
        self.root = root = OcdService(self.bus, self.loop)
        ControlChannels(config, self.bus, self.loop).setServiceParent(root)
        TelescopeSubscriber(config, self.bus, self.loop).setServiceParent(root)
        self.loop.setServiceParent(root)
        timer = TimerService(1.0, self.loop.tick)
        timer.clock = self.clock
        timer.setServiceParent(root)
        root.startService()
        # the peers (programs of their own): a TCS, the people's commands, a
        # shot run by hand, a watcher of what OCD says
        peers = self.peers = MemoryBus(self.clock, self.bus.network)
        peers.open()
        self.tcs = peers.publisher(config.get_urls("urls", "event_urls"))
        self.allow_pub = peers.publisher(config.get_urls("urls", "ocd_allow_hetdex"))
        self.hand = peers.publisher(config.get_urls("urls", "ocd_run_shot")[1:])
        self.heard: list[Any] = []
        from ocd.core.events import UrlKind

        peers.subscriber(config.get_urls("urls", "ocd_main_loop")
                            + config.get_urls("urls", "ocd_run_shot")[:1],
                            UrlKind.MAIN_LOOP, ["ocd."], self.heard.append)
        self.advance(0)

    # -- driving ------------------------------------------------------------------------
    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Let ``seconds`` of reactor time pass (timers, children, deliveries)."""
        self.clock.advance(0)
        while seconds > 0:
            self.clock.advance(min(step, seconds))
            seconds -= step
        self.clock.advance(0)

    def send_tcs(self, topic: str, **fields: Any) -> None:
        self.tcs.publish(make_event(topic, fields, NIGHT, NIGHT))

    def good_sky(self) -> None:
        self.send_tcs("tcs.receiver.heartbeat")
        self.send_tcs("legacy.weather.status", humidity=20, wind_speed=3, ambtemp=5,
                      dewpoint=-10)
        self.send_tcs("legacy.shutter.status", state="open")
        self.send_tcs("pas.Guider1.metrology_data", fwhm=1.2, transparency=0.95, valid=True)
        self.advance(0)

    def allow(self, allowed: bool) -> None:
        self.allow_pub.publish(make_event("ocd.states.hetdex_allowed",
                                          {"allow": allowed, "id": f"id{len(self.heard)}"},
                                          NIGHT, NIGHT))
        self.advance(0)

    def hand_shot(self, exec_status: int, **extra: Any) -> None:
        fields = dict(shotid="HAND01", obs_number=77, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                      exptimes=[10, 10, 10], exec_status=exec_status, **extra)
        self.hand.publish(make_event("ocd.run_shot.run", fields, NIGHT, NIGHT))
        self.advance(0)

    # -- reading ------------------------------------------------------------------------
    def said(self, topic: str) -> list[dict]:
        return [dict(e.payload) for e in self.heard if e.topic == topic]

    def runs(self, exec_status: int) -> list[dict]:
        return [p for p in self.said("ocd.run_shot.run") if p["exec_status"] == exec_status]

    def changes(self, machine: str) -> list[dict]:
        return [p for p in self.said("ocd.states.change") if p["machine_name"] == machine]

    def blockers(self) -> list[str]:
        return self.said("ocd.decision.made")[-1]["blockers"]

    def stop(self) -> None:
        d = defer.maybeDeferred(self.root.stopService)
        self.advance(30)
        assert d.called


@pytest.fixture
def site(tmp_path):
    sites: list[Site] = []

    def make(**kwargs: Any) -> Site:
        made = Site(tmp_path, **kwargs)
        sites.append(made)
        return made

    yield make
    for made in sites:
        if made.root.running:
            made.stop()


def started_shot(site: Site) -> dict:
    """Arm OCD under a good sky: the shot it starts (asserted, never skipped)."""
    site.allow(True)
    site.good_sky()
    starts = site.runs(0)
    assert len(starts) == 1, f"no shot started: {site.said('ocd.decision.made')[-1:]}"
    return starts[0]


# -- the scenarios ------------------------------------------------------------------------


def test_a_shot_runs_its_commands_and_counts_down(site):
    ocd = site()
    start = started_shot(ocd)
    before = ocd.loop.store.remaining(start["shotid"])
    ocd.advance(3 * EXPOSURE + 60)
    names = ocd.processes.names()
    assert names[0].startswith("syscmd") and names[-3:] == [
        f"hetdex-dither.py exposure {i}" for i in (1, 2, 3)]
    [finish] = ocd.runs(1)
    assert finish["error"] is False and finish["obs_number"] == start["obs_number"] == 1
    assert ocd.loop.store.remaining(start["shotid"]) == before - 1
    assert ocd.loop.shot.state == "idle"


def test_disarm_during_a_shot_lets_it_finish_and_starts_no_other(site):
    ocd = site()
    start = started_shot(ocd)
    ocd.advance(EXPOSURE / 2)
    ocd.allow(False)
    assert ocd.loop.arming.state == "not_allowed"
    assert ocd.loop.shot.state == "running"  # the running shot goes on
    ocd.advance(3 * EXPOSURE + 60)
    [finish] = ocd.runs(1)
    assert finish["shotid"] == start["shotid"] and finish["error"] is False
    assert len(ocd.runs(0)) == 1  # no other shot started
    assert "not_allowed" in ocd.blockers()
    assert not any(r.stopped for r in ocd.processes.ended)


def test_a_hand_shot_holds_the_main_loop_until_its_finish(site):
    ocd = site()
    ocd.hand_shot(0)
    ocd.allow(True)
    ocd.good_sky()
    ocd.advance(600)
    assert ocd.processes.started == [] and ocd.runs(0) == []  # OCD starts nothing
    assert "shot_running" in ocd.blockers()
    assert ocd.loop.shot.state == "running"
    ocd.hand_shot(1, error=False)
    ocd.good_sky()  # the TCS kept talking meanwhile
    assert len(ocd.runs(0)) == 1  # the main loop goes on once the hand shot ends
    assert ocd.processes.started


def test_own_shot_declared_lost_is_stopped_fails_and_disarms(site):
    ocd = site(script={"hetdex-dither.py": HANG},
               options={("decision", "shot_grace"): "60",
                        ("run_shot", "dither_timeout"): "100000"})
    start = started_shot(ocd)
    ocd.advance(3 * EXPOSURE + 60 - 5)
    assert ocd.loop.shot.state == "running" and not ocd.runs(1)
    ocd.advance(10)  # past sum(exptimes) + shot_grace: the timer declares it lost
    [finish] = ocd.runs(1)
    assert finish["shotid"] == start["shotid"] and finish["error"] is True
    assert ocd.processes.ended[-1].stopped  # its dither was ended, not left running
    assert ocd.changes("run_shot")[-1]["transition"] == "lost"
    assert ocd.changes("hetdex_allowed")[-1]["transition"] == "self_disarm"
    assert ocd.loop.failed_shot and not ocd.processes.running
    ocd.advance(10)
    assert "failed_shot" in ocd.blockers()


def test_a_failing_syscmd_fails_the_shot_and_disarms(site):
    ocd = site(script={"syscmd": fails(1, stderr="no such probe")})
    started_shot(ocd)
    [finish] = ocd.runs(1)
    assert finish["error"] is True and "no such probe" in finish["exc_value"]
    assert ocd.loop.failed_shot and ocd.loop.arming.state == "not_allowed"
    assert [n for n in ocd.processes.names() if n.startswith("hetdex")] == []


def test_alert_command_runs_with_the_message_and_is_ended_at_its_timeout(site):
    from ocd.services.alerter import ALERT_TIMEOUT

    ocd = site(script={"alert_command": HANG},
               options={("general", "alert_command"): "notify-operator --urgent"})
    ocd.hand_shot(0)
    ocd.hand_shot(1, error=True, exc_type="ProcessFailed", exc_value="syscmd exited 1",
                  traceback="")
    alerts = [c for c in ocd.processes.started if c.name == "alert_command"]
    assert [c.argv[:2] for c in alerts] == [("notify-operator", "--urgent")] * len(alerts)
    assert any("HAND01" in c.argv[2] and "syscmd exited 1" in c.argv[2] for c in alerts)
    assert all(c.timeout == ALERT_TIMEOUT for c in alerts)
    ocd.advance(ALERT_TIMEOUT + 1)
    ended = [r for r in ocd.processes.ended if r.name == "alert_command"]
    assert len(ended) == len(alerts) and all(r.timed_out for r in ended)
    assert ocd.loop.running and ocd.loop.failed_shot


def test_crash_during_a_shot_is_recovered_at_start(site):
    def crashed(config: Config) -> None:
        store = ShotStore(config.get_path("shots", "state_db"))
        store.record_running("DEX00002", 41, "exp_hetdex 2")
        store.close()

    ocd = site(before_start=crashed,
               options={("general", "alert_command"): "notify-operator"})
    assert ocd.loop.failed_shot
    assert ocd.loop.store.running() is None  # the record is cleared once handled
    [alert] = [c for c in ocd.processes.started if c.name == "alert_command"]
    assert "DEX00002" in alert.argv[1] and "exp_hetdex 2" in alert.argv[1]
    ocd.allow(True)  # a person re-arms after checking: failed_shot cleared
    ocd.good_sky()
    assert not ocd.loop.failed_shot and len(ocd.runs(0)) == 1


class AlwaysConflicting:
    """An adbapi pool whose every insert loses to another writer."""

    def __init__(self) -> None:
        self.attempts = 0

    def runWithConnection(self, func: Any, *args: Any) -> defer.Deferred:
        self.attempts += 1
        return defer.fail(sqlite3.IntegrityError("UNIQUE constraint failed: vl_obsnum.obsnum"))

    def close(self) -> None:
        pass


class ConflictingObsnumPool(ObsnumPool):
    def _make_pool(self) -> Any:
        self.fake_pool = AlwaysConflicting()
        return self.fake_pool


def test_obsnum_conflict_retries_exhausted_blocks_and_the_loop_lives(site, tmp_path):
    options = {("database", "backend"): "sqlite",
               ("database", "sqlite_file"): str(tmp_path / "obsnum.sqlite")}
    config = Config.load(None, [(s, o, v) for (s, o), v in options.items()])
    clock = Clock()
    pool = ConflictingObsnumPool(config, clock)
    pool.startService()
    failures: list[Any] = []
    before = pool.fake_pool.attempts  # the check at start met the same conflicts
    pool.reserve("DEX00001").addErrback(failures.append)
    assert failures and failures[0].check(ObsnumUnavailable)
    assert pool.fake_pool.attempts - before == MAX_CONFLICT_RETRIES + 1
    assert not pool.available and "IntegrityError" in pool.last_error
    # the orchestrator over such a pool: a blocker, no shot, retried on the timer
    ocd = site(obsnum=pool)
    ocd.allow(True)
    ocd.good_sky()
    assert ocd.blockers() == ["obsnum_unavailable"] and not ocd.runs(0)
    tries = pool.fake_pool.attempts
    ocd.advance(1)
    assert pool.fake_pool.attempts > tries and ocd.loop.running
    assert ocd.loop.shot.state == "idle"
    stopped(pool)


def test_a_malformed_frame_on_the_memory_bus_is_counted_not_fatal(site):
    ocd = site()
    ocd.tcs.publish_raw([b"tcs.receiver.heartbeat", b"{not json"])
    ocd.advance(0)
    assert ocd.loop.counters.get("malformed.bad_json") == 1
    ocd.good_sky()
    assert ocd.said("ocd.decision.made")


def test_stop_during_a_shot_ends_it_and_finish_goes_out_first(site):
    ocd = site(script={"hetdex-dither.py": HANG},
               options={("run_shot", "dither_timeout"): "100000"})
    started_shot(ocd)
    ocd.advance(10)
    stopped = defer.maybeDeferred(ocd.root.stopService)
    ocd.advance(1)
    assert stopped.called
    [finish] = ocd.runs(1)
    assert finish["error"] is True
    assert not ocd.processes.running
