"""``ocd sample_night OUT.db``: write a sample TCS event database.

A whole night at the HET by default (sunset to sunrise of ``--date``),
deterministic from ``--seed``; ``ocd db_replay`` plays it back. With
``--cache`` the file goes to the cache folder (reused if already there) and
its path is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ocd.commands import night_date, number
from ocd.config import Config


def _time(text: str) -> float:
    from ocd.core.events import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    from ocd.sim import DEFAULT_DATE

    parser = sub(subparsers, "sample_night",
                 "Write a sample TCS event database: a night at the HET of heartbeat, pointing, "
                 "guider metrology, weather and shutter events, deterministic from a seed, "
                 "for `ocd db_replay`.", epilog=None)
    parser.set_defaults(command_module="sample_night")
    add_config(parser)
    parser.add_argument("output", nargs="?", help="SQLite file to write (replaced if it exists); "
                        "optional with --cache")
    parser.add_argument("--cache", action="store_true",
                        help="Write into the cache folder (OCD_CACHE_DIR, else $XDG_CACHE_HOME/ocd "
                             "or ~/.cache/ocd), reuse the file if it is there, print its path")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random generator")
    parser.add_argument("--date", type=night_date, default=DEFAULT_DATE,
                        help="Local date of the evening the night starts (the night runs from "
                             "sunset to sunrise at the HET)")
    parser.add_argument("--hours", type=_positive,
                        help="Length of the night in hours, from sunset (or from --start)")
    parser.add_argument("--start", type=_time, help="Start (ISO 8601 UTC or epoch s), instead of sunset")
    parser.add_argument("--end", type=_time, help="End (ISO 8601 UTC or epoch s), instead of sunrise")
    rates = parser.add_argument_group("event rates")
    rates.add_argument("--heartbeat-hz", type=_positive, default=1.0, help="tcs.receiver.heartbeat rate")
    rates.add_argument("--pointing-hz", type=_positive, default=1.0,
                       help="tcs.root.ra_dec rate while tracking")
    rates.add_argument("--metrology-interval", type=_positive, nargs=2, default=[5.0, 10.0],
                       metavar=("LOW", "HIGH"), help="Seconds between two guider metrology events")
    rates.add_argument("--weather-interval", type=_positive, default=60.0,
                       help="Seconds between two weather events")
    rates.add_argument("--shutter-interval", type=_positive, default=60.0,
                       help="Seconds between two shutter events (also sent on each change)")
    weather = parser.add_argument_group("bad weather")
    weather.add_argument("--bad-weather", type=float, metavar="MINUTES",
                         help="Length of the spell of bad weather with the shutter closed; 0 for "
                              "none (default: 45 to 90 min, from the seed)")
    weather.add_argument("--bad-weather-at", type=float, metavar="HOURS",
                         help="Start of the spell, in hours after the start of the night "
                              "(default: in the middle of the night, from the seed)")


def check_bad_weather(minutes: float | None, at: float | None, hours: float | None) -> str | None:
    """What is wrong with the bad-weather spell, or None."""
    if minutes is not None and not minutes >= 0:
        return (f"--bad-weather {minutes:g}: the spell would end before it starts; give its "
                "length in minutes, >= 0 (0 for none)")
    if at is not None and not at >= 0:
        return f"--bad-weather-at {at:g}: give hours after the start of the night, >= 0"
    if at is not None and hours is not None and at >= hours:
        return (f"--bad-weather-at {at:g} h is not within the night of --hours {hours:g}: give "
                "a start inside the night")
    return None


def check_output(output: str) -> str | None:
    """The output's folder must exist (a typo must not create folders)."""
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        return (f"the folder of {os.path.abspath(output)} does not exist: create it first, or "
                "give a file in an existing folder")
    if os.path.isdir(output):
        return f"{os.path.abspath(output)} is a folder: give a file name, e.g. night.db"
    return None


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.sim.night import cached_night, generate_night

    if args.output is None and not args.cache:
        print("ocd sample_night: give an OUTPUT file or --cache", file=sys.stderr)
        return 2
    if args.hours is not None and args.end is not None:
        print("ocd sample_night: give --hours or --end, not both", file=sys.stderr)
        return 2
    problem = check_bad_weather(args.bad_weather, args.bad_weather_at, args.hours)
    if problem is None and args.output is not None:
        problem = check_output(args.output)
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
    except (ValueError, OSError) as exc:
        print(f"ocd sample_night: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0
