"""Alerts: wake a person, at a bounded rate.

A blocker that lasts too long while shots are allowed, a self-disarm, a
failed shot, a shot list that cannot be read, a JSON log that stopped: each
is an alert. An alert is logged (``ALERT: ...``, ``ocd_event`` "alert"),
handed to the listeners (the night log) and given to ``[general]
alert_command`` as its last argument, through the one child-process runner.

At most one alert of a kind goes out per ``[general] alert_every`` seconds
of the reactor's clock; the others are held back, counted, and summed up in
the next one of that kind or by :meth:`Alerter.flush` on the main loop's
timer (:class:`ocd.core.alerts.AlertLimiter` decides which). Three hundred
forged failed shots make one alert and a summary, not three hundred commands.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ocd.config import Config
from ocd.core.alerts import AlertLimiter
from ocd.core.counters import Counters
from ocd.protocols.process import ProcessRunner

#: The longest an alert command may run.
ALERT_TIMEOUT = 60.0


class Alerter:
    """The main loop's alerts: logged, listened to, rate-limited, run as a command."""

    log = Logger(namespace="ocd.alerts")

    def __init__(self, config: Config, reactor: IReactorTime, counters: Counters):
        self.config = config
        self.reactor = reactor
        self.counters = counters
        self.limiter = AlertLimiter()
        #: Called with every alert that goes out (the night log).
        self.listeners: list[Callable[[str], None]] = []
        #: Runs ``[general] alert_command``; None until the orchestrator has one
        #: (then alerts are logged and listened to only).
        self.processes: ProcessRunner | None = None

    def alert(self, message: str, kind: str = "other") -> None:
        """Send ``message`` now, or hold it back if one of ``kind`` went out lately."""
        self.counters.increment("alerts")
        text = self.limiter.offer(kind, message, self.reactor.seconds(), self._every())
        if text is None:
            self.counters.increment("alerts.held_back")
            self.log.debug("alert held back ({kind}): {message}", kind=kind, message=message)
            return
        self._send(text)

    def flush(self) -> None:
        """Send the summaries of held-back alerts whose time has come (on the timer)."""
        for text in self.limiter.due(self.reactor.seconds(), self._every()):
            self._send(text)

    def _every(self) -> float:
        return self.config.get_float("general", "alert_every")  # live: read each time

    def _send(self, message: str) -> None:
        self.counters.increment("alerts.sent")
        self.log.warn("ALERT: {message}", message=message, ocd_event="alert")
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:
                self.log.failure("alert listener {listener!r} failed", listener=listener)
        command = self.config.get_command("general", "alert_command")
        if not command or self.processes is None:
            return
        d = self.processes.run([*command, message], name="alert_command", timeout=ALERT_TIMEOUT)
        d.addErrback(lambda failure: self.log.error("alert command failed: {error}",
                                                    error=failure.getErrorMessage()))
