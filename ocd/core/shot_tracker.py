"""Which shots are running, whoever runs them, and which are lost.

``shot_running`` must hold while *any* shot runs: OCD's own, one started by
hand with ``ocd run_shot -e``, even two at once. One idle/running flag
cannot say that (the first FINISH would clear it while the other shot still
runs), so each shot is tracked by its ``(shotid, obs_number)`` with its own
deadline: ``sum(exptimes) + [decision] shot_grace`` after its START. A shot
past its deadline is *lost* (it counts as failed); a FINISH that arrives
after that is ignored.

Pure: times come in as arguments (the reactor's clock), nothing is
scheduled here; the main loop asks :meth:`ShotTracker.expire` on its timer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable

#: The longest exposure a START may announce (the bound of ``[run_shot] exptimes``).
MAX_EXPTIME = 86400.0

Key = tuple[Any, Any]


@dataclass(frozen=True)
class TrackedShot:
    key: Key
    started: float  # reactor time of its START
    deadline: float  # reactor time after which it is lost
    own: bool  # started by this OCD


class ShotTracker:
    """See the module doc. ``starting`` covers OCD's shot before its START."""

    def __init__(self) -> None:
        self.running: dict[Hashable, TrackedShot] = {}
        self.lost: set[Hashable] = set()
        self.starting = False

    @property
    def busy(self) -> bool:
        """Is a shot running or being started (the ``shot_running`` blocker)?"""
        return self.starting or bool(self.running)

    @property
    def own_running(self) -> TrackedShot | None:
        return next((s for s in self.running.values() if s.own), None)

    def start(self, key: Key, now: float, budget: float, own: bool = False) -> bool:
        """A shot started; False when it was already known (or already lost)."""
        if key in self.running or key in self.lost:
            return False
        self.running[key] = TrackedShot(key, now, now + budget, own)
        return True

    def finish(self, key: Key) -> TrackedShot | None:
        """A shot ended; None when it was not running (unknown, or lost before)."""
        return self.running.pop(key, None)

    def expire(self, now: float) -> list[TrackedShot]:
        """Shots past their deadline, newly lost.

        Another runner's lost shot stops counting as running at once; OCD's
        own stays until its programs have been stopped and its outcome is in.
        """
        lost = [s for s in self.running.values() if now > s.deadline and s.key not in self.lost]
        for shot in lost:
            self.lost.add(shot.key)
            if not shot.own:
                del self.running[shot.key]
        return lost


def invalid_shot_event(fields: Any, start: bool) -> str | None:
    """Why an ``ocd.run_shot.*`` event cannot be a shot's event, or None (events.md 3.4).

    Every such event names its shot with a non-empty string ``shotid``; a
    START also carries ``exptimes``, three finite numbers > 0 (a START with
    ``NaN`` exposure times used to hold ``shot_running`` for good). The main
    loop counts an event this returns a reason for as malformed.
    """
    shotid = fields.get("shotid")
    if not isinstance(shotid, str) or not shotid:
        return f"shotid {shotid!r} is not a non-empty string"
    obs = fields.get("obs_number")
    if obs is not None and (isinstance(obs, bool) or not isinstance(obs, int)):
        return f"obs_number {obs!r} is not an integer"
    if not start:
        return None
    exptimes = fields.get("exptimes")
    if (not isinstance(exptimes, (list, tuple)) or len(exptimes) != 3
            or not all(_positive_number(t) for t in exptimes)):
        return f"exptimes {exptimes!r} are not three finite numbers > 0"
    return None


def _positive_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 < value <= MAX_EXPTIME)
