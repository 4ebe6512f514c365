"""The files ``ocd run`` and ``twistd ocd`` write, refused at start when they cannot work.

``[general] night_log`` (a folder, ``/dev/null``, a text file, under
``/proc``), ``[general] json_log`` (a folder, under ``/proc``) and
``[database] sqlite_file`` (under ``/proc``, a folder, a text file) used to
end in a traceback and exit status 1; now :func:`ocd.start_files.check_start_files`
refuses them before the service tree is built: one line naming the option
and the file, exit status 2. What slips through the check (a file changed
since) fails when it is opened, still naming the option.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from ocd.config import Config, ConfigError

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
PROC = Path("/proc")


def load(tmp_path: Path, text: str = "") -> Config:
    """A site file in ``tmp_path`` (its state files there too) plus ``text``, loaded."""
    options = {("shots", "state_db"): str(tmp_path / "state.sqlite"),
               ("shots", "shot_file"): str(tmp_path / "none.txt"),
               ("general", "night_log"): str(tmp_path / "night.sqlite"),
               ("database", "sqlite_file"): str(tmp_path / "obsnum.sqlite")}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line.strip():
            option, _, value = line.partition("=")
            options[(section, option.strip())] = value.strip()
    sections: dict[str, list[str]] = {}
    for (section, option), value in options.items():
        sections.setdefault(section, []).append(f"{option} = {value}")
    cfg = tmp_path / "site.cfg"
    cfg.write_text("".join(f"[{name}]\n" + "\n".join(lines) + "\n"
                           for name, lines in sections.items()))
    return Config.load(str(cfg), required=True)


def refusal(config: Config) -> str:
    from ocd.start_files import check_start_files

    with pytest.raises(ConfigError) as caught:
        check_start_files(config)
    return str(caught.value)


def a_folder(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def a_text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, it is a shopping list\n")
    return path


def dev_null(tmp_path: Path) -> Path:
    return Path("/dev/null")


def under_proc(tmp_path: Path) -> Path:
    return PROC / "ocd-no-such"


def under_proc_folder(tmp_path: Path) -> Path:
    return PROC / "ocd-no-such" / "y.sqlite"


def under_a_file(tmp_path: Path) -> Path:
    return a_text_file(tmp_path) / "y.sqlite"


CASES = [
    ("general", "night_log", a_folder, "is a folder"),
    ("general", "night_log", dev_null, "not a regular file"),
    ("general", "night_log", a_text_file, "not an SQLite database"),
    ("general", "night_log", under_proc, "cannot be created"),
    ("general", "night_log", under_a_file, "a part of its path is a file"),
    ("general", "json_log", a_folder, "is a folder"),
    ("general", "json_log", under_proc, "cannot be opened for writing"),
    ("general", "json_log", under_proc_folder, "cannot create its folder"),
    ("database", "sqlite_file", under_proc_folder, "cannot create its folder"),
    ("database", "sqlite_file", a_folder, "is a folder"),
    ("database", "sqlite_file", a_text_file, "not an SQLite database"),
]


@pytest.mark.parametrize("section, option, make, problem", CASES,
                         ids=[f"{c[1]}-{c[2].__name__}" for c in CASES])
def test_a_file_ocd_cannot_write_is_refused_naming_the_option(tmp_path, section, option,
                                                               make, problem):
    path = make(tmp_path)
    if str(path).startswith("/proc/") and not PROC.is_dir():
        pytest.skip("no /proc here")
    message = refusal(load(tmp_path, f"[{section}]\n{option} = {path}\n"))
    assert f"[{section}] {option} = {str(path)!r}" in message
    assert str(tmp_path / "site.cfg") in message  # where it was set
    assert problem in message
    assert "\n" not in message


def test_a_relative_path_is_shown_absolute(tmp_path):
    a_text_file(tmp_path)
    message = refusal(load(tmp_path, "[general]\nnight_log = notes.txt\n"))
    assert f"[general] night_log = 'notes.txt' ({tmp_path / 'notes.txt'})" in message


def test_usable_files_pass_and_only_ocds_own_folders_are_made(tmp_path):
    from ocd.start_files import check_start_files

    real = tmp_path / "real.sqlite"
    sqlite3.connect(real).execute("CREATE TABLE t (x)").connection.close()
    config = load(tmp_path, f"[general]\nnight_log = {tmp_path / 'new' / 'night.sqlite'}\n"
                            f"json_log = {tmp_path / 'logs' / 'ocd.json'}\n"
                            f"[database]\nsqlite_file = {real}\n")
    check_start_files(config)
    # The folders OCD makes at start anyway; the night log is left to OCD to create.
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "night.sqlite").exists()
    assert (tmp_path / "logs" / "ocd.json").is_file()  # opened, as logging does at once


def test_sqlite_file_is_not_checked_with_mysql(tmp_path):
    from ocd.start_files import check_start_files

    check_start_files(load(tmp_path, f"[database]\nbackend = mysql\n"
                                     f"sqlite_file = {a_folder(tmp_path)}\n"))


# -- what slips through the check still names the option ----------------------

def test_the_night_log_opening_names_the_option(tmp_path):
    from ocd.services.nightlog import NightLog

    log = NightLog(a_folder(tmp_path), lambda: 0.0, program="test")
    with pytest.raises(ConfigError) as caught:
        log.startService()
    assert f"[general] night_log = {str(tmp_path / 'folder')!r}" in str(caught.value)
    assert log.conn is None


class _Reactor:
    pass


def test_the_obsnum_sqlite_opening_names_the_option(tmp_path):
    if not PROC.is_dir():
        pytest.skip("no /proc here")
    from ocd.services.obsnum import ObsnumPool

    pool = ObsnumPool(load(tmp_path, "[database]\nbackend = sqlite\n"
                                     "sqlite_file = /proc/ocd-no-such/y.sqlite\n"), _Reactor())
    with pytest.raises(ConfigError) as caught:
        pool._make_pool()
    message = str(caught.value)
    assert "[database] sqlite_file = '/proc/ocd-no-such/y.sqlite'" in message
    assert "cannot create its folder /proc/ocd-no-such" in message


def test_an_empty_sqlite_file_names_where_it_was_set(tmp_path):
    from ocd.services.obsnum import ObsnumPool

    with pytest.raises(ConfigError) as caught:
        ObsnumPool(load(tmp_path, "[database]\nbackend = sqlite\nsqlite_file =\n"), _Reactor())
    message = str(caught.value)
    assert f"{tmp_path / 'site.cfg'}: [database] sqlite_file = ''" in message
    assert "backend = sqlite" in message


# -- end to end: ocd run and twistd ocd ----------------------------------------

def site_file(tmp_path: Path, free_url, text: str) -> Path:
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[shots]\nstate_db = {tmp_path / 'state.sqlite'}\n"
                   f"shot_file = {tmp_path / 'none.txt'}\n"
                   f"[database]\nsqlite_file = {tmp_path / 'obsnum.sqlite'}\n"
                   f"[urls]\nevent_urls =\nocd_main_loop = {free_url()}\nocd_allow_hetdex =\n"
                   f"ocd_config =\nocd_run_shot = {free_url()}\n"
                   "[status]\nendpoint =\n" + text)
    return cfg


@pytest.mark.integration
@pytest.mark.parametrize("daemon", ["ocd run", "twistd ocd"])
def test_a_night_log_that_is_dev_null_stops_the_daemon_in_one_line(
        tmp_path, free_url, ocd_command, child_env, daemon):
    cfg = site_file(tmp_path, free_url, "[general]\nnight_log = /dev/null\n"
                                        f"json_log = {tmp_path / 'ocd.json'}\n")
    argv = (ocd_command + ["run"] if daemon == "ocd run"
            else TWISTD + ["-n", "--pidfile=", "ocd"]) + ["--config", str(cfg)]
    done = subprocess.run(argv, env=child_env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if "[general] night_log" in line]
    assert len(lines) == 1 and "'/dev/null'" in lines[0] and "not a regular file" in lines[0]
    assert lines[0].startswith(f"{daemon}: configuration error: {cfg}: ")
