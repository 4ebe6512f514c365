"""One module per subcommand: ``main(args, config) -> exit status``.

Subcommands that are ours (not in the user's page) also add their own
parser through ``add_parser(subparsers, sub, add_config)``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorCore

    from ocd.config import Config

#: Modules of subcommands beyond the user's page, in the order of ``ocd -h``.
EXTRA_MODULES = ("sample_night", "simulate_night", "night_report", "status", "keys", "plan")


def extra_subcommands() -> list[Callable[..., Any]]:
    return [importlib.import_module(f"ocd.commands.{name}").add_parser for name in EXTRA_MODULES]


def night_date(text: str) -> str:
    """argparse type of a night's date (YYYY-MM-DD, the date of its evening)."""
    import argparse
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None



def number(text: str) -> float:
    """argparse type of a float, named in the message when it is not one."""
    import argparse

    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def finite_number(text: str) -> float:
    """argparse type of a float that is a number (``nan`` and ``inf`` are refused)."""
    import argparse
    import math

    value = number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def seconds(text: str) -> float:
    """argparse type of a wait in seconds: finite and >= 0 (a timer cannot run backwards)."""
    import argparse

    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def attempts(text: str) -> int:
    """argparse type of a number of attempts: an integer >= 1 (0 would never ask)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of attempts >= 1")
    return value


def exposure_seconds(text: str) -> float:
    """argparse type of an exposure time as OCD accepts it in a shot's START.

    ``run_shot -e`` announces its exposure times in the START event; the main
    loop refuses a START whose times are not finite and in (0, MAX_EXPTIME]
    (:mod:`ocd.core.shot_tracker`), so the command line refuses them first
    instead of exposing for a shot that OCD would call malformed.
    """
    import argparse

    from ocd.core.shot_tracker import MAX_EXPTIME

    value = finite_number(text)
    if not 0 < value <= MAX_EXPTIME:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an exposure time: seconds > 0 and at most {MAX_EXPTIME:g}")
    return value

def not_available(name: str) -> int:
    """The answer of a subcommand whose implementation has not landed yet."""
    print(f"ocd {name}: not available yet", file=sys.stderr)
    return 2


def warn_both_sources(config: Config, command: str) -> None:
    """Only ``ocd run`` refuses both telescope sources; the others warn."""
    if config.get_urls("urls", "event_urls") and config.get_urls("urls", "ocd_db_replay"):
        print(f"WARNING: ocd {command}: both [urls] event_urls and [urls] ocd_db_replay are "
              "given; `ocd run` would refuse this configuration", file=sys.stderr)


def _exit_with(code: Any) -> NoReturn:
    raise SystemExit(int(code or 0))


def react(work: Callable[[IReactorCore], Deferred[int] | int]) -> NoReturn:
    """Run the reactor until ``work(reactor)`` fires; exit with the status it gives.

    The one way a command runs the reactor: :func:`twisted.internet.task.react`,
    which is also where the reactor is resolved (the global one, or the one
    twistd or a test installed) and handed down. ``work`` starts once the
    reactor runs, as children and sockets expect. ``react`` ends with
    ``SystemExit``; :func:`ocd.cli.main` turns that back into the status, so
    a command stays callable from a test.
    """
    from twisted.internet import defer, task

    def main(reactor: IReactorCore) -> Deferred[None]:
        started: Deferred[int] = defer.Deferred()
        reactor.callWhenRunning(lambda: defer.maybeDeferred(work, reactor).chainDeferred(started))
        return started.addCallback(_exit_with)

    task.react(main)
    raise AssertionError("task.react returned")  # pragma: no cover - it always exits
