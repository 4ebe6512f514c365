"""How ``ocd run`` and ``twistd ocd`` stop on a signal (events.md 3.6).

- The first SIGINT (Ctrl+C) while OCD's own shot runs: no new shot starts,
  the running one finishes, then OCD stops; the log says so and how to
  abort. With no shot running, SIGINT stops at once.
- A second SIGINT aborts: the shot's programs are ended (TERM, then KILL),
  its FINISH goes out with the error, then OCD stops (the service tree's
  stop does that).
- SIGTERM (systemd's stop) and SIGHUP (a closed terminal) stop at once,
  like the second SIGINT. SIGHUP used to kill OCD silently (Twisted installs
  no handler for it).
- A signal that arrives while OCD is already stopping (children being ended)
  is logged and ignored: no second ``reactor.stop()``, no traceback.

The reactor's own ``sigInt``/``sigTerm`` do the stopping, so ``twistd``
still re-raises the signal at exit as Twisted does. The handlers are
installed once the reactor runs (after Twisted's own), only by the two
daemons, never in tests that build the service tree in-process.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from twisted.internet import task
from twisted.logger import Logger

log = Logger(namespace="ocd.signals")

#: How often, after a first SIGINT, OCD looks whether its shot has ended (s).
DRAIN_POLL = 0.2


class StopOnSignals:
    """SIGINT once: finish the shot, then stop; again, SIGTERM or SIGHUP: stop now."""

    def __init__(self, reactor: Any, main_loop: Any):
        self.reactor = reactor
        self.main_loop = main_loop
        self.stopping = False
        self.draining: str | None = None
        self._poll: task.LoopingCall | None = None

    def install(self) -> None:
        """Install the handlers (call once the reactor runs)."""
        for signum, handler in ((signal.SIGINT, self._on_sigint),
                                (signal.SIGTERM, self._on_stop_signal),
                                (signal.SIGHUP, self._on_stop_signal)):
            signal.signal(signum, self._from_signal(handler))

    def _from_signal(self, handler: Callable[[int], None]) -> Callable[[int, Any], None]:
        def on_signal(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(handler, signum)
        return on_signal

    # -- in the reactor thread ------------------------------------------------
    def _on_sigint(self, signum: int) -> None:
        if self.stopping:
            self._already(signum)
            return
        if self.draining is not None:
            log.warn("second Ctrl+C: aborting shot {shotid} now (its programs are ended, its "
                     "FINISH is sent with the error)", shotid=self.draining)
            self._stop_now(signum)
            return
        shotid = self.main_loop.stop_after_shot()
        if shotid is None:
            self._stop_now(signum)
            return
        self.draining = shotid
        log.warn("Ctrl+C: OCD stops after shot {shotid} ends; no new shot starts. Press Ctrl+C "
                 "again to abort the shot now (or send SIGTERM)", shotid=shotid)
        self._poll = task.LoopingCall(self._check_drained)
        self._poll.clock = self.reactor
        self._poll.start(DRAIN_POLL, now=False)

    def _check_drained(self) -> None:
        try:
            if self.stopping or self.main_loop.shot_in_progress() is None:
                if not self.stopping:
                    log.info("shot {shotid} has ended: stopping", shotid=self.draining)
                    self._stop_now(signal.SIGINT)
        except Exception:
            log.failure("checking whether the shot has ended failed")

    def _on_stop_signal(self, signum: int) -> None:
        if self.stopping:
            self._already(signum)
            return
        self._stop_now(signum)

    def _stop_now(self, signum: int) -> None:
        self.stopping = True
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        name = signal.Signals(signum).name
        shotid = self.main_loop.shot_in_progress()
        if shotid is not None:
            log.warn("{name}: stopping now during shot {shotid}: its programs are ended, its "
                     "FINISH goes out with the error", name=name, shotid=shotid)
        else:
            log.info("{name}: stopping", name=name)
        # The reactor's own handlers: they stop it and record the signal
        # (twistd re-raises it at exit).
        if signum == signal.SIGINT:
            self.reactor.sigInt(signum)
        else:
            self.reactor.sigTerm(signum)

    def _already(self, signum: int) -> None:
        log.warn("{name} while OCD is already stopping: ignored (the shot's programs are being "
                 "ended)", name=signal.Signals(signum).name)
