"""``ocd sample_night OUT.db``: write a sample TCS event database.

A whole night at the HET by default (sunset to sunrise of ``--date``),
deterministic from ``--seed``; ``ocd db_replay`` plays it back. With
``--cache`` the file goes to the cache folder (reused if already there) and
its path is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from ocd.commands import night_date, number
from ocd.config import Config
from ocd.sim.limits import (FIRST_YEAR, LAST_YEAR, MAX_EVENTS, MAX_HOURS, MAX_INTERVAL,
                            MAX_RATE_HZ, MIN_METROLOGY_INTERVAL, MIN_REPORT_INTERVAL)


def _time(text: str) -> float:
    """argparse type of --start/--end: a time (ISO 8601 or epoch s) within the years OCD simulates."""
    from datetime import datetime, timezone

    from ocd.core.events import parse_time

    try:
        value = parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    first = datetime(FIRST_YEAR, 1, 1, tzinfo=timezone.utc).timestamp()
    last = datetime(LAST_YEAR + 1, 1, 1, tzinfo=timezone.utc).timestamp()
    if not first <= value < last:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31 (UTC)")
    return value


def bounded_night_date(text: str) -> str:
    """argparse type of a night's date (YYYY-MM-DD) within the years OCD simulates.

    ``9999-12-31`` passed and failed half-way ("year 10000 is out of range"),
    naming no option; public, as ``ocd simulate_night`` takes the same dates.
    """
    value = night_date(text)
    if not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a night from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31")
    return value


def _within(text: str, low: float, high: float, what: str, low_open: bool = False) -> float:
    """A finite number in [low, high] (low excluded if ``low_open``); else says ``what``."""
    value = number(text)
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        raise argparse.ArgumentTypeError(f"{text!r}: {what}")
    return value


def night_hours(text: str) -> float:
    """argparse type of --hours: a night is positive and at most MAX_HOURS long (inf never ended)."""
    return _within(text, 0.0, MAX_HOURS, f"the night's length must be positive, at most "
                   f"{MAX_HOURS:g} hours", low_open=True)


def _rate(text: str) -> float:
    """argparse type of a stream's rate: above zero, at most MAX_RATE_HZ (inf never ended)."""
    return _within(text, 0.0, MAX_RATE_HZ, f"the rate must be positive, at most {MAX_RATE_HZ:g} Hz",
                   low_open=True)


def _metrology_interval(text: str) -> float:
    """argparse type of --metrology-interval: 1e-300 s between events never ended."""
    return _within(text, MIN_METROLOGY_INTERVAL, MAX_INTERVAL,
                   f"the interval must be from {MIN_METROLOGY_INTERVAL:g} to {MAX_INTERVAL:g} s")


