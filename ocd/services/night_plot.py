"""The night's timeline as a picture: verdict, blockers and shots along the night.

matplotlib with the Agg backend (no display needed, safe in a daemon or CI).
One row for the verdict (green: run, grey: wait), one per blocker that
occurred (in the spec's order), one for the shots (coloured by outcome,
labelled with the observation number), with a legend; the x axis is UTC.
"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ocd.core.topics import BLOCKERS
from ocd.services.night_report import NightReport

if TYPE_CHECKING:
    from ocd.core.plan import NightPlan

#: Size of the picture: WIDTH x HEIGHT pixels.
WIDTH, HEIGHT, DPI = 1200, 500, 100

OUTCOME_COLOURS = {"done": "tab:green", "failed": "tab:red", "lost": "tab:purple",
                   "unfinished": "tab:orange"}


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


#: The first 8 bytes of every PNG file: what an existing file must start with to be replaced.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PictureError(ValueError):
    """``-o FILE.png`` that must not be written; the message names the file and why."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def check_picture_path(path: str | os.PathLike[str],
                       inputs: Iterable[tuple[str, str | os.PathLike[str] | None]] = ()) -> Path:
    """``path`` as the picture to write, or a :class:`PictureError` before any work is done.

    ``-o`` replaces the file it names, so a slip on the command line (the
    night log or the shot list after ``-o``) would destroy a record with a
    picture, and a typo in a folder would make folders. Refused: an empty
    name; a file among ``inputs`` (what the command reads: (description, path)),
    even one not written yet; a folder; an existing regular file that is not
    a PNG already; a folder that does not exist. A device (``/dev/null``) is
    written to as it is.
    """
    if not os.fspath(path):
        raise PictureError("", "is empty: give the FILE.png to write")
    target = Path(path)
    for what, source in inputs:
        if source is not None and os.fspath(source) and _same_file(target, Path(source)):
            raise PictureError(path, f"is {what}, which this command reads: not replaced by "
                                     "a picture; give another FILE.png")
    if target.is_dir():
        raise PictureError(path, "is a folder: give a FILE.png in it")
    if target.exists():
        if target.is_file() and not _is_png(target):
            raise PictureError(path, "exists and is not a PNG picture: not replaced; remove "
                                     "it or give another FILE.png")
        return target
    folder = target.parent
    if not folder.exists():
        raise PictureError(path, f"its folder {folder} does not exist (no folder is made "
                                 "for -o/--output)")
    if not folder.is_dir():
        raise PictureError(path, f"{folder} is not a folder")
    return target


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode, or the same path once resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _is_png(path: Path) -> bool:
    """Whether the file starts with the PNG signature (an unreadable file is not one)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False


def _write_png(fig: Any, path: str | Path) -> Path:
    """Render ``fig`` in memory, then write it to ``path``; returns the path.

    Rendered first so that a failure of matplotlib leaves the file as it was;
    a failure to write (a full disk, ``/dev/full``) is an ``OSError`` that
    names the file (matplotlib's does not), which ``ocd.cli`` reports in one line.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    path = Path(path)
    try:
        with open(path, "wb") as file:
            file.write(buffer.getvalue())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from None
    return path


def plot_night(report: NightReport, path: str | Path) -> Path:
    """Write the timeline PNG of ``report`` to ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    seen = {name for segment in report.segments for name in segment.blockers}
    rows = ["verdict"] + [name for name in BLOCKERS if name in seen] + ["shots"]
    comparison = None
    if report.shadow:
        from ocd.services.shadow_compare import compare_shadow

        comparison = compare_shadow(report)
        rows = rows[:-1] + ["crew shots", "OCD would observe"]
    y = {name: len(rows) - 1 - i for i, name in enumerate(rows)}

    def bar(row: str, start: float, end: float, colour: str) -> None:
        width = (end - start) / 86400.0  # matplotlib dates are in days
        ax.broken_barh([(mdates.date2num(_utc(start)), width)], (y[row] - 0.4, 0.8),
                       facecolors=colour)

    span = (report.last or 0.0) - (report.first or 0.0)
    visible = max(span / 400.0, 1.0)  # a "run" lasts seconds: draw it at least this wide
    for segment in report.segments:
        if segment.verdict != "run":
            bar("verdict", segment.start, segment.end, "lightgrey")
    for segment in report.segments:  # drawn last: over the waits around them
        if segment.verdict == "run":
            bar("verdict", segment.start, max(segment.end, segment.start + visible), "tab:green")
        for name in segment.blockers:
            bar(name, segment.start, segment.end,
                "tab:blue" if name == "shot_running" else "tab:red")
    end_of_log = report.last if report.last is not None else 0.0
    shot_row = "crew shots" if comparison is not None else "shots"
    if comparison is not None:
        for stretch in comparison.would_run:
            bar("OCD would observe", stretch.start, stretch.end, "tab:green")
            ax.text(mdates.date2num(_utc(stretch.start)), y["OCD would observe"] + 0.45,
                    " ".join(stretch.what)[:40], fontsize=6, va="bottom")
        for stretch in comparison.ocd_only:
            bar("OCD would observe", stretch.start, stretch.end, "tab:olive")
    for shot in report.shots:
        end = shot.end if shot.end is not None else end_of_log
        bar(shot_row, shot.start, max(end, shot.start + 30.0),
            OUTCOME_COLOURS.get(shot.outcome, "black"))
        if shot.obs_number is not None:
            ax.text(mdates.date2num(_utc(shot.start)), y[shot_row] + 0.45, str(shot.obs_number),
                    fontsize=7, va="bottom")
    from matplotlib.patches import Patch

    handles = [Patch(color="tab:green", label="run"), Patch(color="lightgrey", label="wait")]
    handles += [Patch(color=colour, label=f"shot {outcome}")
                for outcome, colour in OUTCOME_COLOURS.items()
                if any(shot.outcome == outcome for shot in report.shots)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=False)
    ax.set_yticks([y[name] for name in rows], rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    if report.first is not None and report.last is not None and report.last > report.first:
        ax.set_xlim(mdates.date2num(_utc(report.first)), mdates.date2num(_utc(report.last)))
    ax.set_xlabel("UTC")
    ax.grid(axis="x", alpha=0.3)
    done = report.count("done")
    ax.set_title(f"OCD, night of {report.night or '?'}: {len(report.shots)} shot(s), "
                 f"{done} done" + ("" if comparison is None else
                                   f"; SHADOW: agreement {comparison.agreement or 0:.0%} "
                                   "(olive: OCD would observe, nobody did)"))
    fig.tight_layout()
    return _write_png(fig, path)


PRIORITY_COLOURS = {1: "tab:red", 2: "tab:orange", 3: "tab:blue"}


def plot_plan(plan: "NightPlan", path: str | Path, title: str = "") -> Path:
    """Write tonight's plan as a PNG: shots as bars on the night's time axis, dark span shaded.

    One lane per track (EAST, WEST), bars coloured by priority and labelled
    with the shot id; idle stretches in grey on their own lane.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(WIDTH / DPI, 300 / DPI), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    lanes = {"EAST": 2, "WEST": 1, "idle": 0}
    dusk, dawn = plan.dark
    margin = 1800.0
    ax.axvspan(mdates.date2num(_utc(dusk)), mdates.date2num(_utc(dawn)), color="midnightblue",
               alpha=0.12, lw=0)
    for shot in plan.shots:
        y = lanes.get(shot.track_name, 1)
        ax.broken_barh([(mdates.date2num(_utc(shot.start)), (shot.end - shot.start) / 86400.0)],
                       (y - 0.35, 0.7), facecolors=PRIORITY_COLOURS.get(shot.priority, "grey"),
                       edgecolors="black", linewidth=0.4)
        ax.text(mdates.date2num(_utc(shot.start + 60.0)), y + 0.38, shot.shotid, fontsize=6,
                va="bottom", rotation=30)
    for idle in plan.idle:
        ax.broken_barh([(mdates.date2num(_utc(idle.start)), (idle.end - idle.start) / 86400.0)],
                       (-0.35, 0.7), facecolors="lightgrey")
    ax.set_yticks([2, 1, 0], ["EAST", "WEST", "idle"])
    ax.set_ylim(-0.6, 3.4)
    ax.set_xlim(mdates.date2num(_utc(dusk - margin)), mdates.date2num(_utc(dawn + margin)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.set_xlabel("UTC (shaded: dark, Sun below "
                  f"{plan.settings.get('max_sun_alt', -12):g} deg)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=c, label=f"priority {p}") for p, c in PRIORITY_COLOURS.items()],
              loc="upper right", fontsize=7, ncol=3)
    ax.set_title(title or f"OCD plan: {len(plan.shots)} shot(s), idle "
                 f"{plan.idle_seconds / 3600:.1f} h of {(dawn - dusk) / 3600:.1f} h dark")
    fig.tight_layout()
    return _write_png(fig, path)
