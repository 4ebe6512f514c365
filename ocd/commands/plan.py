"""``ocd plan [DATE]``: the shots OCD would run tonight on a clear night, in order.

From the shot list (``[shots] shot_file``), the remaining counts in
``[shots] state_db`` (read only), ``[run_shot] exptimes`` and the
``[scheduler]`` settings, :func:`ocd.core.plan.plan_night` runs OCD's own
decision and scheduler on a simulated clock through the dark span of the
night. It reads no TCS and starts nothing. DATE is the date of the evening
the night begins (default: the night at the HET that is coming or under way).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ocd.commands import night_date
from ocd.config import Config

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "plan",
                 "Tonight's plan: the shots OCD would run on a clear night, in order, each "
                 "with its track, start and end; the dark span and the idle hours. Uses the "
                 "shot list, the remaining counts in [shots] state_db, [run_shot] exptimes and "
                 "the [scheduler] settings; reads no TCS and starts nothing.", epilog=None)
    parser.set_defaults(command_module="plan")
    add_config(parser)
    parser.add_argument("date", nargs="?", type=night_date, default=None,
                        help="Night to plan, as the date of its evening (YYYY-MM-DD; default: "
                             "the coming night at the HET, or the one under way)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE.png",
                        help="Also draw the plan (shots on the night's time axis, the dark "
                             "span shaded) as a PNG")
    parser.add_argument("--json", action="store_true",
                        help="Print the plan as JSON (ISO 8601 times and epoch seconds)")


def make_plan(config: Config, night: str) -> Any:
    """The :class:`ocd.core.plan.NightPlan` of ``night`` from the configuration's files.

    Raises ``ValueError`` (a bad or missing shot list included) with a
    message that names what is wrong.
    """
    from ocd.core.decide import DecisionSettings
    from ocd.core.plan import dark_span, plan_night
    from ocd.core.scheduler import Scheduler
    from ocd.core.shots import ShotListError, parse_shot_file
    from ocd.services.sky_cache import keep_sky_spans

    path = config.get_path("shots", "shot_file")
    if path is None:
        raise ValueError("no shot list: [shots] shot_file is empty")
    if not path.exists():
        raise ValueError(f"no shot list: [shots] shot_file {path} does not exist")
    try:
        shots = parse_shot_file(path)
    except ShotListError as exc:
        raise ValueError(f"shot list refused: {exc}") from None
    state_db = config.get_path("shots", "state_db")
    if state_db is not None:
        shots = _remaining(state_db, shots)
    settings = DecisionSettings.from_config(config)
    scheduler = Scheduler(shots, settings)
    keep_sky_spans()  # the sky from OCD's cache folder, as ocd run keeps it
    dusk, dawn = dark_span(scheduler, night, settings.max_sun_alt)
    return plan_night(scheduler, settings, dusk, dawn,
                      config.get_float("decision", "decide_interval"))


def _remaining(state_db: Path, shots: list[Any]) -> list[Any]:
    """``shots`` with the remaining counts of ``state_db``, or a ValueError naming the file.

    :func:`ocd.services.shot_store.remaining_counts` names a file it cannot
    read (:class:`StateDbError`); a count that is not one (NULL, text) comes
    back as the shot's ``n_obs`` and ended the plan in a traceback that named
    neither the file nor the shot.
    """
    from ocd.services.shot_store import StateDbError, remaining_counts

    where = f"state database {state_db} ([shots] state_db)"
    if state_db.is_dir():
        raise ValueError(f"{where}: is a folder, not a file")
    try:
        counted = remaining_counts(state_db, shots)
    except StateDbError as exc:
        raise ValueError(f"{where}: {exc.problem}") from None
    for shot in counted:
        count = shot.n_obs
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{where}: shot {shot.shotid}: remaining count {count!r} is not "
                             "a whole number >= 0")
    return counted


def _night_problem(night: str) -> str | None:
    """Why ``night`` cannot be planned: its morning must be a date that can be written.

    The plan's times are printed as dates; the night of 9999-12-31 ends in
    the year 10000, which no date can hold.
    """
    try:
        date.fromisoformat(night) + timedelta(days=1)
    except OverflowError:
        return (f"cannot plan the night of {night}: it ends after 9999-12-31, the last date "
                "that can be written; give a date up to 9999-12-30")
    return None


def _inputs(config: Config) -> list[tuple[str, Path | str | None]]:
    """The files the plan reads, which ``-o`` must never replace."""
    return [("the shot list ([shots] shot_file)", config.get_path("shots", "shot_file")),
            ("the state database ([shots] state_db)", config.get_path("shots", "state_db")),
            *(("a configuration file (--config)", name) for name in config.files_read)]


def _refused(args: argparse.Namespace, config: Config, night: str) -> str | None:
    """One line when DATE or ``-o`` cannot be used, checked before the plan is made."""
    problem = _night_problem(night)
    if problem:
        return f"ocd plan: {problem}"
    if args.output is not None:
        from ocd.services.night_plot import PictureError, check_picture_path

        try:
            check_picture_path(args.output, _inputs(config))
        except PictureError as exc:
            return f"ocd plan: -o/--output {exc}"
    return None


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.services.nightlog import night_of

    night = args.date or night_of(time.time())
    refused = _refused(args, config, night)
    if refused:
        print(refused, file=sys.stderr)
        return EXIT_USAGE
    try:
        plan = make_plan(config, night)
    except ValueError as exc:
        print(f"ocd plan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"night": night, **plan.to_json()}, indent=2))
    else:
        print(f"Night of {night} at the HET, on a clear sky")
        print(plan.format())
    if args.output is not None:
        from ocd.services.night_plot import plot_plan

        written = plot_plan(plan, args.output, title=f"OCD plan, night of {night}: "
                            f"{len(plan.shots)} shot(s), idle {plan.idle_seconds / 3600:.1f} h")
        print(f"picture: {written}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK
