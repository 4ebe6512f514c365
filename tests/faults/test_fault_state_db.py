"""Fault: a state database that cannot be used at start (issue 12, section 5).

Garbage, truncated, a folder or read-only: ``ocd run`` used to exit 1 with
a raw ``sqlite3`` traceback (or start and fail the first count of the
night). Now it exits 2 and names the file and the problem. Real ``ocd run``
processes; the read-only case is a tmpfs remounted read-only (root), else a
file without write permission (not root).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from faults_helpers import REPO, mount_tmpfs
from ocd.core.shots import parse_shot_text
from ocd.services.shot_store import ShotStore, StateDbError

pytestmark = pytest.mark.integration

LINE = ("DEX{:05d} 12.401733 56.1464 2 1 2 -1 89 HET18-2-100 HS0015_E 000 10:55:31.00 "
        "+51:07:40.44 2000 0.0 0.0 2000\n")


def real_store(path) -> None:
    store = ShotStore(path)
    store.sync(parse_shot_text("".join(LINE.format(i) for i in range(3000))))
    store.close()


def run_ocd(tmp_path, state_db, ocd_command, child_env) -> subprocess.CompletedProcess:
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[shots]\nstate_db = {state_db}\nshot_file = {tmp_path / 'none.txt'}\n"
                   f"[database]\nsqlite_file = {tmp_path / 'obsnum.sqlite'}\n"
                   "[urls]\nevent_urls =\nocd_main_loop = tcp://127.0.0.1:0\n"
                   "ocd_allow_hetdex =\nocd_config =\nocd_run_shot = tcp://127.0.0.1:0\n")
    return subprocess.run(ocd_command + ["run", "--config", str(cfg)], env=child_env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def read_only(tmp_path):
    """A state database on a read-only file system (or in a read-only file)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = mount_tmpfs(folder, "1m")
    path = folder / "state.sqlite"
    real_store(path)
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
    yield path
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    else:
        os.chmod(folder, 0o755)


def garbage(tmp_path):
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    return path, "not an SQLite database"


def truncated(tmp_path):
    path = tmp_path / "state.sqlite"
    real_store(path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    return path, "corrupt or truncated"


def folder(tmp_path):
    path = tmp_path / "state.sqlite"
    path.mkdir()
    return path, "is a folder, not a file"


@pytest.mark.parametrize("make", [garbage, truncated, folder], ids=lambda f: f.__name__)
def test_a_bad_state_db_stops_ocd_run_with_exit_2(tmp_path, ocd_command, child_env, make):
    path, problem = make(tmp_path)
    with pytest.raises(StateDbError, match=problem):
        ShotStore(path)
    run = run_ocd(tmp_path, path, ocd_command, child_env)
    assert run.returncode == 2, run.stderr
    # The console folds lines over 200 characters; a long tmp path (pytest-xdist
    # adds a folder per worker) folds the message, so compare with spaces joined.
    assert f"state database {path}: {problem}" in " ".join(run.stderr.split()), run.stderr
    assert "Traceback" not in run.stderr


def test_a_read_only_state_db_stops_ocd_run_with_exit_2(tmp_path, ocd_command, child_env,
                                                        read_only):
    if os.geteuid() == 0 and not os.path.ismount(read_only.parent):
        pytest.skip("root ignores file permissions and no tmpfs could be mounted")
    run = run_ocd(tmp_path, read_only, ocd_command, child_env)
    assert run.returncode == 2, run.stderr
    said = " ".join(run.stderr.split())  # lines over 200 characters are folded (see above)
    assert f"state database {read_only}: read-only:" in said, run.stderr
    assert "Traceback" not in run.stderr
