"""AlertTracker: once per blocker spell, only while allowed."""

from ocd.core.alerts import AlertTracker, disarm_message, failed_shot_message


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
