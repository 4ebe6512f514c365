"""Look-ahead: plan the coming hours in priority order, start the plan's first shot.

Why: the greedy rule (the lowest priority observable now) spends a shot's
east pass when the same shot has a west pass later that night, and starts a
priority-2 shot minutes before a priority-1 window opens; measured against
the proved optimum (``bench/yield.py``) it loses about one priority-1 field
a night. Every shot takes the same time (the exposures plus the overhead),
so the night ahead is a one-machine schedule of equal-length jobs, each
with one or two time windows (its passes on the EAST and WEST tracks,
clipped to darkness).

The plan, at ``now`` for a horizon of ``[scheduler] lookahead`` seconds:

1. *Jobs*: every shot with a pass that opens before ``now + horizon``, once
   per remaining ``n_obs``, with all of its passes as *options*.
2. *Insertion in priority order* (ties: the job whose last chance ends
   first): a job joins the plan when the plan plus the job can still all be
   done. It first tries an idle gap of the current sequence; otherwise a
   depth-first search over sequences (:func:`sequence`) looks for one.
   Each job goes on whichever pass lets everything fit.
3. *The first step*: when the plan's first shot cannot start now, a planned
   shot that can start now goes first if the rest still fits.

The plan waits with nothing running only when waiting gains a
higher-priority observation than starting the greedy pick now would keep
(:func:`priority_counts` of both plans, compared lexicographically).

Everything here is pure: times in, plan out; the search is bounded by a
node budget (not a clock), so the same inputs give the same plan.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from ocd.core.scheduler import Candidate
from ocd.core.shots import TRACK_NAMES

if TYPE_CHECKING:
    from ocd.core.scheduler import Scheduler

#: Tolerance of time comparisons, s.
EPS = 1e-6
#: Search nodes one insertion may use before the job is left out.
NODES_PER_JOB = 400
#: Search nodes one plan may use in all; past it only idle gaps are filled.
NODES_PER_PLAN = 40000


@dataclass(frozen=True)
class Option:
    """One pass of a job: it may start from ``begin`` to ``latest`` on ``track``."""

    track: int
    begin: float
    latest: float
    end: float  # when the pass leaves the band (``track_end`` of a candidate)


@dataclass(frozen=True)
class Job:
    """One observation of one shot, with its passes in time order."""

    index: int  # position in the scheduler's shot list
    shotid: str
    priority: int
    options: tuple[Option, ...]
    copy: int = 0  # 0, 1, ... for a shot with n_obs > 1

    @property
    def last_chance(self) -> float:
        return self.options[-1].latest


@dataclass(frozen=True)
class Step:
    """A planned observation: ``job`` on ``option`` from ``start``."""

    job: Job
    option: Option
    start: float


class _OutOfBudget(Exception):
    pass


def _earliest(job: Job, t: float) -> tuple[float, Option] | None:
    """The earliest start at or after ``t`` on any pass of ``job``."""
    for option in job.options:
        if option.latest >= t - EPS:
            return max(t, option.begin), option
    return None


def _search(t: float, jobs: list[Job], duration: float, budget: list[int]) -> list[Step] | None:
    if not jobs:
        return []
    budget[0] -= 1
    if budget[0] < 0:
        raise _OutOfBudget
    starts = []
    for job in jobs:
        found = _earliest(job, t)
        if found is None:
            return None
        starts.append(found)
    # Necessary: the k-th last chance leaves room for k shots from t.
    for k, last in enumerate(sorted(job.last_chance for job in jobs)):
        if t + k * duration > last + EPS:
            return None
    first_end = min(start for start, _ in starts) + duration
    order = sorted(range(len(jobs)), key=lambda i: (starts[i][1].latest, jobs[i].priority, starts[i][0]))
    for i in order:
        start, option = starts[i]
        if start >= first_end - EPS:
            continue  # another shot fits wholly before it: that order is at least as good
        tail = _search(start + duration, jobs[:i] + jobs[i + 1:], duration, budget)
        if tail is not None:
            return [Step(jobs[i], option, start)] + tail
    return None


def sequence(t: float, jobs: Sequence[Job], duration: float, nodes: int = NODES_PER_JOB) -> list[Step] | None:
    """An order and start times (from ``t``) that do all ``jobs``, or None.

    Depth-first over which job goes next, each at its earliest start, in
    order of its pass's latest start; orders that leave a gap a whole shot
    could fill are skipped. None also when ``nodes`` run out.
    """
    try:
        return _search(t, list(jobs), duration, [nodes])
    except _OutOfBudget:
        return None


def _into_gap(steps: list[Step], job: Job, t: float, duration: float) -> list[Step] | None:
    """``steps`` with ``job`` in an idle gap, nothing else moved; or None."""
    bounds = [t] + [s.start + duration for s in steps]
    ends = [s.start for s in steps] + [float("inf")]
    for k, (low, high) in enumerate(zip(bounds, ends)):
        for option in job.options:
            start = max(low, option.begin)
            if start <= option.latest + EPS and start + duration <= high + EPS:
                return steps[:k] + [Step(job, option, start)] + steps[k:]
    return None


def latest_starts(steps: Sequence[Step], duration: float) -> list[float]:
    """How late each step may start with the rest still in time (same order)."""
    out = [0.0] * len(steps)
    limit = float("inf")
    for k in range(len(steps) - 1, -1, -1):
        limit = min(steps[k].option.latest, limit - duration)
        out[k] = limit
    return out


@dataclass
class Plan:
    """The plan made at ``made``: ``steps`` in time order, and what it cost."""

    made: float
    steps: tuple[Step, ...]
    jobs: tuple[Job, ...]
    nodes: int
    latest: tuple[float, ...] = ()
    #: (shotid, track) of a greedy pick -> the plan that starts it now (cache).
    forced: dict = field(default_factory=dict)

    def counts(self) -> tuple[tuple[int, int], ...]:
        return priority_counts(step.job.priority for step in self.steps)


def priority_counts(priorities) -> tuple[tuple[int, int], ...]:
    """``((priority, count), ...)`` in priority order."""
    counts: dict[int, int] = {}
    for p in priorities:
        counts[p] = counts.get(p, 0) + 1
    return tuple(sorted(counts.items()))


def gained(better: tuple[tuple[int, int], ...], worse: tuple[tuple[int, int], ...]) -> int | None:
    """The most urgent priority of which ``better`` has more, if it wins lexicographically."""
    a, b = dict(better), dict(worse)
    for p in sorted(set(a) | set(b)):
        if a.get(p, 0) != b.get(p, 0):
            return p if a.get(p, 0) > b.get(p, 0) else None
    return None


def order_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Insertion order: priority, then the job whose last chance ends first."""
    return sorted(jobs, key=lambda j: (j.priority, j.last_chance, j.options[0].begin, j.index, j.copy))


