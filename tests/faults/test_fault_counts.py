"""Faults in the remaining counts (issue 12, section 1).

- A full disk under ``[shots] state_db``: the count-down of a finished shot
  raised, ``n_obs`` never moved and the same shot ran 15 times in 25 s. Now
  the count that cannot be written fails the shot: disarm, one alert naming
  the file and the error, one observation number used.
- A shot list that goes missing or is rejected for a few seconds deleted
  every stored count; when it came back an ``n_obs 2`` shot was observed 4
  times. Now OCD keeps deciding on the last good list and no count changes.

``ocd run``'s service tree runs on the test reactor with real sockets, real
stand-ins of syscmd and hetdex-dither.py, SQLite for the observation
numbers, and the state database on a tiny tmpfs that really fills up.
"""

from __future__ import annotations

import dataclasses
import shlex
import sqlite3
import sys

import pytest
import pytest_twisted

from bus_helpers import make_config, wait_until
from faults_helpers import REPO
from faults_helpers import arm, good_sky, make_disk_full, run_shot_event, tiny_fs  # noqa: F401 (fixture)
from ocd.sim.shotlist import make_sample_shots, shot_list_text
from ocd.sim.shuffle_files import write_shuffle_files

pytestmark = pytest.mark.integration

NIGHT = 1740031200.0  # 2025-02-20 06:00 UTC, dark at the HET
PY = shlex.quote(sys.executable)


@pytest.fixture
def standins(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OCD_STANDIN_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "100")
    monkeypatch.setenv("OCD_SYSCMD_DELAY", "0")
    for name in ("FAIL_ON", "HANG_ON", "CRASH_ON"):
        monkeypatch.delenv(f"OCD_SYSCMD_{name}", raising=False)
        monkeypatch.delenv(f"OCD_DITHER_{name}", raising=False)


def night_config(tmp_path, free_url, state_db, n_obs=3, **extra):
    shots = [dataclasses.replace(s, n_obs=n_obs)
             for s in make_sample_shots(NIGHT - 300, NIGHT + 300, 1, seed=5)]
    (tmp_path / "shots.txt").write_text(shot_list_text(shots))
    write_shuffle_files(shots, tmp_path / "shuffle")
    alert_script = tmp_path / "alert.py"
    alert_script.write_text("import sys\nwith open(sys.argv[1], 'a') as f:\n"
                            "    f.write(sys.argv[2] + '\\n')\n")
    options = dict(
        dates__mock_time=str(NIGHT),
        shots__shot_file=str(tmp_path / "shots.txt"),
        shots__state_db=str(state_db),
        database__sqlite_file=str(tmp_path / "obsnum.sqlite"),
        paths__shuffle_shot=str(tmp_path / "shuffle"),
        run_shot__syscmd_command=f"{PY} -m ocd.sim.syscmd {{switch}} {{command}}",
        run_shot__dither_command=f"{PY} -m ocd.sim.dither --exposure {{exposure}} "
                                 "--exptime {seconds} --obsnum {obs_number} --object {shotid}",
        run_shot__exptimes="1 1 1",
        run_shot__kill_grace="0.3",
        decision__decide_interval="0.2",
        general__alert_command=f"{PY} {alert_script} {tmp_path / 'alerts.txt'}",
    )
    options.update(extra)
    return make_config(free_url, **options), shots


def start_ocd(tmp_path, free_url, tiny_fs):
    """The whole OCD (makeService, real reactor) with its state db on ``tiny_fs``.

    Returns ``(state_db, shotid of the one shot, service, main loop)``; the
    caller stops the service.
    """
    from twisted.internet import reactor

    from ocd.app import makeService

    state_db = tiny_fs.path / "state.sqlite"
    config, shots = night_config(tmp_path, free_url, state_db)
    service = makeService(config, reactor)
    service.startService()
    return state_db, shots[0].shotid, service, service.getServiceNamed("main_loop")


def obsnums(tmp_path) -> list[int]:
    with sqlite3.connect(tmp_path / "obsnum.sqlite") as db:
        return [row[0] for row in db.execute("SELECT obsnum FROM vl_obsnum ORDER BY obsnum")]


def alerts(tmp_path) -> list[str]:
    path = tmp_path / "alerts.txt"
    return path.read_text().splitlines() if path.exists() else []


def on_disk(state_db, shotid) -> int:
    with sqlite3.connect(state_db) as db:
        return db.execute("SELECT remaining FROM shots WHERE shotid = ?", (shotid,)).fetchone()[0]


@pytest_twisted.inlineCallbacks
def test_a_count_that_cannot_be_written_fails_the_shot(tmp_path, free_url, standins, tiny_fs):
    state_db, shotid, service, loop = start_ocd(tmp_path, free_url, tiny_fs)
    how: list[str] = []

    def fill_on_first_exposure(event):
        if event.topic == "ocd.run_shot.exp_hetdex" and not how:
            how.append(make_disk_full(tiny_fs, loop.store))

    loop.listeners.append(fill_on_first_exposure)
    try:
        arm(loop)
        good_sky(loop, NIGHT)
        assert (yield wait_until(lambda: loop.failed_shot, 30.0)), "the shot never ended"
        yield wait_until(lambda: len(alerts(tmp_path)) >= 2, 5.0)
        print(f"disk full by: {how[0]}")
        assert loop.arming.state == "not_allowed"  # disarmed itself
        assert loop.counters.get("shots.succeeded") == 0
        assert loop.counters.get("shots.failed") == 1
        # The same shot is not run again: one observation number in all.
        for _ in range(10):
            good_sky(loop, NIGHT)
            yield wait_until(lambda: False, 0.1)
        assert len(obsnums(tmp_path)) == 1
        # In memory the count went down; on disk it could not.
        assert {s.shotid: s.n_obs for s in loop.scheduler.shots}[shotid] == 2
        sent = alerts(tmp_path)
        failed = [a for a in sent if a.startswith(f"OCD: shot {shotid}")]
        assert failed, sent
        assert "remaining count could not be written" in failed[0], failed[0]
        assert str(state_db) in failed[0] and "disk full" in failed[0], failed[0]
        assert any(a.startswith("OCD disarmed itself") for a in sent), sent
    finally:
        yield service.stopService()
    if tiny_fs.real:
        (tiny_fs.path / "filler").unlink()
        assert on_disk(state_db, shotid) == 3  # the failed write changed nothing


@pytest_twisted.inlineCallbacks
def test_a_hand_shot_whose_count_cannot_be_written_fails(tmp_path, free_url, standins, tiny_fs):
    state_db, shotid, service, loop = start_ocd(tmp_path, free_url, tiny_fs)
    try:
        loop.handle_event(run_shot_event(0, shotid=shotid, obs_number=4242))
        make_disk_full(tiny_fs, loop.store)
        loop.handle_event(run_shot_event(1, shotid=shotid, obs_number=4242, error=False))
        assert loop.failed_shot
        assert loop.counters.get("state_db.errors") == 1
        assert (yield wait_until(lambda: alerts(tmp_path), 5.0))
        assert str(state_db) in alerts(tmp_path)[0]
    finally:
        yield service.stopService()

