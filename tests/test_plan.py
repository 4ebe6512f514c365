"""``ocd plan``: tonight's shots from OCD's own decision code on a clear night.

The pure plan (order, windows, idle stretches), the command (text, --json,
the PNG, the remaining counts of state_db read without writing), and the
promise that matters: a simulated night of the same date, shot list and
settings runs the planned shots, in the planned order, each in its window.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from ocd.config import Config
from ocd.core.decide import DecisionSettings
from ocd.core.plan import check_against_plan, dark_span, plan_night
from ocd.core.scheduler import Scheduler
from ocd.core.shots import parse_shot_text

DATE = "2025-02-20"


@pytest.fixture(scope="module")
def night():
    """A 24-shot list placed across the dark of DATE, and its dark span."""
    from ocd.sim.night import night_span
    from ocd.sim.shotlist import make_sample_shots, shot_list_text

    dusk, dawn = night_span(DATE, horizon_deg=-12.0)
    text = shot_list_text(make_sample_shots(dusk + 1800, dawn - 1800, 24, seed=0))
    return text, parse_shot_text(text)


@pytest.fixture(scope="module")
def settings():
    return DecisionSettings.from_config(Config.load())


def test_the_plan_is_in_order_in_the_dark_and_each_shot_in_its_window(night, settings):
    _text, shots = night
    scheduler = Scheduler(shots, settings)
    dusk, dawn = dark_span(scheduler, DATE, settings.max_sun_alt)
    plan = plan_night(scheduler, settings, dusk, dawn, 5.0)

    assert 10 * 3600 < dawn - dusk < 11.5 * 3600  # February at 30.7 N, Sun below -12 deg
    assert len(plan.shots) >= 20
    for shot, following in zip(plan.shots, plan.shots[1:]):
        assert shot.end <= following.start
    for shot in plan.shots:
        assert shot.end - shot.start == settings.duration
        assert dusk <= shot.window[0] <= shot.start <= shot.window[1]
        assert shot.end <= dawn
        # The window is where the decision code itself says the shot is observable.
        assert scheduler.is_observable(scheduler._index[shot.shotid], shot.track,
                                       shot.window[0] + 1, settings.duration)
        assert scheduler.is_observable(scheduler._index[shot.shotid], shot.track,
                                       shot.window[1] - 1, settings.duration)
    # Shots and idle stretches cover the dark span once.
    busy = sum(s.end - s.start for s in plan.shots)
    assert busy + plan.idle_seconds == pytest.approx(dawn - dusk, abs=10.0)
    assert all(i.reason for i in plan.idle)
    assert plan.idle[0].reason.startswith("no target in the band")
    assert check_against_plan(plan, [(s.shotid, s.start) for s in plan.shots]).as_planned


def test_a_skipped_shot_changes_the_order_but_not_the_windows_of_the_others(night, settings):
    """The demo night (weather) skipped one planned shot and ran the rest each
    in its own window: the check said 17 of 21 "started outside the planned
    window", comparing each with the window of the shot planned at its place."""
    _text, shots = night
    scheduler = Scheduler(shots, settings)
    dusk, dawn = dark_span(scheduler, DATE, settings.max_sun_alt)
    plan = plan_night(scheduler, settings, dusk, dawn, 5.0)
    skipped, *kept = plan.shots[1:6]
    run = [(plan.shots[0].shotid, plan.shots[0].start)] + [(s.shotid, s.window[0]) for s in kept]
    check = check_against_plan(plan, run)
    assert not check.in_order and not check.as_planned
    assert check.outside == ()
    assert f"{len(run)} of {len(run)} started in their planned window" in check.format()
    assert skipped.shotid in check.format()  # planned, not run
    late = check_against_plan(plan, [(kept[0].shotid, kept[0].window[1] + 60)])
    assert late.outside == (kept[0].shotid,)


def test_a_done_shot_is_not_planned_again(night, settings):
    _text, shots = night
    scheduler = Scheduler(shots, settings)
    dusk, dawn = dark_span(scheduler, DATE, settings.max_sun_alt)
    first = plan_night(scheduler, settings, dusk, dawn, 5.0).shots[0].shotid
    done = scheduler.with_remaining({first: 0})
    assert first not in {s.shotid for s in plan_night(done, settings, dusk, dawn, 5.0).shots}