def build_plan(jobs: Sequence[Job], now: float, duration: float,
               first: Step | None = None) -> Plan:
    """Insert ``jobs`` in priority order into a plan that starts at ``now``.

    With ``first``, that step is fixed at the head (the plan that starts the
    greedy pick now, for the comparison that justifies waiting).
    """
    budget = NODES_PER_PLAN
    t = now if first is None else first.start + duration
    planned: list[Job] = []
    steps: list[Step] = []
    for job in order_jobs(jobs):
        fitted = _into_gap(steps, job, t, duration)
        if fitted is None and budget > 0:
            box = [min(NODES_PER_JOB, budget)]
            try:
                fitted = _search(t, planned + [job], duration, box)
            except _OutOfBudget:
                fitted = None
            budget -= min(NODES_PER_JOB, budget) - max(box[0], 0)
        if fitted is not None:
            planned.append(job)
            steps = fitted
    if first is None and steps and steps[0].start > now + EPS:
        # Fill the idle start with a planned shot that can go now, if the rest still fits.
        for job in order_jobs(planned):
            option = next((o for o in job.options if o.begin <= now + EPS <= o.latest + EPS), None)
            if option is None:
                continue
            rest = [j for j in planned if j is not job]
            tail = sequence(now + duration, rest, duration)
            if tail is not None:
                steps = [Step(job, option, now)] + tail
                break
    if first is not None:
        steps = [first] + steps
    return Plan(made=now, steps=tuple(steps), jobs=tuple(jobs), nodes=NODES_PER_PLAN - budget,
                latest=tuple(latest_starts(steps, duration)))


# -- the decision's side: jobs from the scheduler, the cached plan, the pick ---------

#: A plan is made again at least this often (s): passes enter the horizon.
REPLAN_AFTER = 600.0
#: Planned passes are shrunk by this much at both ends (s), so a planned
#: start is observable by the decision's own rule despite rounding.
MARGIN = 2.0


@dataclass(frozen=True)
class Choice:
    """What the look-ahead says at ``now``: a pick, or wait; and why, for people."""

    pick: Candidate | None
    note: str = ""  # set when the choice differs from the greedy rule's
    waiting: bool = False  # the plan waits although the greedy rule would start a shot
    replanned: bool = False


def hhmm(t: float) -> str:
    """``07:39``: a time of the night (UTC), as people read it in a note."""
    return _time.strftime("%H:%M", _time.gmtime(t))


