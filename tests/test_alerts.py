"""AlertTracker: once per blocker spell, only while allowed."""

from ocd.core.alerts import AlertLimiter, AlertTracker, disarm_message, failed_shot_message
from ocd.core.shot_tracker import invalid_shot_event


def test_a_blocker_alerts_once_per_spell_after_alert_after():
    t = AlertTracker()
    assert t.update(["weather"], True, 0.0, 900) == []
    assert t.update(["weather"], True, 900.0, 900) == []  # not longer yet
    msgs = t.update(["weather", "bad_seeing"], True, 901.0, 900, {"weather": "humidity 90% > 80%"})
    assert msgs == ["OCD: shots allowed but blocked by weather for 901 s: humidity 90% > 80%"]
    assert t.update(["weather", "bad_seeing"], True, 2000.0, 900) == [
        "OCD: shots allowed but blocked by bad_seeing for 1099 s"]
    assert t.update(["weather"], True, 5000.0, 900) == []  # once per spell
    assert t.update([], True, 5001.0, 900) == []  # spell over
    assert t.update(["weather"], True, 5002.0, 900) == []
    assert t.update(["weather"], True, 5903.0, 900) != []  # a new spell alerts again


def test_no_alerts_while_not_allowed_and_quiet_blockers():
    t = AlertTracker()
    assert t.update(["not_allowed", "weather"], False, 0.0, 10) == []
    assert t.update(["not_allowed", "weather"], False, 100.0, 10) == []
    # Allowed now: the spell starts now, not when it began while disarmed.
    assert t.update(["weather", "shot_running"], True, 100.0, 10) == []
    assert t.update(["weather", "shot_running"], True, 111.0, 10) == [
        "OCD: shots allowed but blocked by weather for 11 s"]
    assert set(t.spells(111.0)) == {"weather"}


def test_messages():
    assert "ocd allow_hetdex start" in disarm_message("shot DEX1 failed")
    assert failed_shot_message("DEX1", 12, "syscmd exited 1") == "OCD: shot DEX1 (observation 12) failed: syscmd exited 1"
    assert failed_shot_message("DEX1", None, "lost") == "OCD: shot DEX1 failed: lost"


def test_limiter_one_per_kind_per_window_with_the_count_held_back():
    limiter = AlertLimiter()
    assert limiter.offer("failed_shot", "a", 0.0, 300) == "a"
    assert limiter.offer("disarm", "d", 1.0, 300) == "d"  # another kind goes out
    assert [limiter.offer("failed_shot", m, 2.0, 300) for m in "bc"] == [None, None]
    assert limiter.held_back == 2
    assert limiter.due(299.0, 300) == []  # window not over yet
    assert limiter.due(300.0, 300) == [
        "OCD: 2 failed_shot alert(s) held back in the last 300 s; the last one: c"]
    assert limiter.held_back == 0
    assert limiter.offer("failed_shot", "e", 400.0, 300) is None  # the summary opened a window
    assert limiter.offer("failed_shot", "f", 700.0, 300) == (
        "f [1 more failed_shot alert(s) held back in the last 300 s]")


def test_limiter_off_with_zero():
    limiter = AlertLimiter()
    assert [limiter.offer("k", "m", 0.0, 0) for _ in range(3)] == ["m"] * 3


def test_invalid_shot_events():
    good = dict(shotid="DEX1", obs_number=3, exptimes=[360, 360, 360.0])
    assert invalid_shot_event(good, start=True) is None
    assert invalid_shot_event({"shotid": "DEX1"}, start=False) is None
    nan = float("nan")
    for bad in ([nan, nan, nan], [-5, -5, -5], [1e300, 1, 1], [360, 360], None, "360 360 360",
                [True, 1, 1]):
        assert "exptimes" in invalid_shot_event(dict(good, exptimes=bad), start=True)
    for shotid in (None, "", ["DEX1"], 7):
        assert "shotid" in invalid_shot_event(dict(good, shotid=shotid), start=False)
    assert "obs_number" in invalid_shot_event(dict(good, obs_number="3"), start=False)
