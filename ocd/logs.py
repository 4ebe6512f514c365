"""Logging through ``twisted.logger`` only.

Two destinations, each with its own level:

- the console (stderr): one readable line per event, stamped with the
  machine's UTC time, at ``[general] log_level`` or more severe;
- ``[general] json_log`` when set: Twisted's JSON text sequence (RFC 7464:
  each record is ``\\x1e`` + one JSON object + ``\\n``), at
  ``[general] json_log_level`` or more severe, every record stamped with the
  program that wrote it (``ocd_program``: ``ocd run``, ``run_shot``,
  ``db_replay`` ...) and its process id (``ocd_pid``), so that several
  programs may share one file. ``twisted.logger.eventsFromJSONLogFile``
  reads it back; so does ``jq --seq``.

A progress bar (``ocd db_replay`` on a terminal) owns the bottom line of the
terminal: :func:`console_through` routes console lines through ``tqdm.write``
while it is shown, so no line writes over it.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import IO, Any, Callable

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEventAsClassicLogText,
    globalLogBeginner,
)
from zope.interface import implementer

from zope.interface import implementer

from ocd.config import Config
from ocd.json_log import JsonLogFile

_started = False

#: No console line is longer: a longer one continues on the next lines,
#: indented by CONTINUATION (nothing is lost; the JSON log has it in one piece).
CONSOLE_WIDTH = 200
CONTINUATION = "    "


def wrap_console(text: str) -> str:
    """Break every line longer than CONSOLE_WIDTH at spaces, continuations indented.

    ``re.sub(r"\\n {4}", " ", wrapped)`` gives the text back (a word longer
    than a line is cut where it must be).
    """
    import textwrap

    lines = []
    for line in text.splitlines():
        if len(line) <= CONSOLE_WIDTH:
            lines.append(line)
            continue
        lines.extend(textwrap.wrap(line, width=CONSOLE_WIDTH, subsequent_indent=CONTINUATION,
                                   break_on_hyphens=False, replace_whitespace=False))
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")

#: Where console lines go while a progress bar is shown (None: the stream).
_console_writer: Callable[[str], None] | None = None


def utc_clock(when: float | None) -> str:
    """A machine time as ISO 8601 UTC to the second (``2026-12-01T03:12:09Z``)."""
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Always written, whatever ``[general] log_level`` says: the start banner.
ALWAYS_SHOWN = ("ocd.banner",)


def level_observer(observer: ILogObserver, level_name: str) -> ILogObserver:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level_name))
    for namespace in ALWAYS_SHOWN:
        predicate.setLogLevelForNamespace(namespace, LogLevel.info)
    return FilteringLogObserver(observer, [predicate])


@implementer(ILogObserver)
class ConsoleObserver:
    """One line per event, ``<UTC time> [namespace#level] message``.

    Writes through the progress bar's writer when one is set
    (:func:`console_through`), else to ``stream``.
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEventAsClassicLogText(event, formatTime=utc_clock)
        if not text:
            return
        if any(len(line) > CONSOLE_WIDTH for line in text.splitlines()):
            text = wrap_console(text)
        writer = _console_writer
        if writer is not None:
            writer(text.rstrip("\n"))
            return
        self.stream.write(text)
        self.stream.flush()


class console_through:
    """Context manager: console lines go through ``write`` (a progress bar's)."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self._previous: Callable[[str], None] | None = None

    def __enter__(self) -> "console_through":
        global _console_writer
        self._previous = _console_writer
        _console_writer = self.write
        return self

    def __exit__(self, *exc: Any) -> None:
        global _console_writer
        _console_writer = self._previous


@implementer(ILogObserver)
class StampedObserver:
    """Adds the program's name and pid to each event before passing it on."""

    def __init__(self, observer: ILogObserver, program: str, pid: int | None = None):
        self.observer = observer
        self.program = program
        self.pid = os.getpid() if pid is None else pid

    def __call__(self, event: dict[str, Any]) -> None:
        self.observer(dict(event, ocd_program=self.program, ocd_pid=self.pid))


def observers_for(
    config: Config, stream: IO[str] | None = None, opened: list[IO[str]] | None = None,
    program: str = "ocd",
) -> list[ILogObserver]:
    """The observers a program of OCD logs to, from its configuration.

    The JSON log file, when one is opened, is appended to ``opened`` so that
    a caller with a shorter life than the process (a test) can close it.
    """
    stream = stream if stream is not None else sys.stderr
    observers: list[ILogObserver] = [
        level_observer(ConsoleObserver(stream), config.get_str("general", "log_level"))
    ]
    path = config.get_path("general", "json_log")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        json_file = JsonLogFile(path)  # never raises on a full disk (ocd.json_log)
        if opened is not None:
            opened.append(json_file)
        observers.append(level_observer(StampedObserver(json_file, program),
                                        config.get_str("general", "json_log_level")))
    return observers


def start_logging(config: Config, stream: IO[str] | None = None, program: str = "ocd") -> None:
    """Begin global logging once per process (later calls do nothing)."""
    global _started
    if _started:
        return
    _started = True
    globalLogBeginner.beginLoggingTo(
        observers_for(config, stream, program=program), discardBuffer=False,
        redirectStandardIO=False
    )


def with_config(config: Config, base: ILogObserver) -> ILogObserver:
    """``base`` (twistd's own log file or syslog) filtered by ``[general]
    log_level``, plus the ``json_log`` file: what ``twistd ocd`` logs to."""
    observers = [level_observer(base, config.get_str("general", "log_level"))]
    path = config.get_path("general", "json_log")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        observers.append(level_observer(  # never raises on a full disk (ocd.json_log)
            StampedObserver(JsonLogFile(path), "twistd ocd"),
            config.get_str("general", "json_log_level")))
    return _FanOut(observers)


@implementer(ILogObserver)
class _FanOut:
    """One observer that hands every event to several."""

    def __init__(self, observers: list[ILogObserver]):
        self.observers = observers

    def __call__(self, event: dict) -> None:
        for observer in self.observers:
            observer(event)
