"""``ocd simulate_night``: a whole simulated night, end to end (``make demo``).

Generates (or reuses) a sample night, a shot list whose targets cross the
HET's elevation that night and their shuffle files, starts the main loop,
arms it, replays the night at ``--speedup`` and runs shots through the
stand-ins; ends with the night report (the same as ``ocd night_report``) and
its timeline picture, ``night.png`` in the work folder. See :mod:`ocd.sim.simulate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ocd.commands import night_date
from ocd.config import Config


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "simulate_night",
                 "Run a whole simulated night: sample TCS events replayed into the main loop, "
                 "shots through stand-ins for syscmd and hetdex-dither.py, and a night report.",
                 epilog=None)
    parser.set_defaults(command_module="simulate_night")
    add_config(parser)
    parser.add_argument("--workdir", default=None,
                        help="Folder for the shot list, shuffle files, databases and night log "
                             "(default: simulated-night in the cache folder)")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the night and the shot list")
    parser.add_argument("--date", type=night_date, default=None, help="Night to simulate (YYYY-MM-DD)")
    parser.add_argument("--shots", type=int, default=24, help="Number of shots in the list")
    parser.add_argument("--speedup", type=float, default=400.0,
                        help="How much faster than real time the night runs")
    parser.add_argument("--hours", type=float, default=None,
                        help="Simulate only the first HOURS of the night")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Log everything OCD does (the [general] log_level), not just a line "
                             "per decision and shot")
    parser.add_argument("--progress", choices=["yes", "no"], default=None,
                        help="Show the replay's progress bar (default: on a terminal)")


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react
    from ocd.logs import start_logging
    from ocd.services.sky_cache import keep_sky_spans
    from ocd.sim.cache import cache_dir
    from ocd.sim.simulate import check_night, describe, expected_plan, prepare, run_night

    if not args.speedup > 0 or args.shots < 1:
        print("ocd simulate_night: --speedup must be positive and --shots at least 1",
              file=sys.stderr)
        return 2
    if args.hours is not None and not args.hours > 0:
        print(f"ocd simulate_night: --hours {args.hours:g}: give a positive number of hours",
              file=sys.stderr)
        return 2
    workdir = Path(args.workdir) if args.workdir else cache_dir() / "simulated-night"
    if workdir.exists() and not workdir.is_dir():
        print(f"ocd simulate_night: --workdir {workdir.absolute()} is a file: give a folder "
              "(it is created when missing)", file=sys.stderr)
        return 2
    print(f"ocd simulate_night: preparing the night in {workdir} ...", file=sys.stderr)
    keep_sky_spans()  # the sky from OCD's cache folder, as ocd run keeps it
    plan = prepare(workdir, seed=args.seed, date=args.date, shots=args.shots,
                   speedup=args.speedup, hours=args.hours,
                   extra=[("general", "log_level",
                           config.get_str("general", "log_level") if args.verbose else "warn"),
                          ("general", "json_log", config.get_str("general", "json_log"))])
    start_logging(plan.config, program="simulate_night")
    expected = expected_plan(plan)
    print("The plan (ocd plan) for this night, its shot list and settings:")
    print(expected.format())
    print()
    progress = sys.stderr.isatty() if args.progress is None else args.progress == "yes"

    def described(report: Any) -> int:
        from ocd.services.night_plot import plot_night

        print(describe(plan, report))
        print()
        print(check_night(expected, report).format())
        print(f"\ntimeline: {plot_night(report, plan.workdir / 'night.png')} (again: ocd "
              f"night_report -l {plan.config.get_path('general', 'night_log')} -o FILE.png)")
        return 0 if report.succeeded else 1

    return react(lambda reactor: run_night(plan, reactor, sys.stdout, progress,
                                           narrate=not args.verbose).addCallback(described))
