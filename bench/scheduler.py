"""Benchmark: the scheduler and decide() with 10,000 shots.

Run: ``.venv/bin/python bench/scheduler.py [--shots 10000] [--decisions 200]``

Prints the time to build the sky (astropy, once per day-long span), the time
of one ``decide()`` (cached sky, numpy only), and, measured in the same run,
a baseline that computes every shot's AltAz directly with astropy on each
call (at ``now`` and at the end of the shot, plus the Sun), with the ratio.
Then the same decisions with the look-ahead (``[scheduler] lookahead``):
``decide()`` reuses its plan, so its median stays that of a decision; the
cost of making a plan (``ocd.core.lookahead``) is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ocd.config import Config  # noqa: E402
from ocd.core.astro import HET_LOCATION, quiet_repeats  # noqa: E402
from ocd.core.site import HET_ELEVATION  # noqa: E402
from ocd.core.decide import DecisionInputs, DecisionSettings, decide  # noqa: E402
from ocd.core.lookahead import build_plan, jobs_for  # noqa: E402
from ocd.core.events import UrlKind, event_from_payload, make_payload  # noqa: E402
from ocd.core.scheduler import Scheduler  # noqa: E402
from ocd.core.shots import Shot  # noqa: E402
from ocd.core.state import TelescopeState, fold  # noqa: E402


def make_shots(n: int, seed: int = 1) -> list[Shot]:
    rng = np.random.default_rng(seed)
    return [
        Shot(f"DEX{i:05d}", float(rng.uniform(0, 24)), float(rng.uniform(-10, 80)), int(rng.integers(0, 3)),
             int(rng.integers(1, 6)), 1, -1.0, {})
        for i in range(n)
    ]


def state_at(now: float) -> TelescopeState:
    s = TelescopeState()
    for topic, fields in (
        ("tcs.receiver.heartbeat", {}),
        ("legacy.shutter.status", {"state": "open"}),
        ("legacy.weather.status", {"humidity": 40, "wind_speed": 5, "ambtemp": 10, "dewpoint": 0}),
        ("pas.Guider1.metrology_data", {"fwhm": 1.3, "transparency": 0.9, "valid": True}),
    ):
        s = fold(s, event_from_payload(topic, make_payload(topic, fields, now, now), UrlKind.TCS), 0.0)
    return s


def baseline(shots: list[Shot], now: float, settings: DecisionSettings):
    """The naive way: astropy AltAz for every shot at now and at the shot's end."""
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body
    from astropy.time import Time

    ra = np.array([s.ra for s in shots]) * 15
    dec = np.array([s.dec for s in shots])
    prio = np.array([s.priority for s in shots])
    with quiet_repeats():
        t = Time([now, now + settings.duration], format="unix")
        frame = AltAz(obstime=t[:, None], location=HET_LOCATION, pressure=0 * u.hPa)
        aa = SkyCoord(ra=ra * u.deg, dec=dec * u.deg)[None, :].transform_to(frame)
        sun = get_body("sun", t, location=HET_LOCATION).transform_to(
            AltAz(obstime=t, location=HET_LOCATION, pressure=0 * u.hPa)).alt.deg
    alt, az = aa.alt.deg, aa.az.deg
    band = (np.abs(alt - HET_ELEVATION) <= settings.half_width).all(axis=0)
    east = band & (az < 180).all(axis=0)
    west = band & (az >= 180).all(axis=0)
    ok = np.flatnonzero(east | west)
    return (shots[ok[np.argmin(prio[ok])]] if ok.size else None), bool(sun.max() > settings.max_sun_alt)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10000)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--baseline-calls", type=int, default=5)
    parser.add_argument("--plans", type=int, default=5, help="look-ahead plans to time")
    parser.add_argument("--lookahead", type=float, default=None,
                        help="look-ahead, s (default: the master configuration's, or 4 h when it is 0)")
    args = parser.parse_args()

    from astropy.time import Time

    settings = DecisionSettings(lookahead=0.0)  # the greedy rule; the look-ahead is measured below
    shots = make_shots(args.shots)
    now = Time("2018-05-15T06:00:00").unix

    # Warm astropy's one-time start-up (IERS tables, ephemeris) so that it is
    # charged to neither side.
    Scheduler(shots[:1], settings).prepare(now - 10 * 86400)

    t0 = time.perf_counter()
    scheduler = Scheduler(shots, settings)
    scheduler.prepare(now)
    build = time.perf_counter() - t0

    state = state_at(now)
    inputs = DecisionInputs(telescope=state, allowed=True)
    per_call = []
    for k in range(args.decisions):
        t = now + 30.0 * k
        t0 = time.perf_counter()
        decision = decide(inputs, scheduler, t, 0.0, settings)
        per_call.append(time.perf_counter() - t0)
    decide_median = statistics.median(per_call)

    # The look-ahead: decide() reuses its plan; the planning itself is timed apart.
    config_lookahead = Config.load().get_float("scheduler", "lookahead")
    ahead = replace(settings, lookahead=args.lookahead if args.lookahead is not None
                    else (config_lookahead or 14400.0))
    planner = scheduler.with_remaining({})  # same sky, its own plan
    ahead_calls, reused, plan = [], [], None
    for k in range(args.decisions):
        t = now + 30.0 * k
        t0 = time.perf_counter()
        ahead_decision = decide(inputs, planner, t, 0.0, ahead)
        ahead_calls.append(time.perf_counter() - t0)
        if planner._plan is plan:
            reused.append(ahead_calls[-1])
        plan = planner._plan
    replans = len(ahead_calls) - len(reused)
    plan_costs, plan_sizes = [], []
    for k in range(args.plans):
        t = now + 600.0 * k
        t0 = time.perf_counter()
        jobs = jobs_for(planner, t, ahead.duration, ahead.lookahead)
        made = build_plan(jobs, t, ahead.duration)
        plan_costs.append(time.perf_counter() - t0)
        plan_sizes.append((len(jobs), len(made.steps), made.nodes))

    base = []
    for k in range(args.baseline_calls):
        t0 = time.perf_counter()
        baseline(shots, now + 30.0 * k, settings)
        base.append(time.perf_counter() - t0)
    base_median = statistics.median(base)

    print(f"shots: {args.shots}")
    print(f"build sky (astropy, once per span): {build * 1000:.1f} ms")
    print(f"decide() (greedy, lookahead 0) median over {args.decisions}: {decide_median * 1000:.3f} ms "
          f"(max {max(per_call) * 1000:.3f} ms); last: {decision.summary()}")
    print(f"baseline (direct astropy AltAz per call) median over {args.baseline_calls}: {base_median * 1000:.1f} ms")
    print(f"speed-up per decision: {base_median / decide_median:.0f}x")
    print(f"sky builds: {scheduler.sky_builds}")
    print(f"look-ahead {ahead.lookahead / 3600:g} h: decide() median {statistics.median(reused or [0.0]) * 1000:.3f} ms "
          f"over the {len(reused)} of {args.decisions} decisions that reused the plan "
          f"(the others made one: this bench starts no shot, so a plan goes stale when "
          f"its first pass closes); last: {ahead_decision.summary()}")
    jobs, steps, nodes = plan_sizes[len(plan_sizes) // 2]
    print(f"look-ahead planning (reported apart, once per change): median {statistics.median(plan_costs) * 1000:.0f} ms, "
          f"max {max(plan_costs) * 1000:.0f} ms over {args.plans} plans ({jobs} candidate observations, "
          f"{steps} planned, {nodes} search nodes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
