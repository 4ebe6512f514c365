"""Logging through ``twisted.logger`` only.

Readable lines on stderr for a person at the console, filtered by
``[general] log_level``; every event as JSON in ``[general] json_log`` when
set, which ``twisted.logger.eventsFromJSONLogFile`` reads back.
"""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from zope.interface import implementer

from ocd.config import Config
from ocd.json_log import JsonLogFile

_started = False


#: Always written, whatever ``[general] log_level`` says: the start banner.
ALWAYS_SHOWN = ("ocd.banner",)


def level_observer(observer: ILogObserver, level_name: str) -> ILogObserver:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level_name))
    for namespace in ALWAYS_SHOWN:
        predicate.setLogLevelForNamespace(namespace, LogLevel.info)
    return FilteringLogObserver(observer, [predicate])


def observers_for(
    config: Config, stream: IO[str] | None = None, opened: list[IO[str]] | None = None
) -> list[ILogObserver]:
    """The observers a program of OCD logs to, from its configuration.

    The JSON log file, when one is opened, is appended to ``opened`` so that
    a caller with a shorter life than the process (a test) can close it.
    """
    stream = stream if stream is not None else sys.stderr
    observers: list[ILogObserver] = [
        level_observer(textFileLogObserver(stream), config.get_str("general", "log_level"))
    ]
    path = config.get_path("general", "json_log")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        json_file = JsonLogFile(path)  # never raises on a full disk (ocd.json_log)
        if opened is not None:
            opened.append(json_file)
        observers.append(json_file)
    return observers


def start_logging(config: Config, stream: IO[str] | None = None) -> None:
    """Begin global logging once per process (later calls do nothing)."""
    global _started
    if _started:
        return
    _started = True
    globalLogBeginner.beginLoggingTo(
        observers_for(config, stream), discardBuffer=False, redirectStandardIO=False
    )


def with_config(config: Config, base: ILogObserver) -> ILogObserver:
    """``base`` (twistd's own log file or syslog) filtered by ``[general]
    log_level``, plus the ``json_log`` file: what ``twistd ocd`` logs to."""
    observers = [level_observer(base, config.get_str("general", "log_level"))]
    path = config.get_path("general", "json_log")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        observers.append(JsonLogFile(path))  # never raises on a full disk (ocd.json_log)
    return _FanOut(observers)


@implementer(ILogObserver)
class _FanOut:
    """One observer that hands every event to several."""

    def __init__(self, observers: list[ILogObserver]):
        self.observers = observers

    def __call__(self, event: dict) -> None:
        for observer in self.observers:
            observer(event)
