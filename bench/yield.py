"""Benchmark: how well OCD's scheduler fills a night, against the proved optimum.

Run: ``.venv/bin/python bench/yield.py [--nights 15] [--lookahead 14400 ...]``
(needs the ``bench`` extra: ``pip install '.[bench]'`` for OR-Tools).

For each generated clear night (seeded: 113-139 shots, priorities 1/2/3 at
about 12/28/60 %, some ``n_obs 2``, shots in the HETDEX spring and fall
fields and elsewhere on the sky, placed with ``ocd.sim.shotlist``):

1. OCD's own ``decide()`` and scheduler run on a simulated clock from dusk
   to dawn (``ocd.core.plan.plan_night``, the very loop of ``ocd plan``;
   the Sun at ``[scheduler] max_sun_alt``): a decision every
   ``[decision] decide_interval`` seconds, the next one at the end of a
   shot. Once with ``lookahead = 0`` (the greedy rule: the baseline, in the
   same run) and once per look-ahead asked for.
2. The optimum of the same night: OR-Tools CP-SAT, one optional interval
   (the shot's duration) per possible observation over each shot's passes
   on both tracks within the dark time (in whole seconds), no overlap, at
   most ``n_obs`` per shot, maximised lexicographically: priority 1 first,
   then 2 with 1 held at its optimum, then 3. Each stage must end OPTIMAL
   (CP-SAT's proof); otherwise the bound it proved is used and said.
3. Checks: OCD's schedule is a feasible solution of the optimizer's model
   (CP-SAT is asked to complete it with every observation fixed), and the
   model's windows agree with what the decision calls observable (every
   minute of the night, every shot, both tracks) and with an independent
   astropy AltAz at the window edges.

Prints per night and in total the observations per priority for each rule
and the optimum, and the weighted (3:2:1) ratio to the optimum.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

try:
    from ortools.sat.python import cp_model
except ImportError:  # pragma: no cover - depends on the environment
    cp_model = None

from ocd.core.astro import HET_LOCATION, quiet_repeats  # noqa: E402
from ocd.core.site import HET_ELEVATION, HET_LATITUDE  # noqa: E402
from ocd.config import Config  # noqa: E402
from ocd.core.decide import DecisionSettings  # noqa: E402
from ocd.core.plan import plan_night  # noqa: E402
from ocd.core.scheduler import Scheduler  # noqa: E402
from ocd.core.shots import Shot  # noqa: E402
from ocd.sim.shotlist import make_sample_shots  # noqa: E402

WEIGHTS = {1: 3, 2: 2, 3: 1}
PRIORITIES = (1, 2, 3)
FIRST_NIGHT = "2025-01-10T19:00:00"  # local noon at the HET is about 19:00 UTC
NIGHT_SPACING_DAYS = 24
#: HETDEX fields (RA hours, Dec deg): spring and fall.
FIELDS = (((10.8, 16.8), (46.0, 57.0)), ((23.3, 26.1), (-4.0, 4.0)))


@dataclass
class Night:
    number: int
    date: str
    dusk: float
    dawn: float
    shots: list[Shot]


@dataclass
class Run:
    label: str
    observations: list[tuple[float, str, int, int]]  # start, shotid, track, priority
    decide_times: list[float]
    notes: list[str]

    def counts(self) -> dict[int, int]:
        return {p: sum(1 for o in self.observations if o[3] == p) for p in PRIORITIES}


# -- nights ---------------------------------------------------------------------------

def make_night(number: int, seed: int, settings: DecisionSettings) -> Night:
    from astropy.time import Time

    noon = Time(FIRST_NIGHT).unix + number * NIGHT_SPACING_DAYS * 86400.0
    sky = Scheduler([], settings)
    dusk, dawn = sky.dark_intervals(noon, noon + 86400.0, settings.max_sun_alt)[0]
    rng = random.Random(seed * 1000 + number)
    count = rng.randint(113, 139)
    in_fields = round(count * rng.uniform(0.35, 0.55))
    placed = make_sample_shots(dusk, dawn, count - in_fields, seed=seed * 1000 + number)
    rows = [(s.ra_hours, s.dec_deg, s.track) for s in placed]
    for _ in range(in_fields):
        (ra0, ra1), (dec0, dec1) = FIELDS[0] if rng.random() < 0.7 else FIELDS[1]
        rows.append((rng.uniform(ra0, ra1) % 24.0, rng.uniform(dec0, dec1), rng.choice((0, 1, 2, 2))))
    rng.shuffle(rows)
    shots = []
    for i, (ra, dec, track) in enumerate(rows):
        priority = rng.choices(PRIORITIES, weights=(12, 28, 60))[0]
        n_obs = 2 if rng.random() < 0.1 else 1
        shots.append(Shot(f"DEX{i + 1:05d}", ra, dec, track, priority, n_obs, -1.0, {}))
    date = Time(noon, format="unix").iso[:10]
    return Night(number + 1, date, dusk, dawn, shots)


# -- OCD on a simulated clock --------------------------------------------------------

def simulate(night: Night, settings: DecisionSettings, lookahead: float, interval: float) -> Run:
    """OCD's own decisions through the night: :func:`ocd.core.plan.plan_night` (as ``ocd plan``)."""
    plan = plan_night(night.shots, replace(settings, lookahead=lookahead), night.dusk, night.dawn,
                      interval, timer=time.perf_counter)
    observations = [(s.start, s.shotid, s.track, s.priority) for s in plan.shots]
    notes = [f"run: {s.shotid} on the {s.track_name} track ({s.note})" for s in plan.shots if s.note]
    notes += [i.reason for i in plan.idle if "waiting for" in i.reason]
    label = "greedy" if lookahead <= 0 else f"lookahead {lookahead / 3600:g} h"
    return Run(label, observations, list(plan.decide_times), notes)


