"""The night report is computed from night-log records alone (pure)."""

from __future__ import annotations

from ocd.services.nightlog import build_report

T = 1740031200.0


def decision(now: float, *blockers: str) -> dict:
    return {"topic": "ocd.decision.made", "data_time": now, "now": now,
            "verdict": "wait" if blockers else "run", "blockers": list(blockers)}


def run(t: float, status: int, shotid: str = "DEX1", obs: int = 5, **extra) -> dict:
    return {"topic": "ocd.run_shot.run", "data_time": t, "shotid": shotid, "obs_number": obs,
            "exec_status": status, **extra}


def test_blocker_time_shots_and_a_clock_that_went_back():
    records = [
        decision(9.0e9, "tcs_silent"),  # the machine's clock before the first TCS event
        decision(T, "weather", "bad_seeing"),
        decision(T + 600, "shutter_closed"),
        decision(T + 900),
        run(T + 901, 0),
        decision(T + 902, "shot_running"),
        run(T + 2300, 1, error=False),
        run(T + 2400, 0, shotid="DEX2", obs=6),
        run(T + 2500, 1, shotid="DEX2", obs=6, error=True, exc_value="syscmd exited 1"),
        decision(T + 3600, "failed_shot"),
    ]
    report = build_report(records)
    assert report.first == T and report.last == T + 3600
    assert report.blocker_seconds == {"weather": 600.0, "bad_seeing": 600.0,
                                      "shutter_closed": 300.0, "shot_running": 2698.0}
    assert [(s.shotid, s.obs_number, s.status) for s in report.shots] == [
        ("DEX1", 5, "done"), ("DEX2", 6, "failed")]
    text = report.format()
    assert "1 done, 1 failed" in text
    assert "time spent on shots (shot_running): 0.75 h" in text
    assert "syscmd exited 1" in text
    assert "tcs_silent" not in text


def test_a_lost_shot_is_reported_failed():
    records = [run(T, 0), {"topic": "ocd.states.change", "data_time": T + 2000,
                           "machine_name": "run_shot", "msg": "lost"}]
    [shot] = build_report(records).shots
    assert shot.status == "failed" and shot.message == "lost" and shot.end == T + 2000
