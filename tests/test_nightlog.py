"""The night log (SQLite, WAL) and ``ocd night_report`` on a night built here."""

from __future__ import annotations

import signal
import sqlite3
import struct
import subprocess
import sys
import time

import pytest

from ocd.cli import main as ocd_main
from ocd.core.events import make_event
from ocd.services.night_report import build_report, load_night
from ocd.services.nightlog import NightLog, night_of
from conftest import stopped

T = 1740106800.0  # 2025-02-21 03:00:00 UTC: the night of 2025-02-20 at the HET


class NightClock:
    """OCD's clock for the test: set by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def publish(log: NightLog, topic: str, t: float, **fields) -> None:
    log(make_event(topic, fields, t, t))


def decision(log, t, *blockers, shotid="DEX1"):
    publish(log, "ocd.decision.made", t, verdict="wait" if blockers else "run", shotid=shotid,
            track=0, blockers=list(blockers), details={b: f"{b} detail" for b in blockers}, now=t)


def shot(log, t, status, shotid="DEX1", obs=5, **extra):
    publish(log, "ocd.run_shot.run", t, shotid=shotid, obs_number=obs, exec_status=status, **extra)


def arm(log, t, new, transition, msg):
    publish(log, "ocd.states.change", t, machine_name="hetdex_allowed", transition=transition,
            old_state="allowed" if new == "not_allowed" else "not_allowed", new_state=new, msg=msg)


def build_night(path) -> None:
    """3 h of a night: weather, a good shot, a failed one, OCD restarted, an unfinished shot."""
    clock = NightClock(T)
    log = NightLog(path, clock, program="test")
    log.startService()
    arm(log, T, "allowed", "allow", "ocd allow_hetdex start (asked by ann@mcs)")
    decision(log, T, "weather", "bad_seeing")
    decision(log, T + 60, "weather", "bad_seeing")  # the same: not recorded again
    decision(log, T + 600, "shutter_closed")
    decision(log, T + 900)
    shot(log, T + 901, 0)
    decision(log, T + 902, "shot_running")
    publish(log, "ocd.run_shot.exp_hetdex", T + 1000, shotid="DEX1", obs_number=5, exec_status=0,
            exposure=1, seconds=360.0)
    shot(log, T + 2100, 1, error=False)
    decision(log, T + 2100, shotid="DEX2")
    shot(log, T + 2101, 0, shotid="DEX2", obs=6)
    decision(log, T + 2102, "shot_running")
    shot(log, T + 2400, 1, shotid="DEX2", obs=6, error=True, exc_value="syscmd exited 1")
    clock.now = T + 2400
    log.alert("shot DEX2 (observation 6) failed: syscmd exited 1")
    arm(log, T + 2400, "not_allowed", "self_disarm", "shot DEX2 failed")
    decision(log, T + 2400, "not_allowed", "failed_shot")
    clock.now = T + 3600
    stopped(log)
    # OCD restarted 10 minutes later, armed, started a shot; the log ends during it.
    clock.now = T + 4200
    log.startService()
    decision(log, T + 4200, "not_allowed")
    arm(log, T + 4300, "allowed", "allow", "ocd allow_hetdex start (asked by bob@mcs)")
    decision(log, T + 4300, shotid="DEX3")
    shot(log, T + 4301, 0, shotid="DEX3", obs=7)
    publish(log, "ocd.run_shot.setup_telescope", T + 4302, shotid="DEX3", obs_number=7,
            exec_status=0)
    decision(log, T + 4302, "shot_running")
    publish(log, "ocd.run_shot.exp_hetdex", T + 5000, shotid="DEX3", obs_number=7,
            exec_status=0, exposure=2, seconds=360.0)
    log.conn.close()  # a crash: no stop row
    log.conn = None


def test_the_log_keeps_changes_only_with_who_why_and_outcomes(tmp_path):
    path = tmp_path / "night.sqlite"
    build_night(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT kind, what, shotid, obs_number, blockers, outcome, who, "
                            "reason, run FROM entries ORDER BY id").fetchall()
    decisions = [r for r in rows if r[0] == "decision"]
    assert [(r[1], r[4]) for r in decisions[:3]] == [
        ("wait", "weather bad_seeing"), ("wait", "shutter_closed"), ("run", "")]
    arming = [(r[1], r[6], r[7]) for r in rows if r[0] == "arming"]
    assert arming == [("allowed", "ann@mcs", "ocd allow_hetdex start"),
                      ("not_allowed", "OCD", "shot DEX2 failed"),
                      ("allowed", "bob@mcs", "ocd allow_hetdex start")]
    assert ("shot", "end", "DEX2", 6, None, "failed", None, "syscmd exited 1") == rows[
        [r[:3] for r in rows].index(("shot", "end", "DEX2"))][:8]
    assert [r[1] for r in rows if r[0] == "ocd"] == ["start", "stop", "start"]
    assert len({r[8] for r in rows}) == 2  # two runs of OCD, one file
    assert [r[7] for r in rows if r[0] == "alert"] == [
        "shot DEX2 (observation 6) failed: syscmd exited 1"]


def test_night_report_numbers_from_a_night_built_here(tmp_path, capsys):
    path = tmp_path / "night.sqlite"
    build_night(path)
    night, rows = load_night(path)
    assert night == "2025-02-20" == night_of(T)
    report = build_report(rows, night)
    assert report.first == T and report.last == T + 5000
    assert report.blocker_seconds == {
        "weather": 600.0, "bad_seeing": 600.0, "shutter_closed": 300.0,
        "shot_running": 1198.0 + 298.0 + 698.0, "not_allowed": 1200.0 + 100.0,
        "failed_shot": 1200.0}
    assert report.ocd_down_seconds == 600.0
    assert [(s.shotid, s.obs_number, s.start, s.end, s.outcome) for s in report.shots] == [
        ("DEX1", 5, T + 901, T + 2100, "done"), ("DEX2", 6, T + 2101, T + 2400, "failed"),
        ("DEX3", 7, T + 4301, None, "unfinished")]

    png = tmp_path / "night.png"  # in a folder that exists: -o never makes folders
    assert ocd_main(["night_report", "-l", str(path), "-o", str(png)]) == 0
    text = capsys.readouterr().out
    assert "Night report: night of 2025-02-20" in text
    assert "span: 2025-02-21T03:00:00Z to 2025-02-21T04:23:20Z (1.39 h)" in text
    assert "shots: 1 done, 1 failed, 0 lost, 1 unfinished" in text
    assert "  DEX1               5  03:15:01  03:35:00   20.0  done" in text
    assert "  DEX2               6  03:35:01  03:40:00    5.0  failed (syscmd exited 1)" in text
    assert "  DEX3               7  04:11:41         -      -  unfinished (last step: exposure 2)" \
        in text
    assert "  not_allowed            0.36 h" in text and "  weather                0.17 h" in text
    assert "time on shots (shot_running): 0.61 h" in text
    assert "OCD not running: 0.17 h" in text

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1200, 500)

    # Another date: nothing recorded, and the nights the log knows are named.
    assert ocd_main(["night_report", "-l", str(path), "2025-02-19"]) == 1
    assert "2025-02-20" in capsys.readouterr().err


def test_night_report_without_a_log_is_a_usage_error(tmp_path, capsys):
    assert ocd_main(["night_report", "-l", str(tmp_path / "none.sqlite")]) == 2
    assert "no night log at" in capsys.readouterr().err


@pytest.mark.integration
def test_a_crash_mid_write_leaves_a_readable_log(tmp_path):
    """SIGKILL while a process writes rows as fast as it can: the file stays whole."""
    path = tmp_path / "night.sqlite"
    code = (
        "import sys\n"
        "from ocd.services.nightlog import NightLog\n"
        f"log = NightLog({str(path)!r}, lambda: {T})\n"
        "log.startService()\n"
        "print('ready', flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    log.write('alert', 'alert', reason='x' * (n % 5000))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # a real process writing for real: no clock to advance here
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    night, rows = load_night(path)
    assert night == "2025-02-20" and len(rows) > 10
    assert all(row["kind"] in ("ocd", "alert") for row in rows)