# -- the optimizer's model -----------------------------------------------------------

@dataclass(frozen=True)
class Window:
    shot: int  # index
    track: int
    begin: float  # pass enters the band (epoch s)
    end: float  # pass leaves it
    first: int  # earliest start, s after the origin (dark, whole seconds)
    last: int  # latest start


def windows_of(night: Night, settings: DecisionSettings, origin: int) -> list[Window]:
    scheduler = Scheduler(night.shots, settings)
    begin, end, usable = scheduler.passes(night.dusk)
    out = []
    for track in (0, 1):
        for i in np.flatnonzero(usable[track]).tolist():
            first = math.ceil(max(begin[track, i], night.dusk) - origin)
            last = math.floor(min(end[track, i], night.dawn) - settings.duration - origin)
            if last >= first:
                out.append(Window(i, track, float(begin[track, i]), float(end[track, i]), first, last))
    return out


class Model:
    """CP-SAT: optional fixed-size intervals over the windows, one machine."""

    def __init__(self, night: Night, windows: list[Window], duration: int):
        self.model = cp_model.CpModel()
        self.slots: list[tuple[Window, object, object]] = []  # window, presence, start
        per_shot: dict[int, list] = {}
        intervals = []
        for w in windows:
            shot = night.shots[w.shot]
            fit = (w.last - w.first) // duration + 1
            previous = None
            for _ in range(min(shot.n_obs, fit)):
                present = self.model.new_bool_var("")
                start = self.model.new_int_var(w.first, w.last, "")
                intervals.append(self.model.new_optional_fixed_size_interval_var(start, duration, present, ""))
                if previous is not None:  # copies in one window: in order, no gaps in use
                    self.model.add_implication(present, previous[0])
                    self.model.add(start >= previous[1] + duration).only_enforce_if(present)
                previous = (present, start)
                self.slots.append((w, present, start))
                per_shot.setdefault(w.shot, []).append(present)
        self.model.add_no_overlap(intervals)
        self.cuts = self._energy_cuts(duration)
        for i, presents in per_shot.items():
            self.model.add(sum(presents) <= night.shots[i].n_obs)
        self.by_priority = {p: [x for w, x, _ in self.slots if night.shots[w.shot].priority == p]
                            for p in PRIORITIES}

    def _energy_cuts(self, duration: int) -> int:
        """Redundant: the observations whose windows lie inside ``[a, b]`` fit in it.

        For every earliest start ``a`` and latest end ``b`` of the windows,
        at most ``(b - a) // duration`` of them. CP-SAT's own reasoning on
        ``no_overlap`` does not find these bounds; with them every stage is
        proved OPTIMAL in seconds instead of not at all.
        """
        if not self.slots:
            return 0
        first = np.array([w.first for w, _, _ in self.slots])
        end = np.array([w.last + duration for w, _, _ in self.slots])
        starts, ends = np.unique(first), np.unique(end)
        inside = (first[:, None, None] >= starts[None, :, None]) & (end[:, None, None] <= ends[None, None, :])
        count = inside.sum(axis=0)
        room = np.maximum(ends[None, :] - starts[:, None], 0) // duration
        cuts = 0
        for a, b in zip(*np.nonzero(count > room)):
            members = np.flatnonzero(inside[:, a, b])
            self.model.add(sum(self.slots[k][1] for k in members) <= int(room[a, b]))
            cuts += 1
        return cuts

    def solver(self, seconds: float) -> "cp_model.CpSolver":
        solver = cp_model.CpSolver()
        # Deterministic time: the same answer however busy the machine is.
        solver.parameters.max_deterministic_time = seconds
        solver.parameters.num_workers = 2
        return solver

    def hint(self, observations, night: Night, origin: int) -> None:
        used = set()
        for start, shotid, track, _ in observations:
            for k, (w, x, s) in enumerate(self.slots):
                if k not in used and night.shots[w.shot].shotid == shotid and w.track == track \
                        and w.first <= start - origin <= w.last:
                    used.add(k)
                    self.model.add_hint(x, 1)
                    self.model.add_hint(s, int(round(start - origin)))
                    break
        for k, (w, x, s) in enumerate(self.slots):
            if k not in used:
                self.model.add_hint(x, 0)

    def feasible(self, observations, night: Night, origin: int, seconds: float) -> tuple[bool, str]:
        """Is OCD's schedule a solution of this model? Fix it and ask CP-SAT."""
        fixed = self.model.clone()
        used: set[int] = set()
        for start, shotid, track, _ in observations:
            offset = start - origin
            match = next((k for k, (w, _, _) in enumerate(self.slots) if k not in used
                          and night.shots[w.shot].shotid == shotid and w.track == track
                          and w.first <= offset <= w.last and offset == int(offset)), None)
            if match is None:
                return False, f"{shotid} at +{offset:.0f} s on track {track} is outside every window of the model"
            used.add(match)
            w, x, s = self.slots[match]
            fixed.add(fixed.get_bool_var_from_proto_index(x.index) == 1)
            fixed.add(fixed.get_int_var_from_proto_index(s.index) == int(offset))
        status = self.solver(seconds).solve(fixed)
        ok = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        return ok, "" if ok else f"CP-SAT says {cp_model.CpSolver().status_name(status)}"

    def optimum(self, seconds: float) -> tuple[dict[int, int], dict[int, int], bool]:
        """Lexicographic optimum: (counts, proved upper bounds, all stages OPTIMAL)."""
        counts, bounds, proved = {}, {}, True
        for p in PRIORITIES:
            terms = self.by_priority[p]
            self.model.maximize(sum(terms))
            solver = self.solver(seconds)
            status = solver.solve(self.model)
            bounds[p] = int(math.floor(solver.best_objective_bound + 1e-6))
            proved = proved and status == cp_model.OPTIMAL
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                # No solution in time: only the bound is known; later stages
                # stay upper bounds because this level is left free.
                counts[p] = 0
                continue
            counts[p] = int(round(solver.objective_value))
            # Keep this level (at the best found) and warm-start the next stage.
            self.model.add(sum(terms) >= counts[p])
            self.model.clear_hints()
            for w, x, s in self.slots:
                self.model.add_hint(x, solver.boolean_value(x))
                self.model.add_hint(s, solver.value(s))
        self.model.clear_objective()
        return counts, bounds, proved


