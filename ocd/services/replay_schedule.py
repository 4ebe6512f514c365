"""The replay's clockwork: send events on an absolute schedule.

:class:`Replayer` sends the events of :class:`ocd.services.replay.ReplayDatabase`
(or any source of objects with ``t``, ``frames()``, ``event_id`` and
``topic``) through a ``send(frames)`` callable, timed by an injected clock
(``IReactorTime``): event *i* goes out ``(t_i - t_0) / speedup`` seconds
after the first, so timing errors never add up over a night.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

if TYPE_CHECKING:
    from ocd.services.replay import ReplayEvent

log = Logger(namespace="ocd.replay")

#: Events sent in one go before yielding to the reactor when many are due.
BATCH = 500


class ReplayState(str, enum.Enum):
    """The life of a :class:`Replayer`."""

    IDLE = "idle"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did; ``worst_lateness`` is in seconds against the schedule."""

    sent: int
    skipped: int
    failed: int
    passes: int
    wall_time: float
    worst_lateness: float
    state: ReplayState

    def describe(self) -> str:
        how = "stopped" if self.state is ReplayState.STOPPED else "finished"
        return (
            f"replay {how}: {self.sent} events sent, {self.skipped} skipped"
            + (f", {self.failed} failed to send" if self.failed else "")
            + (f", {self.passes} passes" if self.passes > 1 else "")
            + f", wall time {self.wall_time:.1f} s, worst lateness {self.worst_lateness * 1e3:.1f} ms"
        )


class Replayer:
    """Send a stream of events on an absolute schedule.

    ``source()`` returns a fresh iterator of :class:`ReplayEvent` for each pass
    (``serve_forever`` starts a new pass at the end); ``skipped()`` tells how
    many rows the current pass skipped. ``clock`` is an ``IReactorTime``.
    Event *i* of a pass is due ``(t_i - t_0) / speedup`` after the pass
    started (never before the previous one); ``speedup=inf`` sends as fast as
    possible, yielding to the reactor every ``batch`` events.
    """

    def __init__(
        self,
        source: Callable[[], Iterator[ReplayEvent]],
        send: Callable[[list[bytes]], Any],
        clock: IReactorTime,
        speedup: float = 1.0,
        serve_forever: bool = False,
        skipped: Callable[[], int] = lambda: 0,
        keep_lateness: bool = False,
        batch: int = BATCH,
    ):
        if not speedup > 0:
            raise ValueError(f"speedup must be positive, not {speedup!r}")
        self._source = source
        self._send = send
        self._clock = clock
        self.speedup = float(speedup)
        self.serve_forever = serve_forever
        self._skipped = skipped
        self._batch = max(1, batch)
        self.state = ReplayState.IDLE
        self.sent = 0
        self.failed = 0
        self.passes = 0
        self.skipped_before = 0  # skipped in finished passes
        self.worst_lateness = 0.0
        self.lateness: list[float] | None = [] if keep_lateness else None
        self.night_time: float | None = None  # t of the last event sent
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.done: Deferred[ReplaySummary] = Deferred()
        self._iter: Iterator[ReplayEvent] | None = None
        self._pending: ReplayEvent | None = None
        self._call: Any = None
        self._pass_start = 0.0
        self.pass_sent = 0
        self._t0: float | None = None
        self._last_due = 0.0

    @property
    def skipped(self) -> int:
        return self.skipped_before + (self._skipped() if self._iter is not None else 0)

    def start(self) -> Deferred[ReplaySummary]:
        """Begin the first pass now; the Deferred fires with the summary."""
        if self.state is not ReplayState.IDLE:
            raise RuntimeError(f"replay already {self.state.value}")
        self.state = ReplayState.RUNNING
        self.started_at = self._clock.seconds()
        self._new_pass()
        self._pump()
        return self.done

    def stop(self) -> None:
        """Stop now (Ctrl+C); the Deferred fires with the same summary."""
        if self.state is ReplayState.RUNNING:
            self._end(ReplayState.STOPPED)

    def summary(self) -> ReplaySummary:
        end = self.ended_at if self.ended_at is not None else self._clock.seconds()
        start = self.started_at if self.started_at is not None else end
        return ReplaySummary(
            self.sent, self.skipped, self.failed, self.passes, end - start, self.worst_lateness, self.state
        )

    # internals -------------------------------------------------------------------

    def _new_pass(self) -> None:
        if self._iter is not None:
            self.skipped_before += self._skipped()
        self.passes += 1
        self._iter = self._source()
        self._pass_start = self._last_due = self._clock.seconds()
        self.pass_sent = 0
        self._t0 = None

    def _due(self, event: ReplayEvent) -> float:
        if event.t is not None:
            if self._t0 is None:
                # Anchor at the first timed event, not at the start of the pass:
                # the first rows may take a while (SQLite sorts before it yields).
                self._t0 = event.t
                self._pass_start = max(self._clock.seconds(), self._last_due)
            due = self._pass_start + (event.t - self._t0) / self.speedup
            if due > self._last_due:
                self._last_due = due
        return self._last_due

    def _pump(self) -> None:
        self._call = None
        try:
            self._pump_batch()
        except Exception:
            log.failure("replay stopped by an error reading the database")
            self._end(ReplayState.FINISHED)

    def _pump_batch(self) -> None:
        clock = self._clock
        for _ in range(self._batch):
            if self.state is not ReplayState.RUNNING:
                return
            event = self._pending
            if event is None:
                event = next(self._iter, None)  # type: ignore[arg-type]
                if event is None:
                    if self.serve_forever and self.pass_sent:
                        self._new_pass()
                        continue
                    self._end(ReplayState.FINISHED)
                    return
            due = self._due(event)
            now = clock.seconds()
            if due > now:
                self._pending = event
                self._call = clock.callLater(due - now, self._pump)
                return
            self._pending = None
            try:
                self._send(event.frames())
            except Exception:
                self.failed += 1
                log.failure("could not send event {event_id} ({topic})", event_id=event.event_id, topic=event.topic)
                continue
            late = now - due
            if late > self.worst_lateness:
                self.worst_lateness = late
            if self.lateness is not None:
                self.lateness.append(late)
            self.sent += 1
            self.pass_sent += 1
            if event.t is not None:
                self.night_time = event.t
        self._call = clock.callLater(0, self._pump)

    def _end(self, state: ReplayState) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._iter is not None:
            self.skipped_before += self._skipped()
            close = getattr(self._iter, "close", None)
            if close is not None:
                close()
            self._iter = None
        self.state = state
        self.ended_at = self._clock.seconds()
        self.done.callback(self.summary())
