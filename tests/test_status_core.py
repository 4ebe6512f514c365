"""The status snapshot, health and blocked time: pure, no reactor."""

from __future__ import annotations

import json

from ocd.core.status import (
    BLOCKER_WORDS,
    BlockedTime,
    NextShot,
    RunningShot,
    StatusView,
    health,
    iso,
    reasons,
    snapshot,
)
from ocd.core.decide import BLOCKERS

NIGHT = 1740031200.0  # 2025-02-20T06:00:00Z


def view(**changes) -> StatusView:
    base = dict(version="9.9", started=100.0, loop_running=True,
                machines={"hetdex_allowed": "not_allowed", "run_shot": "idle"},
                tcs_timeout=30.0, tcs_time=NIGHT, last_heartbeat=190.0,
                tcs_urls=("tcp://tcs:5555",), verdict="wait",
                blockers=("not_allowed", "bad_seeing"),
                details={"not_allowed": "shots are not allowed", "bad_seeing": "FWHM 2.4 > 2"})
    base.update(changes)
    return StatusView(**base)


def test_every_blocker_has_plain_words():
    assert set(BLOCKER_WORDS) == set(BLOCKERS)


def test_snapshot_has_the_keys_of_the_issue_and_is_json():
    doc = snapshot(view(), NIGHT, 200.0)
    for key in ("now", "tcs", "hetdex_allowed", "run_shot", "verdict", "blockers", "details",
                "shot", "next", "counters", "uptime", "version"):
        assert key in doc, key
    assert doc["now"] == "2025-02-20T06:00:00.000+00:00"
    assert doc["tcs"] == {"time": "2025-02-20T06:00:00.000+00:00", "heartbeat_age": 10.0,
                          "timeout": 30.0, "kind": "tcs", "urls": ["tcp://tcs:5555"]}
    assert doc["blockers"] == ["not_allowed", "bad_seeing"]
    assert doc["reasons"][1] == "the seeing is bad: FWHM 2.4 > 2"
    assert doc["shot"] is None and doc["next"] is None
    assert doc["uptime"] == 100.0 and doc["version"] == "9.9"
    assert doc["healthy"] is True
    json.dumps(doc)


def test_running_shot_prefers_ours_and_counts_elapsed_on_the_reactor_clock():
    theirs = RunningShot("BYHAND", 7, started=150.0, expected=1980.0, own=False)
    ours = RunningShot("DEX1", 8, started=180.0, expected=1980.0, own=True, step="exp_hetdex 2")
    doc = snapshot(view(shots=(theirs, ours)), NIGHT, 200.0)
    assert doc["shot"] == {"shotid": "DEX1", "obs_number": 8, "step": "exp_hetdex 2",
                           "elapsed": 20.0, "expected": 1980.0, "own": True}
    assert doc["shots_running"] == 2


def test_next_shot_says_when_its_window_opens():
    doc = snapshot(view(next=NextShot("DEX2", 1, NIGHT + 600, NIGHT + 4200)), NIGHT, 200.0)
    assert doc["next"] == {"shotid": "DEX2", "track": "WEST",
                           "opens": iso(NIGHT + 600), "closes": iso(NIGHT + 4200),
                           "open_now": False, "opens_in": 600.0}


def test_health_follows_the_loop_and_the_heartbeat():
    assert health(view(), 200.0).ok
    silent = health(view(), 221.0)
    assert not silent.ok and "no TCS heartbeat for 31 s > [decision] tcs_timeout 30 s" in silent.reason
    assert health(view(last_heartbeat=None), 200.0).reason == "no TCS heartbeat yet"
    assert "not running" in health(view(loop_running=False), 200.0).reason


def test_reasons_keep_the_blockers_order():
    assert reasons(["daylight", "weather"], {"weather": "wind 20 m/s > 15 m/s"}) == [
        "too much daylight", "the weather is bad or unknown: wind 20 m/s > 15 m/s"]


def test_blocked_time_adds_up_per_blocker():
    blocked = BlockedTime().after(["daylight", "not_allowed"], 10.0)
    blocked = blocked.after(["not_allowed"], 70.0)
    assert blocked.totals_at(100.0) == {"daylight": 60.0, "not_allowed": 90.0}
    blocked = blocked.after([], 100.0)
    assert blocked.totals_at(500.0) == {"daylight": 60.0, "not_allowed": 90.0}
    # a clock that goes back never subtracts
    assert blocked.after(["weather"], 50.0).totals_at(40.0) == {
        "daylight": 60.0, "not_allowed": 90.0, "weather": 0.0}

