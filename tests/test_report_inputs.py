"""What ``ocd night_report`` and ``ocd plan`` read and write, when a person got it wrong.

A hostile tester's findings: ``-o`` replaced the night log or the shot list
with a PNG, made missing folders, took an empty name; a damaged night log
or ``[shots] state_db`` ended in a traceback; an empty ``-l`` quietly read
another log; the night of 9999-12-31 was a traceback; reading a log left
``-wal``/``-shm`` files beside it. Each is now one line on stderr naming the
file (and the option, the row or the shot), exit 2, the files untouched.
All in-process through :func:`ocd.cli.main`, as tests/test_wrong_arguments.py.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ocd.cli import main
from ocd.core.events import make_event
from ocd.services.nightlog import NightLog

T = 1740106800.0  # 2025-02-21 03:00:00 UTC: the night of 2025-02-20 at the HET
DATE = "2025-02-20"
PNG = b"\x89PNG\r\n\x1a\n"
SHOTS = (  # two lines of ocd.sim.shotlist's sample list
    "# shotid ra dec track priority n_obs forced_az QIDX QPROG QOBJECT QIFU QRA QDEC QEQUINOX "
    "QPMRA QPMDEC QEPOCH\n"
    "DEX00001 3.851795 48.595513 2 2 1 -1 89 HET26-3-400 HS0000_E 074 03:51:06.46 +48:35:43.85 "
    "2000 0.0 0.0 2000\n"
    "DEX00002 10.428593 55.282961 0 2 1 -1 90 HET26-3-400 HS0001_E 017 10:25:42.93 +55:16:58.66 "
    "2000 0.0 0.0 2000\n"
)


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    """Each test in its own folder, with its own cache: nothing lands in the work tree."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCD_CACHE_DIR", str(tmp_path / "cache"))


def write_night_log(path: Path) -> Path:
    """A small good night log, by the writer ``ocd run`` uses: a decision and a done shot."""
    times = iter([T, T + 600])  # OCD's clock at its start and at its stop
    log = NightLog(path, lambda: next(times), program="test")
    log.startService()
    log(make_event("ocd.decision.made", dict(verdict="run", shotid="DEX1", track=0,
                                              blockers=[], details={}, now=T), T, T))
    for status, at in ((0, T + 1), (1, T + 500)):
        log(make_event("ocd.run_shot.run", dict(shotid="DEX1", obs_number=5,
                                                exec_status=status, error=False), at, at))
    log.stopService()
    return path


@pytest.fixture
def night_log(tmp_path) -> Path:
    return write_night_log(tmp_path / "night.sqlite")


@pytest.fixture
def plan_config(tmp_path) -> Path:
    """A configuration with a two-shot list and a state database that does not exist yet."""
    (tmp_path / "shots.txt").write_text(SHOTS, encoding="utf-8")
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[shots]\nshot_file = {tmp_path / 'shots.txt'}\n"
                   f"state_db = {tmp_path / 'state.sqlite'}\n", encoding="utf-8")
    return cfg


