"""Fault: crash recovery that did not really end the old shot (issue 12, section 2).

After a SIGKILL of OCD during an exposure, the next start sent only TERM to
the recorded process group and did not check: a dither that ignores TERM
kept exposing under the next shot. These tests use real children that
ignore TERM, in their own process groups.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import pytest_twisted

from ocd.protocols.process_groups import GroupIdentity, check_ours, end_group, group_members

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")]

STUBBORN = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n")
# A leader that dies on TERM, leaving a grandchild that ignores it in the group.
PARENT = ("import subprocess, sys, time\n"
          f"child = subprocess.Popen([sys.executable, '-c', {STUBBORN!r}], stdout=sys.stdout)\n"
          "time.sleep(120)\n")


def spawn(code: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.fixture
def cleanup():
    children: list[subprocess.Popen] = []
    yield children
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait(5)


@pytest_twisted.inlineCallbacks
def test_a_group_that_ignores_term_gets_kill_and_nothing_is_left(cleanup):
    from twisted.internet import reactor

    child = spawn(STUBBORN)
    cleanup.append(child)
    identity = GroupIdentity.of_leader(child.pid)
    assert check_ours(identity)[0] == [child.pid]
    started = time.monotonic()
    left = yield end_group(identity, reactor, grace=0.3)
    assert left == []
    assert child.wait(5) == -signal.SIGKILL  # TERM was ignored: it took a KILL
    assert time.monotonic() - started >= 0.3
    assert group_members(identity.pgid) == []


@pytest_twisted.inlineCallbacks
def test_a_grandchild_left_by_its_leader_is_ended_too(cleanup):
    from twisted.internet import reactor

    child = spawn(PARENT)
    cleanup.append(child)
    identity = GroupIdentity.of_leader(child.pid)
    pids, _ = check_ours(identity)
    assert len(pids) == 2 and child.pid in pids
    left = yield end_group(identity, reactor, grace=0.3)
    assert left == []
    assert group_members(identity.pgid) == []


@pytest.mark.parametrize("change", ["start_time", "boot_id"])
@pytest_twisted.inlineCallbacks
def test_a_group_that_is_not_the_recorded_one_is_never_signalled(cleanup, change):
    from twisted.internet import reactor

    child = spawn(STUBBORN.replace("signal.SIG_IGN", "signal.SIG_DFL"))
    cleanup.append(child)
    real = GroupIdentity.of_leader(child.pid)
    if change == "start_time":  # the id was handed out again to another process
        recorded = GroupIdentity(real.pgid, real.start_time - 100, real.boot_id)
        why = "another process reuses the id"
    else:  # recorded before a reboot
        recorded = GroupIdentity(real.pgid, real.start_time, "00000000-dead-beef-0000-000000000000")
        why = "before a reboot"
    pids, reason = check_ours(recorded)
    assert pids == [] and why in reason
    left = yield end_group(recorded, reactor, grace=0.1)
    assert left == []
    assert child.poll() is None  # still running: a process that is not ours is left alone


# -- the whole story with real ``ocd run`` processes ---------------------------


def _dither_pid(calls) -> int | None:
    import json

    if not calls.exists():
        return None
    for line in calls.read_text().splitlines():
        call = json.loads(line)
        if "dither" in call["program"]:
            return int(call["pid"])
    return None


def _running_group(state_db) -> int | None:
    """The process group of the running shot, as recorded (with its start time and boot id)."""
    import sqlite3
    from contextlib import closing

    try:
        with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=1)) as conn:
            row = conn.execute("SELECT pgid FROM running WHERE id = 1 AND pgid_start IS NOT NULL"
                               " AND boot_id IS NOT NULL").fetchone()
    except sqlite3.Error:  # not created yet, or busy: ask again
        return None
    return row[0] if row else None


def _allow(ocd_command, cfg, env):
    from faults_helpers import REPO

    return subprocess.run(ocd_command + ["allow_hetdex", "--config", cfg, "start",
                                         "-n", "30", "-I", "0.3"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.slow(11)
def test_sigkill_during_an_exposure_then_restart_ends_the_dither_that_ignores_term(
        tmp_path, free_url, ocd_command, child_env):
    import zmq

    from bus_helpers import NIGHT, one_shot_standin_config, tcs_frames, write_whole_config
    from faults_helpers import REPO

    config, shots = one_shot_standin_config(
        free_url, tmp_path, NIGHT, run_shot__kill_grace="5",
        general__json_log=str(tmp_path / "second.jsonl"))
    cfg = write_whole_config(config, tmp_path / "site.cfg")
    calls = tmp_path / "standins.jsonl"
    env = dict(child_env, OCD_STANDIN_LOG=str(calls), OCD_STANDIN_SPEEDUP="1000",
               OCD_DITHER_HANG_ON="1", OCD_DITHER_HANG_IGNORE_TERM="1")

    ctx = zmq.Context.instance()
    tcs = ctx.socket(zmq.PUB)
    tcs.setsockopt(zmq.LINGER, 0)
    tcs.bind(config.get_urls("urls", "event_urls")[0])
    first = subprocess.Popen(ocd_command + ["run", "--config", cfg], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = asking = None
    dither = None
    try:
        assert _allow(ocd_command, cfg, env).returncode == 0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and dither is None:
            for topic, fields in (("tcs.receiver.heartbeat", {}),
                                  ("legacy.weather.status", dict(humidity=20, wind_speed=2,
                                                                 ambtemp=4, dewpoint=-9)),
                                  ("legacy.shutter.status", dict(state="open")),
                                  ("pas.Guider1.metrology_data", dict(fwhm=1.1,
                                                                      transparency=0.97,
                                                                      valid=True))):
                tcs.send_multipart(tcs_frames(topic, NIGHT, **fields))
            time.sleep(0.2)
            dither = _dither_pid(calls)
        assert dither is not None, "the exposure never started"
        # OCD dies once the exposure's record (process group, start time, boot id) is written.
        state_db = config.get_path("shots", "state_db")
        deadline = time.monotonic() + 10
        while _running_group(state_db) != dither:
            assert time.monotonic() < deadline, "the running exposure was never recorded"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # OCD dies during the exposure
        first.wait(10)
        assert group_members(dither), "the dither should outlive OCD"

        # The request is on its way (retrying its handshake) before OCD starts
        # again, so it arrives while the dither still ignores the TERM.
        asking = subprocess.Popen(ocd_command + ["allow_hetdex", "--config", cfg, "start",
                                                 "-n", "60", "-I", "0.25"],
                                  env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        second = subprocess.Popen(ocd_command + ["run", "--config", cfg], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = tmp_path / "second.jsonl"
        _out, err = asking.communicate(timeout=60)
        refused = subprocess.CompletedProcess(asking.args, asking.returncode, _out, err)
        assert refused.returncode == 1, refused.stderr  # asked while the dither lived
        assert "refused" in refused.stderr and str(dither) in refused.stderr, refused.stderr
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and group_members(dither):
            time.sleep(0.1)
        assert group_members(dither) == [], "the dither ignored TERM and was never killed"
        deadline = time.monotonic() + 10  # OCD looks again every 50 ms, then logs
        while time.monotonic() < deadline and "none of its processes is left" not in \
                log.read_text():
            time.sleep(0.05)
        text = log.read_text()
        assert "sending TERM" in text and "sending KILL" in text
        assert "none of its processes is left" in text
        armed = _allow(ocd_command, cfg, env)
        assert armed.returncode == 0, armed.stderr
    finally:
        for child in (first, second, asking):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
        if dither is not None:
            try:
                os.killpg(dither, signal.SIGKILL)
            except ProcessLookupError:
                pass
        tcs.close()
