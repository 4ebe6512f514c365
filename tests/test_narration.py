"""The console's narration: one line per change, on the night's clock, in plain words."""

from __future__ import annotations

from twisted.logger import globalLogPublisher

from ocd.core.events import make_event
from ocd.services.narration import Narrator, line_for

NIGHT = 1740031200.0  # 2025-02-20 06:00:00 UTC


def test_decisions_arming_and_shots_in_plain_words():
    assert line_for("ocd.decision.made", {
        "verdict": "wait", "blockers": ["not_allowed", "weather", "no_target"],
        "details": {"weather": "humidity 92% > 90%"}}) == \
        "WAIT: shots not allowed; humidity 92% > 90%; no target"
    assert line_for("ocd.decision.made", {"verdict": "run", "shotid": "DEX1", "blockers": []}) \
        == "RUN DEX1"
    assert line_for("ocd.states.change", {
        "machine_name": "hetdex_allowed", "transition": "allow", "old_state": "not_allowed",
        "new_state": "allowed", "msg": "ocd allow_hetdex start (asked by ann@mcs)"}) == \
        "ARMED by ocd allow_hetdex start: asked by ann@mcs"
    assert line_for("ocd.states.change", {
        "machine_name": "hetdex_allowed", "transition": "self_disarm", "old_state": "allowed",
        "new_state": "not_allowed", "msg": "shot DEX1 failed"}) == \
        "DISARMED by OCD itself: shot DEX1 failed"
    shot = {"shotid": "DEX1", "obs_number": 7}
    assert line_for("ocd.run_shot.run", dict(shot, exec_status=0)) == "shot DEX1 (obs 7) started"
    assert line_for("ocd.run_shot.exp_hetdex", dict(shot, exec_status=0, exposure=2,
                                                    seconds=360.0)) == \
        "shot DEX1 (obs 7): exposure 2 of 3 (360 s)"
    assert line_for("ocd.run_shot.run", dict(shot, exec_status=1, error=True,
                                             exc_value="syscmd exit 1")) == \
        "shot DEX1 (obs 7) FAILED: syscmd exit 1"
    assert line_for("ocd.states.state", {"machine_name": "run_shot", "state": "idle"}) is None


def test_only_changes_are_told_with_the_night_time():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        narrator = Narrator()
        wait = {"verdict": "wait", "shotid": "DEX1", "track": 0, "blockers": ["weather"],
                "details": {"weather": "wind 17 m/s > 15 m/s"}, "now": NIGHT}
        for dt in (0, 1, 2):  # the same decision, published on the report interval
            narrator(make_event("ocd.decision.made", dict(wait, now=NIGHT + dt), NIGHT + dt, 1.0))
        run = dict(wait, verdict="run", blockers=[], details={})
        narrator(make_event("ocd.decision.made", run, NIGHT + 65, 2.0))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    lines = [e["night"] + " " + e["line"] for e in seen if e.get("ocd_event") == "narration"]
    assert lines == ["06:00:00 WAIT: wind 17 m/s > 15 m/s", "06:01:05 RUN DEX1"]
