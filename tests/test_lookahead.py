"""The scheduler's look-ahead (``[scheduler] lookahead``) against the greedy rule.

Hand-made nights where the greedy rule (the most urgent shot observable
now) loses an observation and the look-ahead does not, and one where both
agree. Shots are placed on the sky so that their passes fall where the case
needs them; each test first checks the placement with the scheduler's own
windows, so a wrong placement fails loudly instead of testing nothing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import pytest

from ocd.core.decide import DecisionInputs, DecisionSettings, decide
from ocd.core.topics import Verdict
from ocd.core.events import UrlKind, event_from_payload, make_payload
from ocd.core.lookahead import Job, Option, build_plan, sequence
from ocd.core.scheduler import Scheduler, hour_angle_limits
from ocd.core.shots import EAST, Shot
from ocd.core.state import TelescopeState, fold
from ocd.core.site import HET_ELEVATION
from ocd.sim.shotlist import local_sidereal_hours

from astropy.time import Time  # noqa: E402  (after ocd.core.astro: offline set-up first)

GREEDY = DecisionSettings(lookahead=0.0)
AHEAD = DecisionSettings(lookahead=4 * 3600.0)
D = GREEDY.duration  # 1380 s
T0 = Time("2025-03-01T05:00:00", scale="utc").unix  # 22:00 at the HET: dark for hours
SIDEREAL_RATE = 2 * math.pi / 86164.0905  # rad per s


@functools.lru_cache(maxsize=1)
def _lst_at_t0() -> float:
    return local_sidereal_hours([T0])[0]


def east_shot(shotid: str, dec: float, priority: int, *, opens: float | None = None,
              closes: float | None = None, n_obs: int = 1) -> Shot:
    """An EAST-only shot whose pass opens (or closes) at the given epoch."""
    h_in, h_out, _ = hour_angle_limits(np.radians(np.array([dec])), HET_ELEVATION - 6.0, HET_ELEVATION + 6.0)
    if opens is not None:
        hour_angle = -float(h_out[0]) - (opens - T0) * SIDEREAL_RATE
    else:
        hour_angle = -float(h_in[0]) - (closes - T0) * SIDEREAL_RATE
    ra = (_lst_at_t0() - math.degrees(hour_angle) / 15.0) % 24.0
    return Shot(shotid, ra, dec, EAST, priority, n_obs, -1.0, {})


def clear_sky() -> TelescopeState:
    state = TelescopeState()
    for topic, fields in (
        ("tcs.receiver.heartbeat", {}),
        ("legacy.shutter.status", {"state": "open"}),
        ("legacy.weather.status", {"humidity": 30, "wind_speed": 4, "ambtemp": 8, "dewpoint": -5}),
    ):
        state = fold(state, event_from_payload(topic, make_payload(topic, fields, T0, T0), UrlKind.TCS), 0.0)
    return state


def night(sky: Scheduler, settings: DecisionSettings, hours: float = 3.0):
    """OCD's decide() on a simulated clock: every 5 s, the next decision at a shot's end.

    ``sky`` is a scheduler of the night's shots; each night starts from a
    copy of it (same sky computation, its own plan and counts).
    """
    scheduler = sky.with_remaining({})
    inputs = DecisionInputs(telescope=clear_sky(), allowed=True)
    t, done, decisions = T0, [], []
    while t < T0 + hours * 3600 and any(s.n_obs > 0 for s in scheduler.shots):
        decision = decide(inputs, scheduler, t, 0.0, settings)
        decisions.append((t, decision))
        if decision.verdict is Verdict.RUN:
            done.append((decision.shot.shotid, t))
            scheduler = scheduler.with_remaining({decision.shot.shotid: decision.shot.n_obs - 1})
            t += settings.duration
        else:
            t += 5.0
    return done, decisions


def window(sky: Scheduler, shotid: str) -> tuple[float, float]:
    return sky.window(shotid, EAST, T0)


def test_a_short_window_priority_2_goes_before_a_long_window_priority_1():
    shots = [
        east_shot("LONG", 60.0, priority=1, opens=T0 - 300),
        east_shot("SHORT", 30.0, priority=2, closes=T0 + D + 360),
    ]
    sky = Scheduler(shots, GREEDY)
    long_begin, long_end = window(sky, "LONG")
    short_begin, short_end = window(sky, "SHORT")
    assert long_begin < T0 and long_end > T0 + 2 * D + 600  # room for both, the long one second
    assert short_begin < T0 and T0 + D + 120 < short_end < T0 + D + 600  # only now

    greedy, _ = night(sky, GREEDY)
    assert [s for s, _ in greedy] == ["LONG"]  # SHORT's window closed while LONG ran

    ahead, decisions = night(sky, AHEAD)
    assert [s for s, _ in ahead] == ["SHORT", "LONG"]
    first = decisions[0][1]
    assert first.verdict is Verdict.RUN and first.shot.shotid == "SHORT"
    assert first.details["lookahead"].startswith("SHORT first: LONG follows at ")
    assert "lookahead" in first.to_fields(T0)["details"]
    assert "(SHORT first: LONG follows at" in first.summary()


def test_it_waits_for_a_priority_1_window_only_when_that_gains_it():
    shots = [
        east_shot("NOW", 60.0, priority=2, opens=T0 - 300),
        east_shot("SOON1", 30.0, priority=1, opens=T0 + 600),
        east_shot("SOON2", 30.0, priority=1, opens=T0 + 660),
    ]
    sky = Scheduler(shots, GREEDY)
    for shotid in ("SOON1", "SOON2"):
        begin, end = window(sky, shotid)
        assert T0 + 300 < begin < T0 + 900 and end - begin < 2 * D + 900  # both need that hour

    greedy, _ = night(sky, GREEDY)
    assert sorted(s for s, _ in greedy) == ["NOW", "SOON1"]  # SOON2 lost to NOW at dusk

    ahead, decisions = night(sky, AHEAD)
    assert sorted(s for s, _ in ahead) == ["NOW", "SOON1", "SOON2"]
    assert [s for s, _ in ahead][-1] == "NOW"
    waiting = decisions[0][1]
    assert waiting.verdict is Verdict.WAIT and waiting.blockers == ("no_target",)
    note = waiting.details["no_target"]
    assert note.startswith("waiting for SOON") and "NOW (priority 2) now would lose a priority-1 observation" in note


def test_both_rules_agree_when_greedy_loses_nothing():
    shots = [
        east_shot("FIRST", 60.0, priority=1, opens=T0 - 300),
        east_shot("LATER", 60.0, priority=1, opens=T0 + 1800),
        east_shot("FILL", 55.0, priority=3, opens=T0 - 600),
        east_shot("SPARE", 50.0, priority=2, opens=T0 + 3600),
    ]
    sky = Scheduler(shots, GREEDY)
    greedy, _ = night(sky, GREEDY, hours=4.0)
    ahead, decisions = night(sky, AHEAD, hours=4.0)
    assert len(greedy) == 4
    assert ahead == greedy
    assert not any("lookahead" in d.details for _, d in decisions)


def test_the_plan_is_reused_until_the_counts_or_the_blockers_change():
    shots = [east_shot("LONG", 60.0, priority=1, opens=T0 - 300),
             east_shot("SHORT", 30.0, priority=2, closes=T0 + D + 360)]
    scheduler = Scheduler(shots, AHEAD)
    inputs = DecisionInputs(telescope=clear_sky(), allowed=True)
    decide(inputs, scheduler, T0, 0.0, AHEAD)
    plan = scheduler._plan
    decide(inputs, scheduler, T0 + 5, 0.0, AHEAD)
    assert scheduler._plan is plan
    decide(replace(inputs, allowed=False), scheduler, T0 + 10, 0.0, AHEAD)
    assert scheduler._plan is not plan  # a blocker appeared
    after = scheduler.with_remaining({"SHORT": 0})
    assert after._plan is None  # a shot finished: plan again


def test_lookahead_zero_is_the_greedy_rule():
    shots = [east_shot("LONG", 60.0, priority=1, opens=T0 - 300),
             east_shot("SHORT", 30.0, priority=2, closes=T0 + D + 360)]
    scheduler = Scheduler(shots, GREEDY)
    decision = decide(DecisionInputs(telescope=clear_sky(), allowed=True), scheduler, T0, 0.0, GREEDY)
    assert decision.shot.shotid == "LONG" and "lookahead" not in decision.details
    assert scheduler._plan is None


# -- the planner alone: jobs with passes, no sky -----------------------------------------

def job(name: str, priority: int, *passes: tuple[float, float], track: int = EAST) -> Job:
    return Job(0, name, priority, tuple(Option(track, b, l, l + 100) for b, l in passes))


def test_sequence_puts_a_shot_on_its_later_pass_to_make_room():
    both = job("BOTH", 1, (0, 50), (500, 600))  # east pass now, west pass later
    only = job("ONLY", 1, (0, 50))
    steps = sequence(0.0, [both, only], 100.0)
    assert steps is not None
    assert [(s.job.shotid, s.start) for s in steps] == [("ONLY", 0.0), ("BOTH", 500.0)]


def test_sequence_says_when_nothing_fits():
    assert sequence(0.0, [job("A", 1, (0, 10)), job("B", 1, (0, 10))], 100.0) is None


@pytest.mark.parametrize("order", [0, 1])
def test_build_plan_keeps_the_more_urgent_shot_when_not_both_fit(order):
    jobs = [job("P1", 1, (0, 10)), job("P3", 3, (0, 10))]
    plan = build_plan(jobs if order else jobs[::-1], 0.0, 100.0)
    assert [s.job.shotid for s in plan.steps] == ["P1"]
