"""``[general] json_log``: the JSON log file, which survives a full disk.

Twisted's ``jsonFileLogObserver`` raises when its file cannot be written;
the log publisher then logs a ten-line critical traceback to the other
observers for every later event (651 of them in 25 s on a full disk) until
it gives up for good. :class:`JsonLogFile` writes the same records (readable
back with ``twisted.logger.eventsFromJSONLogFile``) but never raises: the
first failed write logs one clear error (file and reason) and tells the
trouble listeners (the main loop raises an alert); events are then counted,
not written, and every later event tries again, so logging resumes by
itself when space returns, with one line saying how many were lost.

Each record is one ``os.write`` on an ``O_APPEND`` descriptor: a record cut
short by the full disk is a broken record that the reader skips (the next
one starts with its own record separator), never a buffered half that
comes back later.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Callable

from twisted.logger import Logger, eventAsJSON
from zope.interface import implementer
from twisted.logger import ILogObserver

#: Who wants to know that the JSON log stopped (``message`` in plain words).
_trouble_listeners: list[Callable[[str], None]] = []

RECORD_SEPARATOR = "\x1e"


def add_trouble_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(message)`` when a JSON log file stops being writable."""
    if listener not in _trouble_listeners:
        _trouble_listeners.append(listener)


def remove_trouble_listener(listener: Callable[[str], None]) -> None:
    if listener in _trouble_listeners:
        _trouble_listeners.remove(listener)


def open_for_append(path: str | os.PathLike[str]) -> int:
    """The descriptor a JSON log writes to (appending, created 0644 when missing).

    Raises ``OSError`` (a folder, a missing folder, no permission); ``ocd run``
    and ``twistd ocd`` open it once before they start
    (:func:`ocd.start_files.check_start_files`) to refuse such a file in one line.
    """
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


@implementer(ILogObserver)
class JsonLogFile:
    """An observer writing one JSON record per event to ``path`` (appending).

    ``write`` is ``os.write`` (a test passes one that fails like a full disk
    would). ``lost`` counts the events not written since the file failed.
    """

    def __init__(self, path: str | os.PathLike[str], *, write: Callable[[int, bytes], int] = os.write,
                 log: Logger | None = None) -> None:
        self.path = Path(path)
        self._write = write
        self._log = log if log is not None else Logger(namespace="ocd.json_log")
        self._fd: int | None = open_for_append(self.path)
        self.failing: str | None = None  # the reason, while writes fail
        self.lost = 0
        self.failures = 0
        self._busy = False

    def __call__(self, event: dict[str, Any]) -> None:
        if self._fd is None or self._busy:
            return  # closed, or an event logged by this observer about itself
        self._busy = True
        try:
            self._record(event)
        except Exception:  # an observer must never raise: the publisher would
            self.lost += 1  # print a traceback per event (the very flood we avoid)
        finally:
            self._busy = False

    def _record(self, event: dict[str, Any]) -> None:
        data = (RECORD_SEPARATOR + eventAsJSON(event) + "\n").encode("utf-8")
        try:
            written = self._write(self._fd, data)
            while written < len(data):  # a short write: the disk filled up under it
                more = self._write(self._fd, data[written:])
                if more <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += more
        except OSError as exc:
            self.lost += 1
            if self.failing is None:
                self._stopped(exc)
            return
        if self.failing is not None:
            self._resumed()

    def _stopped(self, exc: OSError) -> None:
        self.failing = exc.strerror or str(exc)
        self.failures += 1
        message = (f"JSON log {self.path} cannot be written ({self.failing}): events are "
                   "counted, not written, until it can be written again")
        self._log.error("{message}", message=message, ocd_event="json_log_failed",
                        path=str(self.path), error=self.failing)
        for listener in list(_trouble_listeners):
            try:
                listener(message)
            except Exception:
                self._log.failure("JSON log trouble listener {listener!r} failed",
                                  listener=listener)

    def _resumed(self) -> None:
        lost, reason = self.lost, self.failing
        self.failing = None
        self._busy = False  # this line goes to the file too
        self._log.warn("JSON log {path} written again: {lost} events were not written while "
                       "it failed ({reason})", path=str(self.path), lost=lost, reason=reason,
                       ocd_event="json_log_resumed")
        self.lost = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
