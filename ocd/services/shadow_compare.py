"""A shadow night's comparison: the crew's shots against what OCD would have done.

In shadow mode (``[run] shadow``) OCD decides as if shots were allowed and
starts nothing; the night log keeps each decision change and the shots the
crew ran (``ocd run_shot -e``). Along the night's time line:

- OCD *would observe* while its decision has no blocker other than
  ``shot_running`` (a crew shot running is observing time it agrees with);
  it *would wait* otherwise, for the blockers left;
- the crew *observes* while one of its shots runs;
- the time counted for agreement is the dark, open-shutter time: decisions
  without ``daylight`` and ``shutter_closed``.

Agreement is the share of that time where both say the same (observe now,
or wait). Pure: a :class:`ocd.services.night_report.NightReport` in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ocd.services.night_report import NightReport
from ocd.services.nightlog import OBSERVING, utc_clock

#: Blockers that take a moment out of the compared (dark, open-shutter) time.
NOT_COMPARED = ("daylight", "shutter_closed")


@dataclass(frozen=True)
class Stretch:
    start: float
    end: float
    #: Shots OCD would have run (would-observe stretches) or blockers it waited for.
    what: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ShadowComparison:
    compared_seconds: float
    agree_seconds: float
    #: OCD would have observed while nobody did (and which shot).
    ocd_only: tuple[Stretch, ...] = ()
    #: The crew observed while OCD would have waited (and for which blockers).
    crew_only: tuple[Stretch, ...] = ()
    #: Stretches where OCD would observe (crew shot or not), with the shot (the picture's lane).
    would_run: tuple[Stretch, ...] = field(default=(), repr=False)

    @property
    def agreement(self) -> float | None:
        """Share of the compared time where OCD and the crew agree; None without such time."""
        return None if self.compared_seconds <= 0 else self.agree_seconds / self.compared_seconds

    def format(self) -> str:
        share = self.agreement
        lines = ["Shadow night: the crew's shots against what OCD would have done",
                 f"agreement: {'-' if share is None else f'{share:.1%}'} of "
                 f"{self.compared_seconds / 3600:.2f} h of dark, open-shutter time "
                 "(both observing, or both waiting)"]
        lines.append(f"OCD would have observed while nobody did: "
                     f"{sum(s.seconds for s in self.ocd_only) / 3600:.2f} h")
        for s in self.ocd_only:
            lines.append(f"  {utc_clock(s.start)}-{utc_clock(s.end)} {s.seconds / 60:5.0f} min  "
                         f"would run {', '.join(s.what) or '?'}")
        lines.append(f"the crew observed while OCD would have waited: "
                     f"{sum(s.seconds for s in self.crew_only) / 3600:.2f} h")
        for s in self.crew_only:
            lines.append(f"  {utc_clock(s.start)}-{utc_clock(s.end)} {s.seconds / 60:5.0f} min  "
                         f"waiting for {', '.join(s.what) or '?'}")
        return "\n".join(lines)


def compare_shadow(report: NightReport) -> ShadowComparison:
    """The comparison of a shadow night (see the module doc)."""
    crew = [(s.start, s.end if s.end is not None else (report.last or s.start))
            for s in report.shots]
    cuts = sorted({t for seg in report.segments for t in (seg.start, seg.end)}
                  | {t for span in crew for t in span})
    compared = agree = 0.0
    ocd_only: list[Stretch] = []
    crew_only: list[Stretch] = []
    would_run: list[Stretch] = []

    def extend(out: list[Stretch], a: float, b: float, what: tuple[str, ...]) -> None:
        if out and abs(out[-1].end - a) < 1e-6:
            last = out[-1]
            merged = tuple(dict.fromkeys(last.what + what))
            out[-1] = Stretch(last.start, b, merged)
        else:
            out.append(Stretch(a, b, what))

    segments = iter(report.segments)
    segment = next(segments, None)
    for a, b in zip(cuts, cuts[1:]):
        while segment is not None and segment.end <= a:
            segment = next(segments, None)
        if segment is None or segment.start > a or b <= a:
            continue
        waiting_for = tuple(x for x in segment.blockers if x != OBSERVING)
        ocd = not waiting_for
        observing = any(s <= a and b <= e for s, e in crew)
        if ocd:
            extend(would_run, a, b, (segment.shotid,) if segment.shotid else ())
        if any(x in segment.blockers for x in NOT_COMPARED):
            continue
        compared += b - a
        if ocd == observing:
            agree += b - a
        elif ocd:
            extend(ocd_only, a, b, (segment.shotid or "?",))
        else:
            extend(crew_only, a, b, waiting_for)
    return ShadowComparison(compared, agree, tuple(ocd_only), tuple(crew_only),
                            tuple(would_run))
