"""``ocd night_report [DATE]``: the night, from the night log, the morning after.

Reads ``[general] night_log`` (or ``-l/--night-log``); prints the night's
date and span, its shots (start, end, observation number, outcome; a shot
still open when the log ends is "unfinished"), the time lost to each blocker,
and with ``-o FILE.png`` draws the timeline of verdict, blockers and shots.
DATE is the date of the evening the night began (default: the last night in
the log).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ocd.commands import night_date
from ocd.config import Config

EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "night_report",
                 "Report a night from the night log ([general] night_log): its span, the shots "
                 "with their observation numbers and outcomes, the time lost to each blocker, "
                 "and optionally a timeline picture.", epilog=None)
    parser.set_defaults(command_module="night_report")
    add_config(parser)
    parser.add_argument("date", nargs="?", type=night_date, default=None,
                        help="Night to report, as the date of its evening (YYYY-MM-DD; "
                             "default: the last night in the log)")
    parser.add_argument("-l", "--night-log", default=None,
                        help="Night log to read (default: [general] night_log)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE.png",
                        help="Also draw the night's timeline (verdict, blockers, shots) as a PNG")


def report_text(path: Any, night: str | None, picture: Any = None) -> tuple[int, str]:
    """The exit status and the text of the report (the picture is written when asked).

    A night log that is missing or damaged is exit 2 with one line naming it.
    """
    from ocd.services.night_report import NightLogError, build_report, load_night, nights_in

    try:
        night, rows = load_night(path, night)
        known = [] if rows else nights_in(path)[-5:]
    except (FileNotFoundError, NightLogError) as exc:
        return EXIT_USAGE, f"ocd night_report: {exc}"
    if not rows:
        return EXIT_NOTHING, (f"ocd night_report: nothing recorded for the night of "
                              f"{night or '?'} in {path} (last nights in it: "
                              f"{', '.join(known) or 'none'})")
    report = build_report(rows, night)
    text = report.format()
    if report.shadow:
        from ocd.services.shadow_compare import compare_shadow

        text += "\n\n" + compare_shadow(report).format()
    if picture is not None:
        from ocd.services.night_plot import plot_night

        text += f"\n\ntimeline: {plot_night(report, picture)}"
    return EXIT_OK, text


def _refused(args: argparse.Namespace, path: Any) -> str | None:
    """One line when ``-l`` or ``-o`` cannot be used, checked before the log is read.

    An empty ``-l`` would quietly report on the configured log instead; an
    ``-o`` that names the log, a file that is not a PNG or a missing folder
    would destroy a file or make folders (:func:`ocd.services.night_plot.check_picture_path`).
    """
    if args.night_log is not None and not args.night_log:
        return "ocd night_report: -l/--night-log is empty: give the night log FILE to read"
    if args.output is not None:
        from ocd.services.night_plot import PictureError, check_picture_path

        try:
            check_picture_path(args.output, [("the night log", path)])
        except PictureError as exc:
            return f"ocd night_report: -o/--output {exc}"
    return None


def main(args: argparse.Namespace, config: Config) -> int:
    path = args.night_log or config.get_path("general", "night_log")
    refused = _refused(args, path)
    if refused:
        print(refused, file=sys.stderr)
        return EXIT_USAGE
    if not path:
        print("ocd night_report: no night log: [general] night_log is empty; give "
              "-l/--night-log FILE", file=sys.stderr)
        return EXIT_USAGE
    code, text = report_text(path, args.date, args.output)
    print(text, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code
