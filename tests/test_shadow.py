"""Shadow mode: OCD decides beside the crew, starts nothing, and compares the night.

A generated night is replayed in process on a Clock (an event a minute:
heartbeat, weather, shutter, guider), with one shot in the list, a spell of
closed shutter and two shots run by hand (``ocd run_shot -e`` events) at
chosen times: one while OCD would observe too, one while it would wait. The
night log and ``ocd night_report`` must then give the comparison's numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from ocd.config import Config
from ocd.core.events import UrlKind, event_from_payload, make_payload
from ocd.services.night_report import build_report, load_night
from ocd.services.nightlog import NightLog
from ocd.services.orchestrator import Orchestrator
from ocd.services.shadow_compare import compare_shadow
from ocd.sim.shotlist import make_sample_shots, shot_list_text
from conftest import stopped

# A dark stretch, 2025-02-20 03:00 to 09:00 UTC (the night of the 19th at the HET).
NIGHT = 1740031200.0
T0, T1 = NIGHT - 3 * 3600, NIGHT + 3 * 3600
STEP = 60.0
CLOSED = (NIGHT + 2.5 * 3600, NIGHT + 2.5 * 3600 + 600)  # the shutter closed 10 min
CREW_WAITING = (NIGHT - 2.5 * 3600, NIGHT - 2.5 * 3600 + 1200)  # nothing in the band then


class CountingObsnum:
    """An observation-number pool that counts reservations (the ObsnumPool interface)."""

    available = True
    last_error = None

    def __init__(self) -> None:
        self.reserved = 0

    def reserve(self, shotid: str) -> defer.Deferred:
        self.reserved += 1
        return defer.succeed(1000 + self.reserved)

    def check(self) -> defer.Deferred:
        return defer.succeed(True)


def tcs(topic: str, t: float, **fields):
    return event_from_payload(topic, make_payload(topic, fields, t, t), UrlKind.TCS, "tcp://tcs")


def crew(t: float, exec_status: int, shotid: str, obs: int, **extra):
    fields = dict(shotid=shotid, obs_number=obs, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                  exptimes=[360, 360, 360], exec_status=exec_status, **extra)
    return event_from_payload("ocd.run_shot.run", make_payload("ocd.run_shot.run", fields, t, t),
                              UrlKind.RUN_SHOT, "tcp://crew")


@pytest.fixture
def shadow_night(tmp_path: Path):
    sample = make_sample_shots(NIGHT - 600, NIGHT + 600, 1, seed=3)
    (tmp_path / "shots.txt").write_text(shot_list_text(sample))
    config = Config.load(None, [
        ("shots", "shot_file", str(tmp_path / "shots.txt")),
        ("shots", "state_db", str(tmp_path / "state.sqlite")),
        ("run_shot", "syscmd_command", "true"),
        ("run_shot", "dither_command", "true"),
        ("dates", "max_time_offset", "0"),
        ("run", "shadow", "yes"),
    ])
    clock = Clock()
    clock.advance(1000)
    obsnum = CountingObsnum()
    loop = Orchestrator(config, clock, obsnum=obsnum)
    heard: list = []
    loop.listeners.append(heard.append)
    night_log = NightLog(tmp_path / "night.sqlite", loop.now, wall=clock.seconds)
    loop.listeners.append(night_log)
    loop.crew_shot_listeners.append(night_log.crew_shot)
    night_log.startService()
    loop.startService()
    yield loop, clock, heard, obsnum, night_log, tmp_path
    if loop.running:
        stopped(loop)
    if night_log.running:
        stopped(night_log)


def test_a_shadow_night_starts_nothing_and_compares_with_the_crew(shadow_night):
    loop, clock, heard, obsnum, night_log, tmp_path = shadow_night
    shot = loop.scheduler.shots[0]
    duration = loop.settings.duration
    # When OCD would observe: the passes of its one shot (latest start: end - duration).
    would = []
    for track in (0, 1):
        if shot.track not in (track, 2):
            continue
        window = loop.scheduler.window(shot.shotid, track, T0)
        if window is not None and window[0] < T1:
            would.append((max(window[0], T0), min(window[1] - duration, T1)))
    assert would and all(b - a > 1800 for a, b in would)
    first = would[0]
    begin = T0 + math.ceil((first[0] + 300 - T0) / STEP) * STEP  # on the minute grid
    crew_agreeing = (begin, begin + 1200)  # inside OCD's window
    hand = [(CREW_WAITING, "HAND01", 501), (crew_agreeing, "HAND02", 502)]

    t = T0
    while t <= T1:
        loop.handle_event(tcs("tcs.receiver.heartbeat", t))
        loop.handle_event(tcs("legacy.weather.status", t, humidity=20, wind_speed=3,
                              ambtemp=5, dewpoint=-10))
        state = "closed" if CLOSED[0] <= t < CLOSED[1] else "open"
        loop.handle_event(tcs("legacy.shutter.status", t, state=state))
        loop.handle_event(tcs("pas.Guider1.metrology_data", t, fwhm=1.2, transparency=0.95,
                              valid=True))
        for (start, end), shotid, obs in hand:
            if start == t:
                loop.handle_event(crew(t, 0, shotid, obs))
            if end == t:
                loop.handle_event(crew(t, 1, shotid, obs, error=False))
        clock.advance(0)
        t += STEP
        clock.advance(STEP)

    # Shadow: decided as if allowed, never reserved nor started anything.
    made = [e.payload for e in heard if e.topic == "ocd.decision.made"]
    assert made and all(p.get("shadow") is True for p in made)
    assert any(p["verdict"] == "run" and p["shotid"] == shot.shotid for p in made)
    assert obsnum.reserved == 0
    assert not [e for e in heard if e.topic == "ocd.run_shot.run"]
    assert loop.arming.state == "not_allowed"

    stopped(loop)
    stopped(night_log)
    night, rows = load_night(tmp_path / "night.sqlite")
    report = build_report(rows, night)
    assert report.shadow
    assert [(s.shotid, s.start, s.end, s.outcome) for s in report.shots] == [
        ("HAND01", *CREW_WAITING, "done"), ("HAND02", *crew_agreeing, "done")]

    comparison = compare_shadow(report)
    closed = CLOSED[1] - CLOSED[0]
    assert comparison.compared_seconds == pytest.approx(T1 - T0 - closed, abs=2 * STEP)
    # OCD would have observed while nobody did: its windows minus the crew's shot inside.
    alone = sum(b - a for a, b in would) - (crew_agreeing[1] - crew_agreeing[0])
    assert sum(s.seconds for s in comparison.ocd_only) == pytest.approx(alone, abs=3 * STEP)
    assert all(s.what == (shot.shotid,) for s in comparison.ocd_only)
    # The crew observed while OCD would have waited: HAND01, for no target in the band.
    assert len(comparison.crew_only) == 1
    stretch = comparison.crew_only[0]
    assert (stretch.start, stretch.end) == pytest.approx(CREW_WAITING, abs=STEP)
    assert stretch.what == ("no_target",)
    expected = 1 - (alone + 1200) / (T1 - T0 - closed)
    assert comparison.agreement == pytest.approx(expected, abs=0.01)

    # What ocd night_report prints, and its picture with a lane for each.
    from ocd.commands.night_report import report_text

    code, text = report_text(tmp_path / "night.sqlite", None, tmp_path / "night.png")
    assert code == 0
    assert "Shadow night" in text and f"agreement: {comparison.agreement:.1%}" in text
    assert f"would run {shot.shotid}" in text and "waiting for no_target" in text
    assert (tmp_path / "night.png").read_bytes()[:4] == b"\x89PNG"


def test_shadow_is_off_by_default_and_said_on_the_status_and_console():
    from ocd.core.status import StatusView, snapshot
    from ocd.services.narration import line_for

    assert Config.load().get_bool("run", "shadow") is False
    view = StatusView(version="x", started=0.0, loop_running=True, machines={},
                      tcs_timeout=30.0, verdict="run", shadow=True)
    document = snapshot(view, NIGHT, 1.0)
    assert document["shadow"] is True and document["mode"].startswith("SHADOW")
    assert line_for("ocd.decision.made", {"verdict": "run", "shotid": "DEX1", "shadow": True,
                                          "blockers": [], "details": {}}) == \
        "SHADOW: would RUN DEX1"