def jobs_for(scheduler: "Scheduler", now: float, duration: float, horizon: float) -> list[Job]:
    """Every observation the plan may place: passes opening before ``now + horizon``."""
    import numpy as np

    begin, end, usable = scheduler.passes(now)
    if begin.size == 0:
        return []
    first = begin + MARGIN
    latest = end - duration - MARGIN
    relevant = usable & (begin < now + horizon) & (latest >= now)
    shots = np.flatnonzero(relevant.any(axis=0))
    if shots.size == 0:
        return []
    reach = min(float(end[relevant].max()), now + 86400.0)
    dark = scheduler.dark_intervals(now, max(reach, now + duration))
    jobs: list[Job] = []
    for i in shots.tolist():
        shot = scheduler.shots[i]
        options = []
        for track in (0, 1):
            if not relevant[track, i]:
                continue
            for low, high in dark:
                b = max(float(first[track, i]), low, now)
                # Start within the horizon: a pass beyond it is not free room.
                last = min(float(latest[track, i]), high - duration, now + horizon)
                if last >= b:
                    options.append(Option(track, b, last, float(end[track, i])))
        if not options:
            continue
        options.sort(key=lambda o: o.begin)
        room = sum(int((o.latest - o.begin) // duration) + 1 for o in options)
        for copy in range(min(shot.n_obs, room)):
            jobs.append(Job(i, shot.shotid, shot.priority, tuple(options), copy))
    return jobs


def _forced(plan: Plan, pick: Candidate, now: float, duration: float) -> Plan:
    """The plan that starts ``pick`` now (cached on ``plan``)."""
    key = (pick.shot.shotid, pick.track)
    found = plan.forced.get(key)
    if found is None:
        rest = list(plan.jobs)
        mine = next((j for j in rest if j.shotid == pick.shot.shotid), None)
        if mine is not None:
            rest.remove(mine)
        job = mine or Job(-1, pick.shot.shotid, pick.shot.priority, ())
        step = Step(job, Option(pick.track, now, now, pick.track_end), now)
        found = build_plan(rest, now, duration, first=step)
        plan.forced[key] = found
    return found


def _why(plan: Plan, pick: Candidate, greedy: Candidate, now: float, duration: float) -> str:
    """Why the plan's pick is not the greedy one: ``DEX00017 first: DEX00012 keeps its west pass at 07:39``."""
    head = f"{pick.shot.shotid} first: {greedy.shot.shotid}"
    later = next((s for s in plan.steps[1:] if s.job.shotid == greedy.shot.shotid), None)
    if later is not None:
        if later.option.track != greedy.track:
            return f"{head} keeps its {TRACK_NAMES[later.option.track].lower()} pass at {hhmm(later.start)}"
        return f"{head} follows at {hhmm(later.start)}"
    lost = gained(plan.counts(), _forced(plan, greedy, now, duration).counts())
    return f"{head} (priority {greedy.shot.priority}) now would lose a priority-{lost} observation"


def choose(scheduler: "Scheduler", now: float, duration: float, horizon: float,
           context: object = None) -> Choice:
    """The look-ahead's pick at ``now``; the plan is reused while it holds.

    ``context`` is whatever else the plan depends on (the decision passes
    its blockers): a change of it, of the counts (a new scheduler from
    ``with_remaining``: a shot finished, or a new list), of the settings,
    the first step's pass closing, or :data:`REPLAN_AFTER` (passes enter
    the horizon as time goes on) make a new plan. A plan that is not
    followed (OCD blocked) may slip; it is made again when the blocker goes.
    """
    greedy = scheduler.best(now, duration)
    key = (duration, horizon, scheduler._half_width, scheduler.max_sun_alt, context)
    cached = scheduler._plan
    plan: Plan | None = None
    replanned = False
    if cached is not None and cached[0] == key:
        old: Plan = cached[1]
        if old.made - EPS <= now <= old.made + REPLAN_AFTER and (
                not old.steps or now <= old.steps[0].option.latest + EPS):
            plan = old
    if plan is None:
        plan = build_plan(jobs_for(scheduler, now, duration, horizon), now, duration)
        scheduler._plan = (key, plan)
        replanned = True
    if not plan.steps:
        return Choice(greedy, replanned=replanned)
    first = plan.steps[0]
    shot = scheduler.shots[first.job.index]
    if first.start <= now + EPS:
        if not scheduler.is_observable(first.job.index, first.option.track, now, duration):
            return Choice(greedy, replanned=replanned)  # rounding at a pass's edge: the rule decides
        pick = Candidate(shot, first.option.track, first.option.end)
        if greedy is None or (greedy.shot.shotid == shot.shotid and greedy.track == pick.track):
            return Choice(pick, replanned=replanned)
        if gained(plan.counts(), _forced(plan, greedy, now, duration).counts()) is None:
            return Choice(greedy, replanned=replanned)  # the plan gains nothing by another order
        return Choice(pick, note=_why(plan, pick, greedy, now, duration), replanned=replanned)
    if greedy is None:
        return Choice(None, replanned=replanned)
    lost = gained(plan.counts(), _forced(plan, greedy, now, duration).counts())
    if lost is None:
        return Choice(greedy, replanned=replanned)  # waiting gains nothing more urgent
    note = (f"waiting for {shot.shotid} (priority {shot.priority}) on the "
            f"{TRACK_NAMES[first.option.track]} track at {hhmm(first.start)}: "
            f"{greedy.shot.shotid} (priority {greedy.shot.priority}) now would lose a "
            f"priority-{lost} observation")
    return Choice(None, note=note, waiting=True, replanned=replanned)
