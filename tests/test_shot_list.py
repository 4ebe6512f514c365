"""The shot list OCD decides on (ocd.services.shot_list), without a main loop."""

from __future__ import annotations

import os

import pytest

from ocd.config import Config
from ocd.core.counters import Counters
from ocd.core.decide import DecisionSettings
from ocd.services.shot_list import ShotList
from ocd.services.shot_store import ShotStore, StateDbError
from ocd.sim.shotlist import make_sample_shots, shot_list_text

T0 = 1526353200.0


@pytest.fixture
def settings():
    return DecisionSettings.from_config(Config.load(None))


def write_list(path, count=3, seed=1):
    path.write_text(shot_list_text(make_sample_shots(T0, T0 + 3 * 3600, count, seed=seed)))


def counts(shot_list):
    return {s.shotid: s.n_obs for s in shot_list.scheduler.shots}


def test_the_file_is_read_again_only_when_it_changes(tmp_path, settings):
    path = tmp_path / "shots.txt"
    write_list(path)
    shots = ShotList(settings, Counters())
    assert shots.file_changed(path) and shots.read(path, settings) is None
    assert not shots.file_changed(path)
    write_list(path, count=4)
    os.utime(path, ns=(1, 1))  # another size and time
    assert shots.file_changed(path)
    path.unlink()
    assert shots.file_changed(path) and not shots.file_changed(path)


def test_a_missing_or_rejected_file_keeps_the_last_good_list(tmp_path, settings):
    path = tmp_path / "shots.txt"
    counters = Counters()
    shots = ShotList(settings, counters)
    assert shots.read(path, settings) == f"shot file {path} does not exist"
    assert not shots.have_good_list and not shots.scheduler.shots
    write_list(path)
    assert shots.read(path, settings) is None
    good = counts(shots)
    path.write_text("DEX00001 not a shot line\n")
    problem = shots.read(path, settings)
    assert problem.startswith("shot file rejected:")
    assert counts(shots) == good and shots.have_good_list
    assert counters.get("shot_file.missing") == 1 and counters.get("shot_file.rejected") == 1


def test_counts_are_kept_in_the_state_database(tmp_path, settings):
    path = tmp_path / "shots.txt"
    write_list(path)
    shots = ShotList(settings, Counters())
    shots.store = ShotStore(tmp_path / "state.sqlite")
    try:
        shots.read(path, settings)
        first = next(iter(counts(shots)))
        shots.count_down(first)
        assert counts(shots)[first] == 0
        again = ShotList(settings, Counters())  # a restart reads the count back
        again.store = shots.store
        again.read(path, settings)
        assert counts(again)[first] == 0
    finally:
        shots.store.close()


class FullDiskStore:
    """A state database whose writes fail (disk full), as ShotStore raises it."""

    def sync(self, shots):
        return shots

    def count_down(self, shotid):
        raise StateDbError("/full/state.sqlite", "database or disk is full")


def test_a_count_that_cannot_be_written_still_goes_down_in_memory(tmp_path, settings):
    path = tmp_path / "shots.txt"
    write_list(path)
    counters = Counters()
    shots = ShotList(settings, counters)
    shots.store = FullDiskStore()
    shots.read(path, settings)
    first = next(iter(counts(shots)))
    with pytest.raises(StateDbError, match="disk is full"):
        shots.count_down(first)
    assert counts(shots)[first] == 0  # never picked again for it
    assert counters.get("state_db.errors") == 1