def test_check_against_plan_names_what_differs(night, settings):
    _text, shots = night
    scheduler = Scheduler(shots, settings)
    dusk, dawn = dark_span(scheduler, DATE, settings.max_sun_alt)
    plan = plan_night(scheduler, settings, dusk, dawn, 5.0)
    a, b = plan.shots[0], plan.shots[1]
    swapped = check_against_plan(plan, [(b.shotid, b.start), (a.shotid, a.start)])
    assert not swapped.in_order and "order CHANGED" in swapped.format()
    late = check_against_plan(plan, [(a.shotid, a.window[1] + 600)])
    assert late.in_order and late.outside == (a.shotid,) and "outside" in late.format()


def _config_file(tmp_path, text):
    shot_file = tmp_path / "shots.txt"
    shot_file.write_text(text, encoding="utf-8")
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[shots]\nshot_file = {shot_file}\nstate_db = {tmp_path / 'state.sqlite'}\n",
                   encoding="utf-8")
    return cfg


def test_ocd_plan_json_text_and_picture_use_the_remaining_counts(tmp_path, night, capsys):
    from ocd.cli import main
    from ocd.services.shot_store import ShotStore

    text, shots = night
    cfg = _config_file(tmp_path, text)
    assert main(["plan", "--config", str(cfg), DATE, "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["night"] == DATE and planned["shots_in_list"] == 24
    assert planned["dark"]["start"]["utc"].startswith("2025-02-21T01:")
    first = planned["shots"][0]
    assert set(first) >= {"shotid", "track", "priority", "start", "end", "window"}
    assert first["track"] in ("EAST", "WEST") and first["start"]["utc"].endswith("Z")
    assert planned["idle"] and planned["idle"][0]["reason"]

    # The first shot is done (state_db says so): not planned again; the file is not written.
    store = ShotStore(tmp_path / "state.sqlite")
    store.sync(list(shots))
    store.count_down(first["shotid"])
    store.close()
    before = (tmp_path / "state.sqlite").read_bytes()
    png = tmp_path / "plan.png"
    assert main(["plan", "--config", str(cfg), DATE, "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"Night of {DATE}" in out and "idle:" in out and first["shotid"] not in out
    assert (tmp_path / "state.sqlite").read_bytes() == before
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        assert conn.execute("SELECT remaining FROM shots WHERE shotid = ?",
                            (first["shotid"],)).fetchone() == (0,)
    from ocd.services.night_plot import DPI, WIDTH

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == WIDTH
    assert int.from_bytes(data[20:24], "big") == 300 * DPI // 100


def test_ocd_plan_refuses_a_bad_shot_list_naming_it(tmp_path, capsys):
    from ocd.cli import main

    cfg = _config_file(tmp_path, "DEX1 not-a-number 1 0 1 1 -1\n")
    assert main(["plan", "--config", str(cfg), DATE]) == 2
    err = capsys.readouterr().err
    assert "ocd plan: shot list refused" in err and "shots.txt" in err


# -- the promise: the simulated night runs the plan ---------------------------------


@pytest.mark.integration
@pytest.mark.timeout(300)  # the night (conftest.simulated_night) runs in this test's set-up
@pytest.mark.xdist_group("simulated_night")
@pytest.mark.slow(18)  # the night: 18 s of wall time here
def test_the_simulated_night_runs_the_planned_shots_in_order_within_their_windows(
        simulated_night):
    """Shots whose passes follow each other: the order does not hang on the machine's speed.

    The stand-ins' process start-ups make a simulated shot longer on the
    night's clock than the planned 23 min (by how much depends on the load),
    so the list of :func:`conftest.simulated_night` is made of shots that
    cross the HET's elevation an hour or more apart; the plan and the night
    must then agree exactly.
    """
    from ocd.sim.simulate import check_night

    sim, expected, report = simulated_night.plan, simulated_night.expected, simulated_night.report
    dusk, end = sim.dark()
    assert end - dusk > 2.5 * 3600
    assert [s.shotid for s in expected.shots] == ["DEX00001", "DEX00002"], expected.format()

    check = check_night(expected, report)
    assert [s.outcome for s in report.shots] == ["done"] * len(report.shots)
    assert check.run == check.planned, check.format() + "\n" + expected.format()
    assert check.as_planned, check.format() + "\n" + expected.format()
    for shot, planned in zip(report.shots, expected.shots):
        assert planned.window[0] - 1 <= shot.start <= planned.window[1] + 1
