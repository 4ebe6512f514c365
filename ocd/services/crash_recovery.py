"""The process group of a shot that was running when OCD died, ended for sure.

When OCD starts and its state database says a shot was running, OCD died
during it (shots.md section 3): the orchestrator counts that shot as failed
and disarms. What may still run of it (a dither that ignores TERM) would
expose under the next shot, so its recorded process group, if it is still
the same group (its leader's start time and the boot id match the record),
gets TERM, then KILL after ``[run_shot] kill_grace``, and is checked to be
empty (:func:`ocd.protocols.process_groups.end_group`). Until nothing of it
is left, ``ocd allow_hetdex start`` is refused, naming the pids; then the
record is cleared.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ocd.core.counters import Counters
from ocd.protocols.process_groups import GroupIdentity, check_ours, end_group
from ocd.services.shot_store import ShotStore, StateDbError


class CrashRecovery:
    """Ends the recorded process group of a crashed shot; says why arming must wait."""

    log = Logger(namespace="ocd.crash_recovery")

    def __init__(self, store: ShotStore, reactor: IReactorTime, kill_grace: float,
                 alert: Callable[..., None], counters: Counters):
        self.store = store
        self.reactor = reactor
        self.kill_grace = kill_grace
        self.alert = alert
        self.counters = counters
        #: The crashed shot's process group while any of it may be alive.
        self.leftover: GroupIdentity | None = None
        self.leftover_shot = ""
        #: Fires once the group has been ended (or found gone); None when idle.
        self.ending: defer.Deferred | None = None

    def end_group_of(self, record: dict[str, Any]) -> None:
        """End the process group recorded with the crashed shot ``record``."""
        pgid = record.get("pgid")
        if not pgid:
            self.store.clear_running()
            return
        self.leftover = GroupIdentity(int(pgid), record.get("pgid_start"), record.get("boot_id"))
        self.leftover_shot = f"shot {record['shotid']} (observation {record['obs_number']})"
        self.counters.increment("crash_recovery.groups")
        d = end_group(self.leftover, self.reactor, self.kill_grace)
        d.addCallback(self._ended)
        d.addErrback(lambda failure: self.log.failure("crash recovery failed", failure))
        self.ending = d

    def _ended(self, left: list[int]) -> None:
        self.ending = None
        if left:
            self.counters.increment("crash_recovery.survivors")
            self.alert(f"OCD: processes {' '.join(map(str, left))} of the crashed "
                       f"{self.leftover_shot} are still alive after KILL; shots stay blocked "
                       "until they are gone", kind="crash_recovery")
            return
        self.leftover = None
        try:
            self.store.clear_running()
        except StateDbError as exc:
            self.log.error("{error}", error=str(exc))

    def refusal(self) -> str | None:
        """Why ``ocd allow_hetdex start`` must be refused now, or None.

        Anything of the crashed shot's process group still alive (looked up
        again at each request) would expose under the next shot.
        """
        if self.leftover is None:
            return None
        pids, _why = check_ours(self.leftover)
        if not pids:
            return None
        return (f"processes {' '.join(map(str, pids))} of the crashed {self.leftover_shot} "
                f"(process group {self.leftover.pgid}) are still alive")
