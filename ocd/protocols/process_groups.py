"""Process groups left behind by a crash of OCD, and how to end them safely.

Every child of a shot runs in its own process group (:mod:`ocd.protocols.process`),
and before each one starts the shot runner records its
group id in ``[shots] state_db``. When OCD dies during a shot (SIGKILL, power
of the machine, a bug) that group may still be exposing: the next ``ocd
run`` must end it before it starts anything, and must be sure the group is
the one it recorded.

A process id alone says nothing after a reboot or once the id has been
handed out again, so the record also holds the group leader's *start time*
(field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) and the
machine's *boot id* (``/proc/sys/kernel/random/boot_id``). A group is ours
only when the boot id is the same and its leader still has the recorded
start time; when the leader itself is gone but members of its group remain,
they are ours when each started at or after the recorded start time (Linux
does not give a new process an id that is still in use as a group id). A
group that is not ours is never signalled.

Ending it is TERM to the group, a wait of ``grace`` seconds, KILL, and a
check that no member is left (zombies, which hold nothing but their entry
in the process table, do not count). Linux only: elsewhere nothing is
recorded and nothing is signalled.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger(namespace="ocd.process_groups")

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
PROC = "/proc"
#: How often the members of a group are looked up while waiting for it to end.
POLL = 0.05
#: After KILL, how long to wait for the members to disappear.
KILL_WAIT = 2.0


@dataclass(frozen=True)
class ProcStat:
    """What OCD needs of ``/proc/<pid>/stat``."""

    pid: int
    state: str
    pgid: int
    start_time: int  # clock ticks after boot


def read_stat(pid: int, proc: str = PROC) -> ProcStat | None:
    """The stat of ``pid``, or None when there is no such process."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    try:
        return ProcStat(pid=pid, state=rest[0], pgid=int(rest[2]), start_time=int(rest[19]))
    except (IndexError, ValueError):
        return None


def boot_id(path: str = BOOT_ID_FILE) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class GroupIdentity:
    """A process group as recorded before its leader ran: id, leader start, boot."""

    pgid: int
    start_time: int | None
    boot_id: str | None

    @classmethod
    def of_leader(cls, pid: int) -> "GroupIdentity":
        """The identity of the group whose leader is ``pid`` (right after it started)."""
        stat = read_stat(pid)
        return cls(pgid=pid, start_time=None if stat is None else stat.start_time,
                   boot_id=boot_id())


def group_members(pgid: int, proc: str = PROC) -> list[ProcStat]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    members = []
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        stat = read_stat(int(name), proc)
        if stat is not None and stat.pgid == pgid and stat.state != "Z":
            members.append(stat)
    return sorted(members, key=lambda s: s.pid)


def check_ours(identity: GroupIdentity) -> tuple[list[int], str]:
    """The pids of ``identity``'s group still alive if it is ours, and why (or why not).

    Returns ``([], reason)`` when nothing of it is left or when the group
    with that id now is not the recorded one (so it must not be signalled).
    """
    if identity.pgid <= 1:
        return [], f"process group {identity.pgid} is not a group OCD can have started"
    if identity.start_time is None or identity.boot_id is None:
        return [], (f"process group {identity.pgid} was recorded without its start time "
                    "and boot id: not signalled")
    now_boot = boot_id()
    if now_boot != identity.boot_id:
        return [], (f"process group {identity.pgid} was recorded before a reboot "
                    f"(boot id {identity.boot_id}, now {now_boot}): not ours, not signalled")
    members = group_members(identity.pgid)
    if not members:
        return [], f"nothing is left of process group {identity.pgid}"
    leader = next((m for m in members if m.pid == identity.pgid), None)
    if leader is not None:
        if leader.start_time != identity.start_time:
            return [], (f"process {identity.pgid} started at tick {leader.start_time}, not at "
                        f"the recorded {identity.start_time}: another process reuses the id; "
                        "not signalled")
    elif any(m.start_time < identity.start_time for m in members):
        return [], (f"process group {identity.pgid} has members older than its recorded "
                    "leader: not ours, not signalled")
    return [m.pid for m in members], f"process group {identity.pgid} is the recorded one"


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        log.error("cannot signal process group {pgid}: {exc}", pgid=pgid, exc=exc)


@defer.inlineCallbacks
def end_group(identity: GroupIdentity, reactor: Any, grace: float) -> Any:
    """TERM, wait ``grace`` s, KILL, check; fires with the pids still alive (``[]`` = done).

    Never signals a group that :func:`check_ours` does not recognise (it
    then fires with ``[]``: nothing of ours is left).
    """
    pids, why = check_ours(identity)
    if not pids:
        log.info("crash recovery: {why}", why=why)
        return []
    log.warn("crash recovery: process group {pgid} ({pids}) of the crashed shot still runs: "
             "sending TERM", pgid=identity.pgid, pids=" ".join(map(str, pids)))
    _signal(identity.pgid, signal.SIGTERM)
    left = yield _wait_gone(identity, reactor, grace)
    if left:
        log.warn("crash recovery: process group {pgid} ({pids}) still there {grace} s after "
                 "TERM: sending KILL", pgid=identity.pgid, pids=" ".join(map(str, left)),
                 grace=grace)
        _signal(identity.pgid, signal.SIGKILL)
        left = yield _wait_gone(identity, reactor, KILL_WAIT)
    if left:
        log.error("crash recovery: process group {pgid} still has {pids} after KILL",
                  pgid=identity.pgid, pids=" ".join(map(str, left)))
    else:
        log.info("crash recovery: process group {pgid} ended; none of its processes is left",
                 pgid=identity.pgid)
    return left


@defer.inlineCallbacks
def _wait_gone(identity: GroupIdentity, reactor: Any, limit: float) -> Any:
    deadline = reactor.seconds() + limit
    while True:
        left, _why = check_ours(identity)
        if not left or reactor.seconds() >= deadline:
            return left
        yield task.deferLater(reactor, POLL, lambda: None)
