"""A simulated night in process (what ``make demo`` runs), on a short clear slice.

``run_night`` starts the real service tree on free URLs, arms it over the
wire, replays the first 4 hours of a generated clear night (the one
test_e2e_night replays: generated once per run) at speed-up 2000 (about 7 s)
and runs shots through the stand-ins; the report it returns is checked for
what a person reads the morning after. A shot's wall time does not scale
with the replay (about 2.5 s idle, 6 s or more under load), so the
speed-up is the one :mod:`pace` computes from a stand-in start measured
right before the night: 2000 on an idle machine, lower under load, so two
shots always fit in the slice.
"""

from __future__ import annotations

import io
import subprocess

import pytest
import pytest_twisted

from ocd.sim.standin import read_calls
from pace import replay_speedup

# A hang guard above the suite's 120 s: generating the night alone takes
# tens of seconds under load.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SPEEDUP = 2000
HOURS = 4
#: Replayed night seconds the slice leaves for the first shot: it starts at
#: dusk (0.9 h after sunset), the second must start while a target is up.
ROOM_FOR_A_SHOT = 10000.0
EXPOSURES = 3 * 360.0  # ocd.cfg exptimes, night seconds


@pytest.fixture
def plan(night_cache_dir, tmp_path, monkeypatch, child_env):
    from ocd.sim.simulate import prepare

    monkeypatch.setenv("OCD_CACHE_DIR", str(night_cache_dir))
    # prepare() sets these for the stand-ins of this process; undo at teardown.
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "1")
    monkeypatch.setenv("OCD_STANDIN_LOG", "")
    # prepare() scales the stand-ins' exposures by the same speed-up.
    speedup = replay_speedup(child_env, fastest=SPEEDUP, room=ROOM_FOR_A_SHOT,
                             exposure_night_seconds=EXPOSURES)
    return prepare(tmp_path / "night", seed=0, shots=24, speedup=speedup, hours=HOURS,
                   bad_weather_minutes=0, extra=[("general", "log_level", "warn")])


@pytest_twisted.inlineCallbacks
def test_run_night_reports_shots_numbers_and_blockers(plan):
    from twisted.internet import reactor

    from ocd.sim.simulate import describe, run_night

    out = io.StringIO()
    report = yield run_night(plan, reactor, out, progress=False, narrate=True)

    # Shots: all done, observation numbers consecutive from first_obsnum.
    assert len(report.shots) >= 2, f"speed-up {plan.speedup:g}\n" + out.getvalue()
    assert [s.outcome for s in report.shots] == ["done"] * len(report.shots)
    numbers = [s.obs_number for s in report.shots]
    assert numbers == list(range(1, 1 + len(numbers)))
    starts = [s.start for s in report.shots]
    assert starts == sorted(starts)
    for shot, following in zip(report.shots, report.shots[1:]):
        assert shot.end is not None and shot.end <= following.start

    # Blockers: each within the night span; daylight before dusk, shot_running while shooting.
    span = report.last - report.first
    assert (HOURS - 0.1) * 3600 < span <= HOURS * 3600 + 60
    assert report.blocker_seconds, "no blocker at all in a night that starts at sunset?"
    for name, seconds in report.blocker_seconds.items():
        assert 0 < seconds <= span + 1, (name, seconds)
    assert 0.5 * 3600 < report.blocker_seconds["daylight"] < 1.2 * 3600  # sunset to -12 deg
    shooting = sum(min(s.end, report.last) - s.start for s in report.shots)
    assert report.blocker_seconds["shot_running"] == pytest.approx(shooting, rel=0.1)

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
    narration = out.getvalue()
    assert f"shot {report.shots[0].shotid} started, observation 1" in narration
    assert "not_allowed -> allowed" in narration or "-> allowed" in narration


def test_simulate_night_help(ocd_command, child_env):
    result = subprocess.run([*ocd_command, "simulate_night", "--help"], env=child_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--speedup", "--hours", "--shots", "--workdir", "--seed"):
        assert option in result.stdout
