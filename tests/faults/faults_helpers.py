"""Helpers of the fault scenarios: a tiny file system that fills up, events to hand in.

``tiny_fs`` mounts a tmpfs of a few pages when the machine allows it (root
and a kernel that lets us mount: this machine), so SQLite meets a real
ENOSPC; elsewhere it says so and the test falls back to a connection that
raises SQLite's own ``database or disk is full`` (see ``DiskFull``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from bus_helpers import event_on, feed_good_sky, tcs_event



class TinyFs:
    """A folder on its own small file system (``real``) or a plain folder."""

    def __init__(self, path: Path, real: bool):
        self.path = path
        self.real = real

    def fill(self) -> int:
        """Fill the file system to the last byte; returns the bytes written."""
        written = 0
        handle = open(self.path / "filler", "wb", buffering=0)
        try:
            while True:
                handle.write(b"\0" * 1024)
                written += 1024
        except OSError:
            pass
        finally:
            try:
                handle.close()
            except OSError:
                pass
        return written


def mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs",
                          str(path)], capture_output=True, text=True)
    return run.returncode == 0


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs under ``tmp_path`` (or a plain folder: ``real`` False)."""
    path = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    real = mount_tmpfs(path, "256k")
    if not real:
        print("tiny_fs: cannot mount a tmpfs here; the test fakes a full disk at the "
              "sqlite3 layer instead")
    yield TinyFs(path, real)
    if real:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


class DiskFull:
    """Stands in for ``sqlite3.Connection`` once the disk is full (fallback only).

    Reads go to the real connection; every write raises the very error
    SQLite raises on ENOSPC.
    """

    WRITES = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE")

    def __init__(self, real: sqlite3.Connection):
        self._real = real

    def execute(self, sql: str, *args):
        if sql.lstrip().upper().startswith(self.WRITES):
            raise sqlite3.OperationalError("database or disk is full")
        return self._real.execute(sql, *args)

    def executemany(self, sql: str, *args):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self._real, name)


def make_disk_full(fs: TinyFs, store) -> str:
    """Fill ``fs`` (or fake it for ``store``); returns how, for the test's report."""
    if fs.real:
        fs.fill()
        return "tmpfs filled"
    store._db = DiskFull(store._db)
    return "sqlite3 connection that raises 'database or disk is full'"


REPO = Path(__file__).resolve().parent.parent.parent


def control(kind, topic: str, data_time: float = 0.0, **fields):
    return event_on(kind, topic, data_time, **fields)


tcs = tcs_event


def arm(loop) -> None:
    """``ocd allow_hetdex start`` as the main loop receives it."""
    from ocd.core.events import UrlKind

    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=True, id=uuid.uuid4().hex))


good_sky = feed_good_sky


def run_shot_event(exec_status: int, topic: str = "ocd.run_shot.run", **extra):
    """A shot event on an ``ocd_run_shot`` URL (``ocd run_shot -e`` or a forger)."""
    from ocd.core.events import UrlKind

    fields = dict(shotid="HAND01", obs_number=77, ra=1.0, dec=20.0, azimuth=40.0, track=0,
                  exptimes=[10, 10, 10], exec_status=exec_status)
    fields.update(extra)
    return control(UrlKind.RUN_SHOT, topic, **fields)
