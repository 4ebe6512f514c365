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

from ocd.config import Config
from ocd.json_log import JsonLogFile

_started = False


def level_observer(observer: ILogObserver, level_name: str) -> ILogObserver:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level_name))
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