# -- agreement between the decision and the model -----------------------------------

def check_agreement(night: Night, windows: list[Window], settings: DecisionSettings) -> tuple[int, int, float]:
    """(mismatches away from edges, points compared, worst astropy edge error in deg)."""
    scheduler = Scheduler(night.shots, settings)
    duration = settings.duration
    by_key: dict[tuple[int, int], Window] = {(w.shot, w.track): w for w in windows}
    begin, end, usable = scheduler.passes(night.dusk)
    index = {s.shotid: i for i, s in enumerate(night.shots)}
    bad = compared = 0
    for t in np.arange(night.dusk, night.dawn - duration, 60.0):
        seen = {(index[s.shotid], track) for s, track in scheduler.observable(float(t), duration)}
        for track in (0, 1):
            for i in np.flatnonzero(usable[track]).tolist():
                b, e = begin[track, i], end[track, i]
                inside = b <= t and t + duration <= e
                near = min(abs(t - b), abs(t + duration - e)) < 1.0
                compared += 1
                if inside != ((i, track) in seen) and not near:
                    bad += 1
    # Independent: astropy's altitude at each window's edges is the band's edge.
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    from astropy.coordinates import TETE

    with quiet_repeats():
        apparent_dec = SkyCoord(ra=[s.ra * 15.0 for s in night.shots] * u.deg,
                                dec=[s.dec for s in night.shots] * u.deg).transform_to(
            TETE(obstime=Time(night.dusk, format="unix"), location=HET_LOCATION)).dec.deg
    edges, ras, decs, targets = [], [], [], []
    for (i, track), w in by_key.items():
        shot = night.shots[i]
        low = HET_ELEVATION - settings.half_width
        # A target whose transit is below the band's top leaves (EAST) or
        # enters (WEST) the band at the meridian, at its transit altitude.
        high = min(HET_ELEVATION + settings.half_width, 90.0 - abs(HET_LATITUDE - apparent_dec[i]))
        for t, alt in ((w.begin, low if track == 0 else high), (w.end, high if track == 0 else low)):
            edges.append(t)
            ras.append(shot.ra * 15.0)
            decs.append(shot.dec)
            targets.append(alt)
    worst = 0.0
    if edges:
        with quiet_repeats():
            frame = AltAz(obstime=Time(edges, format="unix"), location=HET_LOCATION, pressure=0 * u.hPa)
            alt = SkyCoord(ra=np.array(ras) * u.deg, dec=np.array(decs) * u.deg).transform_to(frame).alt.deg
        worst = float(np.max(np.abs(alt - np.array(targets))))
    return bad, compared, worst