def run(capsys, *argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``ocd argv``; an escaping exception fails the test."""
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_line(err: str, *fragments: str) -> None:
    """The house's refusal: one line, no traceback, with every fragment in it."""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def side_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(path.name + "-*"))


# -- -o never replaces what is not a picture, never makes folders ----------------------


def test_night_report_refuses_to_draw_over_its_night_log(night_log, capsys):
    before = night_log.read_bytes()
    code, err = run(capsys, "night_report", "-l", str(night_log), "-o", str(night_log))
    assert code == 2
    one_line(err, "-o/--output", str(night_log), "is the night log")
    assert night_log.read_bytes() == before


def test_o_replaces_a_png_but_no_other_file(night_log, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("the crew's notes\n")
    code, err = run(capsys, "night_report", "-l", str(night_log), "-o", str(notes))
    assert code == 2
    one_line(err, str(notes), "not a PNG")
    assert notes.read_text() == "the crew's notes\n"

    old = tmp_path / "old.png"
    old.write_bytes(PNG + b"an older picture")
    assert main(["night_report", "-l", str(night_log), "-o", str(old)]) == 0
    data = old.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000


@pytest.mark.parametrize("which", ["shots.txt", "site.cfg", "state.sqlite"])
def test_plan_refuses_to_draw_over_what_it_reads(plan_config, tmp_path, capsys, which):
    """The shot list, the configuration and the state database (even before it exists)."""
    target = tmp_path / which
    before = target.read_bytes() if target.exists() else None
    code, err = run(capsys, "plan", "--config", str(plan_config), DATE, "-o", str(target))
    assert code == 2
    one_line(err, "ocd plan: -o/--output", str(target), "which this command reads")
    assert (target.read_bytes() if target.exists() else None) == before


@pytest.mark.parametrize("command", ["night_report", "plan"])
def test_o_in_a_missing_folder_is_refused_and_no_folder_is_made(
        night_log, plan_config, tmp_path, capsys, command):
    picture = tmp_path / "typo" / "dir" / "x.png"
    argv = (["night_report", "-l", str(night_log)] if command == "night_report"
            else ["plan", "--config", str(plan_config), DATE])
    code, err = run(capsys, *argv, "-o", str(picture))
    assert code == 2
    one_line(err, str(picture.parent), "does not exist")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("command", ["night_report", "plan"])
def test_an_empty_o_is_refused(night_log, plan_config, capsys, command):
    argv = (["night_report", "-l", str(night_log)] if command == "night_report"
            else ["plan", "--config", str(plan_config), DATE])
    code, err = run(capsys, *argv, "-o", "")
    assert code == 2
    one_line(err, f"ocd {command}: -o/--output is empty")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_picture_that_cannot_be_written_names_the_file(night_log, capsys):
    code, err = run(capsys, "night_report", "-l", str(night_log), "-o", "/dev/full")
    assert code == 2
    one_line(err, "cannot use /dev/full: No space left on device")


# -- the night log read for a report -----------------------------------------------------


def _damaged_logs(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Night logs a report cannot use, and a fragment of what must be said of each."""
    data = good.read_bytes()

    def file(name: str, content: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    def sqlite(name: str, *statements: str) -> Path:
        path = tmp_path / name
        conn = sqlite3.connect(path)
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return path

    def edited(name: str, statement: str) -> Path:
        file(name, data)
        return sqlite(name, statement)

    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    return {
        "folder": (folder, "is a folder"),
        "text": (file("text.sqlite", b"not a night log\n"), "not an SQLite database"),
        "random": (file("random.sqlite", bytes(range(256)) * 16), "not an SQLite database"),
        "empty": (file("empty.sqlite", b""), "is empty"),
        "no table": (sqlite("other.sqlite", "CREATE TABLE x (a)"), "no table 'entries'"),
        "truncated": (file("truncated.sqlite", data[:len(data) // 2]), "corrupt or truncated"),
        "columns": (sqlite("columns.sqlite", "CREATE TABLE entries (id, night, kind, what)"),
                    "has no column time"),
        "text time": (edited("abc.sqlite", "UPDATE entries SET time = 'abc' WHERE id = 2"),
                      "row id 2: time 'abc'"),
        "huge time": (edited("huge.sqlite", "UPDATE entries SET time = 1e308 WHERE id = 2"),
                      "row id 2: time 1e+308"),
        "details": (edited("details.sqlite",
                           "UPDATE entries SET details = '{\"shadow\": tru' WHERE id = 2"),
                    "row id 2: details"),
    }


def test_a_damaged_night_log_is_one_line_naming_it(night_log, tmp_path, capsys):
    failures = []
    for kind, (path, fragment) in _damaged_logs(tmp_path, night_log).items():
        before = None if path.is_dir() else path.read_bytes()
        code, err = run(capsys, "night_report", "-l", str(path))
        if code != 2 or err.count("\n") != 1 or f"night log {path}" not in err \
                or fragment not in err:
            failures.append(f"{kind}: exit {code}, said {err.strip()!r}")
        if before is not None and path.read_bytes() != before:
            failures.append(f"{kind}: the file was changed")
        if side_files(path):
            failures.append(f"{kind}: left {side_files(path)}")
    assert not failures, "\n".join(failures)


def test_an_empty_l_is_refused_not_replaced_by_the_configured_log(night_log, tmp_path, capsys):
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[general]\nnight_log = {night_log}\n", encoding="utf-8")
    code, err = run(capsys, "night_report", "--config", str(cfg), "-l", "")
    assert code == 2
    one_line(err, "-l/--night-log is empty")
    assert str(night_log) not in err


def test_reading_a_log_leaves_no_wal_or_shm_beside_it_but_spares_a_writers(tmp_path, capsys):
    """A report reads the log whole and leaves no ``-wal``/``-shm`` files beside it; while
    ``ocd run`` writes it, it sees the writer's last row and removes nothing of the writer's."""
    path = write_night_log(tmp_path / "night.sqlite")
    assert side_files(path) == []
    assert main(["night_report", "-l", str(path)]) == 0
    assert "shots: 1 done" in capsys.readouterr().out
    assert side_files(path) == []

    writer = NightLog(path, lambda: T + 700, program="test")
    writer.startService()
    try:
        assert main(["night_report", "-l", str(path)]) == 0
        assert "span: 2025-02-21T03:00:00Z to 2025-02-21T03:11:40Z" in capsys.readouterr().out
        assert side_files(path) == ["night.sqlite-shm", "night.sqlite-wal"]
        assert writer.write("alert", "alert", reason="still writing") is not None
    finally:
        writer.stopService()


# -- ocd plan: its date and its state database ----------------------------------------------


def test_plan_of_a_night_that_ends_after_9999_is_refused(plan_config, capsys):
    code, err = run(capsys, "plan", "--config", str(plan_config), "9999-12-31")
    assert code == 2
    one_line(err, "ocd plan:", "9999-12-31")


def _damage_state_db(path: Path, kind: str) -> None:
    """A state database that ``ocd plan`` cannot use, as the tester made them."""
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("remaining: 3\n")
    elif kind == "random":
        path.write_bytes(bytes(range(256)) * 16)
    else:
        from ocd.services.shot_store import ShotStore

        store = ShotStore(path)
        store.close()
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[:100])
            return
        path.unlink()
        conn = sqlite3.connect(path)  # a hand-made table: no NOT NULL to stop the damage
        if kind == "wrong columns":  # read as "nothing observed yet", it planned done shots
            conn.execute("CREATE TABLE shots (shotid TEXT, left INTEGER)")
            conn.commit()
            conn.close()
            return
        conn.execute("CREATE TABLE shots (shotid TEXT, file_n_obs INTEGER, remaining INTEGER)")
        conn.execute("INSERT INTO shots VALUES ('DEX00002', 1, ?)",
                     (None if kind == "NULL remaining" else "abc",))
        conn.commit()
        conn.close()


@pytest.mark.parametrize("kind, fragment", [
    ("folder", "is a folder"),
    ("text", "not an SQLite database"),
    ("random", "not an SQLite database"),
    ("truncated", "corrupt or truncated"),
    ("wrong columns", "cannot read the remaining counts: no such column"),
    ("NULL remaining", "shot DEX00002: remaining count None"),
    ("text remaining", "shot DEX00002: remaining count 'abc'"),
])
def test_a_damaged_state_db_is_one_line_naming_it(plan_config, tmp_path, capsys, kind,
                                                  fragment):
    state_db = tmp_path / "state.sqlite"
    _damage_state_db(state_db, kind)
    before = None if state_db.is_dir() else state_db.read_bytes()
    code, err = run(capsys, "plan", "--config", str(plan_config), DATE)
    assert code == 2
    one_line(err, f"state database {state_db} ([shots] state_db)", fragment)
    assert (None if state_db.is_dir() else state_db.read_bytes()) == before
