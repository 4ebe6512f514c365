"""A simulated night in process (what ``make demo`` runs), on a short clear slice.

``run_night`` starts the real service tree on free URLs, arms it over the
wire, replays the first 4 hours of a generated clear night (the one
test_e2e_night replays: generated once per run) and runs shots through the
stand-ins; the report it returns is checked for what a person reads the
morning after. The night is :func:`conftest.simulated_night`, shared with
test_plan (which checks it against its plan): two shots 90 minutes apart, at
the speed-up :mod:`pace` computes for them (1500 at most). That shots of the
sample list run back to back, in order, with consecutive numbers, is
test_e2e_night's.
"""

from __future__ import annotations

import subprocess

import pytest

from ocd.sim.standin import read_calls

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)  # the night (conftest.simulated_night) may run in this test's set-up
@pytest.mark.xdist_group("simulated_night")
@pytest.mark.slow(18)  # the night, if it runs here: the group's first test starts it
def test_run_night_reports_shots_numbers_and_blockers(simulated_night):
    from ocd.sim.simulate import describe

    plan, report, narration = simulated_night.plan, simulated_night.report, simulated_night.out
    hours = simulated_night.hours

    # Shots: all done, observation numbers consecutive from first_obsnum.
    assert len(report.shots) >= 2, f"speed-up {plan.speedup:g}\n" + narration
    assert [s.outcome for s in report.shots] == ["done"] * len(report.shots)
    numbers = [s.obs_number for s in report.shots]
    assert numbers == list(range(1, 1 + len(numbers)))
    starts = [s.start for s in report.shots]
    assert starts == sorted(starts)
    for shot, following in zip(report.shots, report.shots[1:]):
        assert shot.end is not None and shot.end <= following.start

    # Blockers: each within the night span; daylight before dusk, shot_running while shooting.
    span = report.last - report.first
    assert (hours - 0.1) * 3600 < span <= hours * 3600 + 60
    assert report.blocker_seconds, "no blocker at all in a night that starts at sunset?"
    for name, seconds in report.blocker_seconds.items():
        assert 0 < seconds <= span + 1, (name, seconds)
    assert 0.5 * 3600 < report.blocker_seconds["daylight"] < 1.2 * 3600  # sunset to -12 deg
    shooting = sum(min(s.end, report.last) - s.start for s in report.shots)
    # The blocker ends at the first decision after a shot's FINISH: up to one
    # decide interval of wall time later (plus the main loop's latency under
    # load), which the replay multiplies by its speed-up. At 1500 that is up
    # to 25 night minutes a shot, so a relative tolerance flakes under load.
    interval = plan.config.get_float("decision", "decide_interval")
    lag = len(report.shots) * plan.speedup * (interval + 1.0)
    assert 0.9 * shooting <= report.blocker_seconds["shot_running"] <= shooting + lag, (
        report.blocker_seconds["shot_running"], shooting, plan.speedup)

    # The stand-ins ran 11 syscmd and 3 dithers per shot, with the shot's number.
    calls = read_calls(plan.workdir / "standins.jsonl")
    assert len(calls) == 14 * len(report.shots)
    dithers = [c for c in calls if c["program"] == "hetdex-dither.py"]
    assert [int(c["argv"][c["argv"].index("--obsnum") + 1]) for c in dithers] == \
        [n for n in numbers for _ in range(3)]

    # The night log on disk: OCD's start and stop, arming, decisions, shots.
    import sqlite3

    with sqlite3.connect(plan.workdir / "nightlog.sqlite") as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM entries GROUP BY kind"))
    assert kinds["ocd"] == 2 and kinds["arming"] >= 1 and kinds["decision"] >= 3
    assert kinds["shot"] >= 2 * len(report.shots)

    # What a person reads.
    text = describe(plan, report)
    assert text.startswith("Simulated night: ")
    assert "Night report: night of 2025-02-20" in text and "shotid" in text and " obs " in text
    for shot in report.shots:
        assert shot.shotid in text
    assert f"shots: {len(report.shots)} done, 0 failed, 0 lost, 0 unfinished" in text
    assert "daylight" in text and "shot_running" in text
    assert f"shot {report.shots[0].shotid} started, observation 1" in narration
    assert "not_allowed -> allowed" in narration or "-> allowed" in narration


def test_simulate_night_help(ocd_command, child_env):
    result = subprocess.run([*ocd_command, "simulate_night", "--help"], env=child_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--speedup", "--hours", "--shots", "--workdir", "--seed"):
        assert option in result.stdout
