"""Benchmark: the scheduler and decide() with 10,000 shots.

Run: ``.venv/bin/python bench/scheduler.py [--shots 10000] [--decisions 200]``

Prints the time to build the sky (astropy, once per day-long span), the time
of one ``decide()`` (cached sky, numpy only), and, measured in the same run,
a baseline that computes every shot's AltAz directly with astropy on each
call (at ``now`` and at the end of the shot, plus the Sun), with the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ocd.core.astro import HET_LOCATION, quiet_repeats  # noqa: E402
from ocd.core.site import HET_ELEVATION  # noqa: E402
from ocd.core.decide import DecisionInputs, DecisionSettings, decide  # noqa: E402
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
    args = parser.parse_args()

    from astropy.time import Time

    settings = DecisionSettings()
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

    base = []
    for k in range(args.baseline_calls):
        t0 = time.perf_counter()
        baseline(shots, now + 30.0 * k, settings)
        base.append(time.perf_counter() - t0)
    base_median = statistics.median(base)

    print(f"shots: {args.shots}")
    print(f"build sky (astropy, once per span): {build * 1000:.1f} ms")
    print(f"decide() median over {args.decisions}: {decide_median * 1000:.3f} ms "
          f"(max {max(per_call) * 1000:.3f} ms); last: {decision.summary()}")
    print(f"baseline (direct astropy AltAz per call) median over {args.baseline_calls}: {base_median * 1000:.1f} ms")
    print(f"speed-up per decision: {base_median / decide_median:.0f}x")
    print(f"sky builds: {scheduler.sky_builds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
