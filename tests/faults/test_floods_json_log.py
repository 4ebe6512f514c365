"""``[general] json_log`` on a full disk (issue 12, section 4).

One clear error, one alert, no traceback per event, and the log resumes when
space returns. The disk is a real 64 KiB tmpfs when this process may mount
one (root, as on the build machine); otherwise a writer that fails with
ENOSPC at the real write (``os.write``) like a full disk stands in.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from twisted.logger import LogLevel, LogPublisher, Logger, eventsFromJSONLogFile

from ocd.json_log import JsonLogFile, add_trouble_listener, remove_trouble_listener
from conftest import stopped


class FullDisk:
    """A disk that a test fills and empties: the write fails while it is full."""

    def __init__(self, directory: Path, use_tmpfs: bool) -> None:
        self.directory = directory
        self.tmpfs = use_tmpfs
        self.full = False
        self._filler = directory / "filler"

    def fill(self) -> None:
        self.full = True
        if self.tmpfs:
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while os.write(fd, b"\0" * 512):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)

    def empty(self) -> None:
        self.full = False
        if self.tmpfs:
            self._filler.unlink()

    def write(self, fd: int, data: bytes) -> int:
        if self.full and not self.tmpfs:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


def _mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture(params=["tmpfs", "fake"])
def disk(request, tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    mounted = False
    if request.param == "tmpfs":
        mounted = _mount_tmpfs(where)
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root): the fake full disk covers it")
    yield FullDisk(where, mounted)
    if mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_gives_one_error_one_alert_and_logging_resumes(disk):
    path = disk.directory / "ocd.json"
    publisher = LogPublisher()
    seen: list[dict] = []
    alerts: list[str] = []
    observer = JsonLogFile(path, write=disk.write, log=Logger(observer=publisher))
    publisher.addObserver(observer)
    publisher.addObserver(seen.append)
    add_trouble_listener(alerts.append)
    log = Logger(namespace="ocd.test", observer=publisher)
    try:
        for i in range(20):
            log.info("before {i}", i=i)
        disk.fill()
        for i in range(300):
            log.info("while full {i}", i=i)
        assert observer.failing is not None
        disk.empty()
        for i in range(5):
            log.info("after {i}", i=i)
    finally:
        remove_trouble_listener(alerts.append)
        observer.close()

    errors = [e for e in seen if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert len(errors) == 1
    assert errors[0]["ocd_event"] == "json_log_failed"
    assert str(path) in errors[0]["message"] and "No space left" in errors[0]["message"]
    assert alerts == [errors[0]["message"]]
    resumed = [e for e in seen if e.get("ocd_event") == "json_log_resumed"]
    assert len(resumed) == 1
    lost = resumed[0]["lost"]
    # A tmpfs fills by pages: the last page of the log may still take a few records.
    assert 250 <= lost <= 300 if disk.tmpfs else lost == 300
    assert observer.failing is None

    with open(path) as f:
        back = [e.get("i") for e in eventsFromJSONLogFile(f) if e.get("log_namespace") == "ocd.test"]
    assert back[:20] == list(range(20))
    assert back[-5:] == list(range(5))
    assert len(back) == 20 + (300 - lost) + 5  # a record cut short is skipped, and lost
    with open(path) as f:
        assert any(e.get("ocd_event") == "json_log_resumed" for e in eventsFromJSONLogFile(f))


def test_the_main_loop_alerts_once_when_its_json_log_fails(tmp_path):
    from twisted.internet.task import Clock

    from ocd.config import Config
    from ocd.services.main_loop import MainLoop

    clock = Clock()
    loop = MainLoop(Config.load(None, []), clock)
    alerts: list[str] = []
    loop.alert = alerts.append
    loop.startService()
    disk = FullDisk(tmp_path, use_tmpfs=False)
    publisher = LogPublisher()
    observer = JsonLogFile(tmp_path / "ocd.json", write=disk.write, log=Logger(observer=publisher))
    publisher.addObserver(observer)
    log = Logger(observer=publisher)
    try:
        disk.fill()
        for i in range(50):
            log.info("x {i}", i=i)
        clock.advance(0)
    finally:
        stopped(loop)
        observer.close()
    assert len(alerts) == 1 and "cannot be written" in alerts[0]
    assert loop.counters.get("json_log.failed") == 1
