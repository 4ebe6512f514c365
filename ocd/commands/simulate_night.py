"""``ocd simulate_night``: a whole simulated night, end to end (``make demo``).

Generates (or reuses) a sample night, a shot list whose targets cross the
HET's elevation that night and their shuffle files, starts the main loop,
arms it, replays the night at ``--speedup`` and runs shots through the
stand-ins; ends with the night report (the same as ``ocd night_report``) and
its timeline picture, ``night.png`` in the work folder. See :mod:`ocd.sim.simulate`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ocd.commands.sample_night import bounded_night_date
from ocd.sim.limits import FIRST_YEAR, LAST_YEAR, MAX_HOURS
from ocd.config import Config

#: The most shots in the generated list: a night runs a few dozen; thousands
#: of them (and their shuffle files) took minutes before the night began.
MAX_SHOTS = 2000
#: The speed-up's bounds: below real time a night lasts longer than a night
#: (and 1e-308 overflowed the replay's clock), and beyond a hundred thousand
#: a whole night replays in under a second, faster than OCD can decide.
MIN_SPEEDUP, MAX_SPEEDUP = 1.0, 100_000.0
#: The file that says a folder is simulate_night's: only such a folder (or an
#: empty one) is written into, as the night overwrites shots.txt, the
#: databases and the night log there, which in a production folder are OCD's.
MARKER = ".ocd-simulated-night"


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "simulate_night",
                 "Run a whole simulated night: sample TCS events replayed into the main loop, "
                 "shots through stand-ins for syscmd and hetdex-dither.py, and a night report. "
                 "Exit status 0 when a shot ran, 1 when no shot ran, 2 when an option cannot be "
                 "used (nothing is written then).",
                 epilog=None)
    parser.set_defaults(command_module="simulate_night")
    add_config(parser)
    parser.add_argument("--workdir", default=None,
                        help="Folder for the shot list, shuffle files, databases and night log: "
                             "new, empty, or one that simulate_night made (it holds a "
                             f"{MARKER} file), as their files are overwritten; by default "
                             "simulated-night in the cache folder")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the night and the shot list")
    parser.add_argument("--date", type=bounded_night_date, default=None,
                        help=f"Night to simulate (YYYY-MM-DD, {FIRST_YEAR} to {LAST_YEAR})")
    parser.add_argument("--shots", type=int, default=24,
                        help=f"Number of shots in the list, 1 to {MAX_SHOTS}")
    parser.add_argument("--speedup", type=float, default=400.0,
                        help="How much faster than real time the night runs, "
                             f"{MIN_SPEEDUP:g} to {MAX_SPEEDUP:g}")
    parser.add_argument("--hours", type=float, default=None,
                        help=f"Simulate only the first HOURS of the night (at most {MAX_HOURS:g})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Log everything OCD does (the [general] log_level), not just a line "
                             "per decision and shot")
    parser.add_argument("--progress", choices=["yes", "no"], default=None,
                        help="Show the replay's progress bar (default: on a terminal)")


def check_numbers(args: argparse.Namespace) -> str | None:
    """What is wrong with --speedup, --shots or --hours (one option each), or None.

    Each had no upper bound: --hours inf, --shots 100000000 and --speedup
    1e-308 never ended, and --speedup inf replayed the night at once.
    """
    bounds = f"give {MIN_SPEEDUP:g} to {MAX_SPEEDUP:g} (times faster than real time)"
    if not args.speedup > 0:
        return f"--speedup must be positive, not {args.speedup:g}: {bounds}"
    if not (math.isfinite(args.speedup) and MIN_SPEEDUP <= args.speedup <= MAX_SPEEDUP):
        return f"--speedup {args.speedup:g}: {bounds}"
    if not 1 <= args.shots <= MAX_SHOTS:
        return f"--shots {args.shots}: give a number of shots from 1 to {MAX_SHOTS}"
    if args.hours is not None and not (args.hours > 0 and args.hours <= MAX_HOURS):
        return (f"--hours {args.hours:g}: give a positive number of hours, at most "
                f"{MAX_HOURS:g} (a night)")
    return None


def check_workdir(text: str | None) -> str | None:
    """What is wrong with --workdir, or None; the default (the cache's) is always fine.

    The night overwrites shots.txt, the databases and the night log of its
    folder: ``--workdir prod`` silently replaced a production shot list. A
    folder given is used only if it is new, empty or made by simulate_night
    (:data:`MARKER`); an empty name silently meant the cache folder.
    """
    if text is None:
        return None
    if not text:
        return ("--workdir is empty: give a folder, or leave the option out for the cache "
                "folder's simulated-night")
    workdir = Path(text)
    if workdir.exists() and not workdir.is_dir():
        return (f"--workdir {workdir.absolute()} is a file: give a folder "
                "(it is created when missing)")
    if workdir.is_dir() and not (workdir / MARKER).exists() and any(workdir.iterdir()):
        return (f"--workdir {workdir.absolute()} is not empty and not a folder simulate_night "
                f"made (no {MARKER} in it): its shots.txt and databases would be overwritten; "
                "give a new or empty folder")
    return None


def claim(workdir: Path) -> None:
    """Make ``workdir`` and mark it as simulate_night's (see :data:`MARKER`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / MARKER
    if not marker.exists():
        marker.write_text("Made by `ocd simulate_night`, which overwrites the files here on "
                          "its next night.\n", encoding="utf-8")


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react
    from ocd.logs import start_logging
    from ocd.services.sky_cache import keep_sky_spans
    from ocd.sim.cache import cache_dir
    from ocd.sim.simulate import check_night, describe, expected_plan, prepare, run_night

    problem = check_numbers(args) or check_workdir(args.workdir)
    if problem is not None:
        print(f"ocd simulate_night: {problem}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir) if args.workdir is not None else cache_dir() / "simulated-night"
    if workdir.exists() and not workdir.is_dir():
        print(f"ocd simulate_night: {workdir.absolute()} is a file: remove it, or give a "
              "--workdir", file=sys.stderr)
        return 2
    claim(workdir)
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