def _report_interval(text: str) -> float:
    """argparse type of --weather-interval and --shutter-interval (see MIN_REPORT_INTERVAL)."""
    return _within(text, MIN_REPORT_INTERVAL, MAX_INTERVAL,
                   f"the interval must be from {MIN_REPORT_INTERVAL:g} to {MAX_INTERVAL:g} s")


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    from ocd.sim import DEFAULT_DATE

    parser = sub(subparsers, "sample_night",
                 "Write a sample TCS event database: a night at the HET of heartbeat, pointing, "
                 "guider metrology, weather and shutter events, deterministic from a seed, "
                 f"for `ocd db_replay`. A night is at most {MAX_HOURS:g} hours and "
                 f"{MAX_EVENTS:,} events. Exit status 2, with nothing written, when an option "
                 "or OUTPUT cannot be used.", epilog=None)
    parser.set_defaults(command_module="sample_night")
    add_config(parser)
    parser.add_argument("output", nargs="?", help="SQLite file to write (a regular file there is "
                        "replaced; anything else is refused); optional with --cache")
    parser.add_argument("--cache", action="store_true",
                        help="Write into the cache folder (OCD_CACHE_DIR, else $XDG_CACHE_HOME/ocd "
                             "or ~/.cache/ocd), reuse the file if it is there, print its path")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random generator")
    parser.add_argument("--date", type=bounded_night_date, default=DEFAULT_DATE,
                        help="Local date of the evening the night starts (the night runs from "
                             f"sunset to sunrise at the HET), {FIRST_YEAR} to {LAST_YEAR}")
    parser.add_argument("--hours", type=night_hours,
                        help="Length of the night in hours, from sunset (or from --start); "
                             f"at most {MAX_HOURS:g}")
    parser.add_argument("--start", type=_time, help="Start (ISO 8601 UTC or epoch s), instead of sunset")
    parser.add_argument("--end", type=_time, help="End (ISO 8601 UTC or epoch s), instead of sunrise; "
                        f"at most {MAX_HOURS:g} h after the start")
    rates = parser.add_argument_group("event rates")
    rates.add_argument("--heartbeat-hz", type=_rate, default=1.0,
                       help=f"tcs.receiver.heartbeat rate, Hz (at most {MAX_RATE_HZ:g})")
    rates.add_argument("--pointing-hz", type=_rate, default=1.0,
                       help=f"tcs.root.ra_dec rate while tracking, Hz (at most {MAX_RATE_HZ:g})")
    rates.add_argument("--metrology-interval", type=_metrology_interval, nargs=2, default=[5.0, 10.0],
                       metavar=("LOW", "HIGH"), help="Seconds between two guider metrology events "
                       f"(at least {MIN_METROLOGY_INTERVAL:g})")
    rates.add_argument("--weather-interval", type=_report_interval, default=60.0,
                       help=f"Seconds between two weather events (at least {MIN_REPORT_INTERVAL:g})")
    rates.add_argument("--shutter-interval", type=_report_interval, default=60.0,
                       help="Seconds between two shutter events (also sent on each change; at "
                            f"least {MIN_REPORT_INTERVAL:g})")
    weather = parser.add_argument_group("bad weather")
    weather.add_argument("--bad-weather", type=float, metavar="MINUTES",
                         help="Length of the spell of bad weather with the shutter closed; 0 for "
                              "none (default: 45 to 90 min, from the seed)")
    weather.add_argument("--bad-weather-at", type=float, metavar="HOURS",
                         help="Start of the spell, in hours after the start of the night, inside "
                              "the night (default: in the middle of the night, from the seed)")


def check_bad_weather(minutes: float | None, at: float | None, hours: float | None) -> str | None:
    """What is wrong with the bad-weather spell, or None.

    ``hours`` is the night's length when it is known without computing the
    sky; :func:`check_span` checks ``at`` against the night of --start/--end.
    """
    if minutes is not None and minutes < 0:
        return (f"--bad-weather {minutes:g}: the spell would end before it starts; give its "
                "length in minutes, >= 0 (0 for none)")
    if minutes is not None and not (math.isfinite(minutes) and minutes <= MAX_HOURS * 60):
        return (f"--bad-weather {minutes:g}: give a finite length in minutes, at most "
                f"{MAX_HOURS * 60:g} (a night)")
    if at is not None and not (at >= 0 and math.isfinite(at)):
        return f"--bad-weather-at {at:g}: give hours after the start of the night, >= 0"
    if at is not None and hours is not None and at >= hours:
        return (f"--bad-weather-at {at:g} h is not within the night, {hours:.4g} h long: give "
                "a start inside the night")
    return None


def check_output(output: str) -> str | None:
    """What is wrong with OUTPUT, or None: checked before anything is written.

    Its folder must exist (a typo must not create folders) and take a new
    file (/proc does not: SQLite's traceback named no file); what is there
    may be replaced only if it is a regular file (the night is renamed onto
    it, and as root that replaced the device /dev/full).
    """
    if not output:
        return "OUTPUT is empty: give a file name, e.g. night.db"
    path = os.path.abspath(output)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return (f"the folder of {path} does not exist: create it first, or "
                "give a file in an existing folder")
    if os.path.isdir(output):
        return f"{path} is a folder: give a file name, e.g. night.db"
    if os.path.exists(output) and not os.path.isfile(output):
        from ocd.core.file_kinds import file_kind

        return (f"{path} is {file_kind(os.stat(output).st_mode)}, not a regular file: give a new "
                "file name, or a regular file to replace")
    return _writable(folder, path)


