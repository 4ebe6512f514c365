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
