"""Fault: forged shot events on an ``ocd_run_shot`` URL (issue 12, section 3).

Two FINISH events with no START set a shot's remaining count from 2 to 0;
a START with NaN exposure times held ``shot_running`` for good; 300 forged
failed shots ran the alert command 300 times. Now a FINISH that matches no
START changes nothing (counted as refused), an invalid START is malformed,
and alerts are limited to one per kind per ``[general] alert_every`` with
the count of what was held back. Real sockets: the forger is a ZeroMQ
client of OCD's own control protocol; the alert command is a real process.
"""

from __future__ import annotations

import shlex
import sys

import pytest
import pytest_twisted

from bus_helpers import make_config, sleep, wait_until
from faults_helpers import arm
from conftest import stopped_on_reactor

pytestmark = pytest.mark.integration

LINE = ("DEX00001 12.401733 56.1464 2 1 2 -1 89 HET18-2-100 HS0015_E 000 10:55:31.00 "
        "+51:07:40.44 2000 0.0 0.0 2000\n")
SHOT = dict(shotid="DEX00001", obs_number=5001, ra=12.401733, dec=56.1464, azimuth=40.0,
            track=0, exptimes=[360, 360, 360])


@pytest.fixture
def ocd(free_url, tmp_path):
    from twisted.internet import reactor

    from ocd.app import makeService

    (tmp_path / "shots.txt").write_text(LINE)
    script = tmp_path / "alert.py"
    script.write_text("import sys\nwith open(sys.argv[1], 'a') as f:\n"
                      "    f.write(sys.argv[2] + '\\n')\n")
    config = make_config(
        free_url,
        shots__shot_file=str(tmp_path / "shots.txt"),
        shots__state_db=str(tmp_path / "state.sqlite"),
        general__alert_command=f"{shlex.quote(sys.executable)} {script} {tmp_path / 'alerts'}",
        general__alert_every="2",
        decision__decide_interval="0.2",
    )
    service = makeService(config, reactor)
    service.startService()
    yield service, config, tmp_path / "alerts"
    stopped_on_reactor(service)


@pytest.fixture
def forger(ocd):
    from ocd.protocols.control import ControlClient
    from ocd.protocols.zmq import Bus

    _service, config, _ = ocd
    bus = Bus()
    bus.open()
    client = ControlClient(bus, [config.get_urls("urls", "ocd_run_shot")[1]],
                           config.get_urls("urls", "ocd_main_loop"))
    yield client
    client.close()
    bus.close()


def remaining(loop) -> int:
    return {s.shotid: s.n_obs for s in loop.scheduler.shots}["DEX00001"]


@pytest_twisted.inlineCallbacks
def test_finish_without_start_and_invalid_starts_change_nothing(ocd, forger):
    service, _config, _alerts = ocd
    loop = service.getServiceNamed("main_loop")
    assert (yield forger.handshake(5.0, 0.1))
    assert remaining(loop) == 2
    for _ in range(2):
        forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=1, error=False))
    forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=0, exptimes=[float("nan")] * 3))
    forger.emit("ocd.run_shot.exp_hetdex", dict(SHOT, exec_status=0, exptimes=[-5, -5, -5]))
    forger.emit("ocd.run_shot.run", {k: v for k, v in SHOT.items() if k != "shotid"}
                | {"exec_status": 0})
    forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=0, shotid=""))
    forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=0, shotid=["DEX00001"]))
    counters = loop.counters

    def malformed() -> int:  # a wrong type is caught when the frame is parsed
        # NaN is not JSON (RFC 8259): the decoder refuses that START as bad_json.
        return sum(counters.get(f"malformed.{kind}")
                   for kind in ("invalid_shot", "bad_field", "bad_json"))

    assert (yield wait_until(lambda: malformed() == 5, 5.0)), counters
    assert counters.get("malformed.invalid_shot") >= 3
    assert counters.get("run_shot.refused") == 2
    assert remaining(loop) == 2
    assert loop.store.remaining("DEX00001") == 2
    assert loop.shot.state == "idle" and not loop.shots.busy
    # A real START then FINISH still counts.
    forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=0))
    assert (yield wait_until(lambda: loop.shot.state == "running", 5.0))
    forger.emit("ocd.run_shot.run", dict(SHOT, exec_status=1, error=False))
    assert (yield wait_until(lambda: remaining(loop) == 1, 5.0))


@pytest.mark.slow(3)
@pytest_twisted.inlineCallbacks
def test_three_hundred_forged_failed_shots_make_one_alert_and_a_summary(ocd, forger):
    service, _config, alerts = ocd
    loop = service.getServiceNamed("main_loop")
    assert (yield forger.handshake(5.0, 0.1))
    arm(loop)
    for n in range(300):
        shot = dict(SHOT, obs_number=6000 + n)
        forger.emit("ocd.run_shot.run", dict(shot, exec_status=0))
        forger.emit("ocd.run_shot.run", dict(shot, exec_status=1, error=True,
                                             exc_type="X", exc_value=f"forged {n}", traceback=""))
    counters = loop.counters
    assert (yield wait_until(lambda: counters.get("shots.failed") == 300, 10.0))
    assert loop.arming.state == "not_allowed"
    yield sleep(0.5)
    sent = alerts.read_text().splitlines() if alerts.exists() else []
    failed = [a for a in sent if "failed" in a and "disarmed" not in a]
    assert len(failed) == 1, sent  # not 300
    assert counters.get("alerts.held_back") == 299
    # Once alert_every (2 s) has passed, one summary says what was held back.
    assert (yield wait_until(lambda: any("299 failed_shot alert(s) held back" in a for a in
                                         alerts.read_text().splitlines()), 6.0))
    sent = alerts.read_text().splitlines()
    assert len(sent) <= 3, sent  # failed shot, disarm, summary
    assert "forged 299" in sent[-1]
