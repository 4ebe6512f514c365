"""Fault: a shuffle file whose coordinates are not numbers (issue 12, section 5).

``dec = north`` in ``[trajectory]`` used to go to ``syscmd`` as
``dec="north"``. Now the shot fails before any set-up command runs, and the
FINISH names the file, the section and the key. Real stand-ins of syscmd
and hetdex-dither.py run the shot.
"""

from __future__ import annotations

import shlex
import sys

import pytest
import pytest_twisted

from faults_helpers import REPO
from ocd.config import Config
from ocd.protocols.process import ProcessRunner
from ocd.services.shot_runner import ShotRequest, ShotRunner
from ocd.sim.shuffle_files import write_shuffle_files
from ocd.sim.standin import read_calls

pytestmark = pytest.mark.integration

PY = shlex.quote(sys.executable)


@pytest.mark.parametrize("section, key, bad", [
    ("trajectory", "dec", "north"),
    ("trajectory", "ra", "nan"),
    ("guider2", "ra", "12h30m"),
    ("wfs1", "dec", "91.5"),
])
@pytest_twisted.inlineCallbacks
def test_shuffle_coordinates_that_are_not_numbers_fail_the_shot(
        tmp_path, monkeypatch, section, key, bad):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OCD_STANDIN_LOG", str(calls))
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "100")
    [path] = write_shuffle_files([dict(shotid="DEX00001", ra=12.401733, dec=56.1464, track=0,
                                       QIFU="000")], tmp_path / "shuffle")
    lines = path.read_text().splitlines()
    current = None
    for i, line in enumerate(lines):
        if line.startswith("["):
            current = line.strip("[] ")
        elif current == section and line.split("=")[0].strip() == key:
            lines[i] = f"{key} = {bad}"
    path.write_text("\n".join(lines) + "\n")
    config = Config.load(None, [
        ("run_shot", "syscmd_command", f"{PY} -m ocd.sim.syscmd {{switch}} {{command}}"),
        ("run_shot", "dither_command", f"{PY} -m ocd.sim.dither --exposure {{exposure}} "
                                       "--exptime {seconds} --obsnum {obs_number}"),
        ("paths", "shuffle_shot", str(tmp_path / "shuffle")),
    ])
    from twisted.internet import reactor

    events: list[tuple[str, dict]] = []
    runner = ShotRunner(config, lambda topic, fields: events.append((topic, fields)),
                        ProcessRunner(reactor, kill_grace=0.3), reactor)
    outcome = yield runner.run(ShotRequest(
        shotid="DEX00001", obs_number=7, ra=12.401733, dec=56.1464, azimuth=97.5, track=0,
        exptimes=(1.0, 1.0, 1.0), metadata={"QIFU": "000"}, forced_az=-1))
    assert not outcome.ok
    assert str(path) in outcome.error and f"[{section}] {key}" in outcome.error, outcome.error
    topic, finish = events[-1]
    assert topic == "ocd.run_shot.run" and finish["error"] is True
    assert f"[{section}] {key}" in finish["exc_value"]
    assert read_calls(calls, "syscmd") == []  # nothing was sent to the telescope
