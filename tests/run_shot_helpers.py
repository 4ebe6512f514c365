"""What the shot runner's tests and ``ocd run_shot``'s tests share: the stand-in
command lines and the ``standins`` fixture (import it into a test module)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from ocd.sim.shuffle_files import write_shuffle_files

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
SYSCMD = f"{PY} -m ocd.sim.syscmd {{switch}} {{command}}"
DITHER = (f"{PY} -m ocd.sim.dither --exposure {{exposure}} --exptime {{seconds}} "
          "--obsnum {obs_number} --object {shotid} --dither-with-probes {dither_with_probes}")


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """Children find this tree, log their calls to a file and run fast."""
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OCD_STANDIN_LOG", str(log))
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "100")
    monkeypatch.setenv("OCD_SYSCMD_DELAY", "0")
    for name in ("FAIL_ON", "HANG_ON", "CRASH_ON", "HANG_IGNORE_TERM"):
        monkeypatch.delenv(f"OCD_SYSCMD_{name}", raising=False)
        monkeypatch.delenv(f"OCD_DITHER_{name}", raising=False)
    write_shuffle_files([dict(shotid="DEX00001", ra=12.401733, dec=56.1464, track=0,
                              QIFU="000")], tmp_path / "shuffle")
    return log
