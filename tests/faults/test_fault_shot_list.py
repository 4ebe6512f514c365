"""Fault: a shot list that goes missing or is rejected while OCD runs (issue 12, section 1).

Moved away or mistyped for a few seconds, it used to delete every stored
count, so an ``n_obs 2`` shot was observed 4 times. Now: OCD keeps
deciding on the last good list, logs once and alerts, and no count changes;
a shot that leaves a valid file keeps its row (absent) and resumes its
count when it comes back with the same ``n_obs``. The orchestrator runs on
a Clock; the shot file and the SQLite state database are real files.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from twisted.internet.task import Clock

from faults_helpers import run_shot_event
from ocd.config import Config
from ocd.services.orchestrator import Orchestrator
from conftest import stopped

LINE = ("{shotid} 12.401733 56.1464 2 1 {n_obs} -1 89 HET18-2-100 HS0015_E 000 10:55:31.00 "
        "+51:07:40.44 2000 0.0 0.0 2000\n")


def shot_list(**n_obs: int) -> str:
    return "".join(LINE.format(shotid=s, n_obs=n) for s, n in n_obs.items())


class Night:
    """One orchestrator over a shot file and a state database in ``folder``."""

    def __init__(self, folder):
        self.file = folder / "shots.txt"
        self.db = folder / "state.sqlite"
        self._mtime = 1_700_000_000_000_000_000
        self.loops: list[Orchestrator] = []

    def write(self, text: str | None) -> None:
        """Replace (or, with None, remove) the shot file; a new mtime each time."""
        if text is None:
            self.file.unlink(missing_ok=True)
            return
        self.file.write_text(text)
        self._mtime += 1_000_000_000
        os.utime(self.file, ns=(self._mtime, self._mtime))

    def start(self) -> Orchestrator:
        config = Config.load(None, [("shots", "shot_file", str(self.file)),
                                    ("shots", "state_db", str(self.db))])
        clock = Clock()
        clock.advance(1000)
        loop = Orchestrator(config, clock)
        loop.startService()
        self.loops.append(loop)
        return loop

    def stored(self) -> dict[str, tuple[int, int]]:
        with sqlite3.connect(self.db) as db:
            return {row[0]: (row[1], row[2]) for row in
                    db.execute("SELECT shotid, remaining, present FROM shots")}


@pytest.fixture
def night(tmp_path):
    night = Night(tmp_path)
    yield night
    for loop in night.loops:
        stopped(loop)


def counts(loop) -> dict[str, int]:
    return {s.shotid: s.n_obs for s in loop.scheduler.shots}


def observe(loop, shotid: str, obs: int) -> None:
    """A shot by hand (``ocd run_shot -e``) that ends without error."""
    loop.handle_event(run_shot_event(0, shotid=shotid, obs_number=obs))
    loop.handle_event(run_shot_event(1, shotid=shotid, obs_number=obs, error=False))


def test_missing_or_rejected_list_changes_no_count(night):
    night.write(shot_list(DEX00001=2, DEX00002=1))
    loop = night.start()
    observe(loop, "DEX00001", 1001)
    assert counts(loop) == {"DEX00001": 1, "DEX00002": 1}

    night.write(None)  # moved away for a moment
    for _ in range(5):
        loop.tick()
    assert counts(loop) == {"DEX00001": 1, "DEX00002": 1}  # the last good list
    assert night.stored() == {"DEX00001": (1, 1), "DEX00002": (1, 1)}
    assert loop.counters.get("shot_file.missing") == 1  # logged once, not per tick
    assert loop.counters.get("alerts.sent") == 1

    night.write(shot_list(DEX00001=2).replace("12.401733", "12h24m"))  # mistyped
    loop.tick()
    loop.tick()
    assert loop.counters.get("shot_file.rejected") == 1
    assert counts(loop) == {"DEX00001": 1, "DEX00002": 1}
    assert night.stored() == {"DEX00001": (1, 1), "DEX00002": (1, 1)}
    # One alert per kind per alert_every: the second is held back, and counted.
    assert loop.counters.get("alerts.held_back") == 1

    night.write(shot_list(DEX00001=2, DEX00002=1))  # back as it was
    loop.tick()
    assert counts(loop) == {"DEX00001": 1, "DEX00002": 1}  # not 2 again

    observe(loop, "DEX00001", 1002)
    assert counts(loop) == {"DEX00001": 0, "DEX00002": 1}  # two observations in all


def test_a_shot_that_leaves_a_valid_list_resumes_its_count(night):
    night.write(shot_list(DEX00001=2, DEX00002=1))
    loop = night.start()
    observe(loop, "DEX00001", 1001)
    night.write(shot_list(DEX00002=1))  # a valid list without DEX00001
    loop.tick()
    assert counts(loop) == {"DEX00002": 1}
    assert night.stored()["DEX00001"] == (1, 0)  # row kept, marked absent
    night.write(shot_list(DEX00001=2, DEX00002=1))  # back, same n_obs
    loop.tick()
    assert counts(loop) == {"DEX00001": 1, "DEX00002": 1}
    assert night.stored()["DEX00001"] == (1, 1)
    night.write(shot_list(DEX00001=3, DEX00002=1))  # a changed n_obs: the file wins
    loop.tick()
    assert counts(loop)["DEX00001"] == 3


def test_a_restart_without_the_list_keeps_the_stored_counts(night):
    night.write(shot_list(DEX00001=2))
    loop = night.start()
    observe(loop, "DEX00001", 1001)
    stopped(loop)
    night.loops.remove(loop)
    night.write(None)
    loop = night.start()
    assert counts(loop) == {}  # no good list yet: no shots (no_target)
    assert night.stored() == {"DEX00001": (1, 1)}
    night.write(shot_list(DEX00001=2))
    loop.tick()
    assert counts(loop) == {"DEX00001": 1}
