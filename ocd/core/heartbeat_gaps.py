"""Heartbeats that never arrived, seen on the telescope's own clock.

The TCS sends ``tcs.receiver.heartbeat`` once per second. What ZeroMQ drops
(a full queue, a slow subscriber) leaves no trace on the wire; the one loss
OCD can know is a hole in the sequence of heartbeat ``__data_time`` values.
:class:`HeartbeatGaps` counts the missing beats of each hole and groups the
holes into *stretches*, so that a flood that loses thousands of beats writes
one line when the loss begins and one when it is over, not one per hole.

Pure: ``__data_time`` values in, numbers and news out; no clock is read.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A spacing longer than this many intervals is a gap.
GAP_FACTOR = 1.5
#: A step back in telescope time longer than this (s) starts over (a replay
#: that begins again); a shorter one is an out-of-order beat and is ignored.
RESTART_AFTER = 60.0


@dataclass
class Stretch:
    """A run of gaps: the telescope times of its first and last gap, and the losses."""

    start: float
    end: float
    missed: int
    gaps: int


@dataclass(frozen=True)
class GapNews:
    """What one heartbeat says: beats missing before it, and a stretch begun or ended."""

    missed: int = 0
    started: Stretch | None = None
    ended: Stretch | None = None


NOTHING = GapNews()


class HeartbeatGaps:
    """Counts missing heartbeats; a stretch ends after ``quiet_after`` s without a gap."""

    def __init__(self, interval: float = 1.0, quiet_after: float = 60.0) -> None:
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be > 0, not {interval!r}")
        self.interval = interval
        self.quiet_after = quiet_after
        self.last: float | None = None
        self.stretch: Stretch | None = None
        self.missed = 0
        self.gaps = 0

    def observe(self, data_time: float) -> GapNews:
        """One heartbeat's ``__data_time`` (epoch s)."""
        last = self.last
        if last is None:
            self.last = data_time
            return NOTHING
        spacing = data_time - last
        if spacing <= 0:
            if -spacing > RESTART_AFTER:
                ended, self.stretch = self.stretch, None
                self.last = data_time
                return GapNews(ended=ended) if ended else NOTHING
            return NOTHING  # a duplicate or a beat a little out of order
        self.last = data_time
        if spacing > GAP_FACTOR * self.interval:
            missed = max(1, round(spacing / self.interval) - 1)
            self.missed += missed
            self.gaps += 1
            if self.stretch is None:
                self.stretch = Stretch(last, data_time, missed, 1)
                return GapNews(missed, started=self.stretch)
            self.stretch.end = data_time
            self.stretch.missed += missed
            self.stretch.gaps += 1
            return GapNews(missed)
        if self.stretch is not None and data_time - self.stretch.end >= self.quiet_after:
            ended, self.stretch = self.stretch, None
            return GapNews(ended=ended)
        return NOTHING