# -- report ---------------------------------------------------------------------------

def weighted(counts: dict[int, int]) -> int:
    return sum(WEIGHTS[p] * counts.get(p, 0) for p in PRIORITIES)


def fmt(counts: dict[int, int]) -> str:
    return "/".join(f"{counts.get(p, 0):3d}" for p in PRIORITIES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=15)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--lookahead", type=float, nargs="+", default=None,
                        help="look-ahead(s) to measure, s (default: the master configuration's)")
    parser.add_argument("--solve-seconds", type=float, default=10.0,
                        help="CP-SAT limit per stage, in its deterministic seconds")
    parser.add_argument("--notes", action="store_true", help="print the look-ahead's notes")
    args = parser.parse_args()
    if cp_model is None:
        print("bench/yield.py skipped: OR-Tools is missing (pip install '.[bench]')")
        return 0

    config = Config.load()
    settings = DecisionSettings.from_config(config)
    interval = config.get_float("decision", "decide_interval")
    lookaheads = args.lookahead if args.lookahead is not None else [settings.lookahead]
    duration = int(settings.duration)
    assert duration == settings.duration, "the model needs a whole number of seconds per shot"

    labels = ["greedy"] + [f"lookahead {h / 3600:g} h" for h in lookaheads]
    totals = {label: {p: 0 for p in PRIORITIES} for label in labels}
    optimum_total = {p: 0 for p in PRIORITIES}
    bound_total = {p: 0 for p in PRIORITIES}
    all_proved = True
    decide_times: dict[str, list[float]] = {label: [] for label in labels}
    started = time.perf_counter()
    print(f"{args.nights} nights, shot duration {duration} s, a decision every {interval:g} s; "
          "counts are priority 1/2/3")
    print(f"{'night':>5} {'date':10} {'shots':>5} {'dark h':>6}  "
          + "  ".join(f"{label:>18}" for label in labels) + f"  {'optimum':>12} proved  checks")
    for n in range(args.nights):
        night = make_night(n, args.seed, settings)
        runs = [simulate(night, settings, 0.0, interval)]
        runs += [simulate(night, settings, h, interval) for h in lookaheads]
        origin = math.ceil(night.dusk)
        windows = windows_of(night, settings, origin)
        model = Model(night, windows, duration)
        checks = []
        for run in runs:
            ok, why = model.feasible(run.observations, night, origin, args.solve_seconds)
            if not ok:
                checks.append(f"{run.label} infeasible: {why}")
        bad, compared, worst = check_agreement(night, windows, settings)
        if bad:
            checks.append(f"{bad} of {compared} observable-when disagreements")
        if worst > 0.1:
            checks.append(f"window edges {worst:.3f} deg off astropy")
        model.hint(runs[-1].observations, night, origin)
        best, bounds, proved = model.optimum(args.solve_seconds)
        all_proved = all_proved and proved
        for p in PRIORITIES:
            optimum_total[p] += best[p]
            bound_total[p] += bounds[p]
        for run in runs:
            for p, c in run.counts().items():
                totals[run.label][p] += c
            decide_times[run.label].extend(run.decide_times)
        cells = "  ".join(f"{fmt(r.counts())} {weighted(r.counts()) / max(weighted(best), 1):.3f}" for r in runs)
        print(f"{night.number:5d} {night.date} {len(night.shots):5d} {(night.dawn - night.dusk) / 3600:6.2f}  "
              f"{cells}  {fmt(best)} {'yes' if proved else 'NO':>6}  "
              + ("" if proved else f"(bounds {fmt(bounds)}) ")
              + ("ok (edges within %.3f deg)" % worst if not checks else "; ".join(checks)))
        if args.notes:
            for note in runs[-1].notes:
                print(f"      {note}")
        if checks:
            print("CHECK FAILED: the bench's model and OCD disagree")
            return 1

    print()
    print(f"{'total':>5} {'':10} {'':5} {'':6}  "
          + "  ".join(f"{fmt(totals[label])} {weighted(totals[label]) / weighted(optimum_total):.3f}"
                      for label in labels) + f"  {fmt(optimum_total)} {'yes' if all_proved else 'NO':>6}")
    print()
    print(f"optimum (CP-SAT, {'every stage OPTIMAL' if all_proved else 'NOT every stage proved'}): "
          f"priority 1/2/3 = {fmt(optimum_total)}, weighted 3:2:1 = {weighted(optimum_total)}"
          + ("" if all_proved else f"; proved upper bounds {fmt(bound_total)}, weighted "
             f"{weighted(bound_total)} (the ratios below are against these, so they hold for "
             f"the true optimum)"))
    # Against proved bounds: each stage's bound holds given the stages before
    # at their proved optimum, so it bounds the lexicographic optimum.
    reference = optimum_total if all_proved else bound_total
    verdict = True
    for label in labels:
        c = totals[label]
        p1 = c[1] / max(reference[1], 1)
        w = weighted(c) / max(weighted(reference), 1)
        print(f"{label:>18}: priority 1 {c[1]}/{reference[1]} = {p1:.3f} of the optimum, "
              f"weighted {w:.3f}; decide() median {statistics.median(decide_times[label]) * 1e3:.3f} ms, "
              f"max {max(decide_times[label]) * 1e3:.1f} ms")
        if label != "greedy":
            verdict = verdict and p1 >= 0.99 and w >= 0.99
    print(f"target (look-ahead: priority 1 >= 0.99 and weighted >= 0.99 of the proved optimum): "
          f"{'met' if verdict else 'NOT met'}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