def _writable(folder: str, path: str) -> str | None:
    """Whether ``folder`` takes a new file: the night is written beside OUTPUT, then renamed."""
    import tempfile

    try:
        handle, probe = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".probe",
                                         dir=folder)
    except OSError as exc:
        return f"cannot write {path}: its folder takes no new file ({exc.strerror or exc})"
    os.close(handle)
    os.unlink(probe)
    return None


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_span(args: argparse.Namespace) -> str | None:
    """What is wrong with the night's span (--start, --end, --bad-weather-at), or None.

    A night of --end minus --start longer than a day, or a spell outside it,
    was accepted (the spell's check ran only with --hours). The sky (sunset,
    sunrise of --date) is computed only when the span depends on it.
    """
    from ocd.sim.night import night_bounds

    if args.start is None and args.end is None and (args.bad_weather_at is None
                                                    or args.hours is not None):
        return None  # sunset to sunrise, or --hours from sunset: at most a day, spell checked
    start, end = night_bounds(args.date, args.hours, args.start, args.end)
    which = "--end" if args.end is not None else "--start"
    since = "--start" if args.start is not None else f"sunset of --date {args.date}"
    until = "--end" if args.end is not None else f"sunrise of --date {args.date}"
    if not end > start:
        return (f"{which}: the night must end after it starts ({since} {_iso(start)}, "
                f"{until} {_iso(end)})")
    if end - start > MAX_HOURS * 3600:
        return (f"{which}: the night from {since} {_iso(start)} to {until} {_iso(end)} is "
                f"{(end - start) / 3600:.1f} h long: at most {MAX_HOURS:g} h; give a start "
                "and an end within a day")
    return check_bad_weather(None, args.bad_weather_at, (end - start) / 3600)


def check_events(args: argparse.Namespace) -> str | None:
    """Whether the night stays within MAX_EVENTS, naming the options that make it big.

    Each rate is bounded alone, but all at their bounds over a long night
    make hours of writing; the night's length is its longest when not given.
    """
    from ocd.sim.night import night_bounds, worst_case_events

    if args.start is not None or args.end is not None:
        start, end = night_bounds(args.date, args.hours, args.start, args.end)
        seconds = end - start
    else:
        seconds = (args.hours or MAX_HOURS) * 3600
    events = worst_case_events(seconds, args.heartbeat_hz, args.pointing_hz,
                               args.metrology_interval[0], args.weather_interval,
                               args.shutter_interval)
    if events <= MAX_EVENTS:
        return None
    return (f"--heartbeat-hz {args.heartbeat_hz:g}, --pointing-hz {args.pointing_hz:g}, "
            f"--metrology-interval {args.metrology_interval[0]:g}, --weather-interval "
            f"{args.weather_interval:g} and --shutter-interval {args.shutter_interval:g} make up "
            f"to {events:,.0f} events in {seconds / 3600:.1f} h: at most {MAX_EVENTS:,}; lower "
            "the rates, lengthen the intervals or shorten the night")


def check_arguments(args: argparse.Namespace) -> str | None:
    """The first thing wrong with the options and OUTPUT, or None; nothing is written."""
    if args.output is None and not args.cache:
        return "give an OUTPUT file or --cache"
    if args.hours is not None and args.end is not None:
        return "give --hours or --end, not both"
    low, high = args.metrology_interval
    if low > high:
        return f"--metrology-interval {low:g} {high:g}: LOW must not be above HIGH"
    checks = (lambda: check_bad_weather(args.bad_weather, args.bad_weather_at, args.hours),
              lambda: None if args.output is None else check_output(args.output),
              lambda: check_span(args), lambda: check_events(args))
    for check in checks:
        problem = check()
        if problem is not None:
            return problem
    return None


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.sim.night import cached_night, generate_night

    problem = check_arguments(args)
    if problem is not None:
        print(f"ocd sample_night: {problem}", file=sys.stderr)
        return 2
    params = dict(seed=args.seed, date=args.date, hours=args.hours, start=args.start, end=args.end,
                  heartbeat_hz=args.heartbeat_hz, pointing_hz=args.pointing_hz,
                  metrology_interval=tuple(args.metrology_interval),
                  weather_interval=args.weather_interval, shutter_interval=args.shutter_interval,
                  bad_weather_minutes=args.bad_weather, bad_weather_at=args.bad_weather_at)
    try:
        if args.cache:
            path = cached_night(**params)
            if args.output is None:
                print(path)
                return 0
            import shutil

            shutil.copyfile(path, args.output)
            print(args.output)
            return 0
        summary = generate_night(args.output, **params)
    except ValueError as exc:
        print(f"ocd sample_night: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or args.output
        print(f"ocd sample_night: cannot use {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0
