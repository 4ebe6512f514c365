"""``twistd ocd``: the plugin is found, daemonises, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bus_helpers import make_config, write_config
from conftest import REPO

pytestmark = pytest.mark.integration

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def test_options_are_ocd_runs():
    from ocd.tap import Options

    options = Options()
    options.parseOptions(["-u", "tcp://127.0.0.1:7001", "--n-ocd-main-loop", "0"])
    assert ("urls", "event_urls", "tcp://127.0.0.1:7001") in options["overrides"]
    assert ("run", "n_ocd_main_loop", "0") in options["overrides"]


def test_plugin_file_imports_no_reactor(child_env):
    code = ("import sys; import twisted.plugins.ocd_plugin, ocd.tap; "
            "assert 'twisted.internet.reactor' not in sys.modules, 'reactor imported'; "
            "assert 'txzmq' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env, cwd=REPO)


@pytest.mark.slow(2.5)
def test_daemon_pidfile_sigterm_and_second_start(tmp_path, free_url, ocd_command, child_env):
    config = make_config(free_url)
    cfg = write_config(config, tmp_path / "site.cfg")
    pidfile, logfile = tmp_path / "ocd.pid", tmp_path / "ocd.log"
    start = TWISTD + ["--pidfile", str(pidfile), "--logfile", str(logfile), "ocd",
                      "--config", cfg]
    first = subprocess.run(start, env=child_env, cwd=REPO, capture_output=True, text=True,
                           timeout=20)
    assert first.returncode == 0, first.stderr + first.stdout
    pid = int(pidfile.read_text())
    try:
        # the daemon answers: arm it through the real subcommand
        allow = subprocess.run(ocd_command + ["allow_hetdex", "--config", cfg, "-n", "40",
                                              "-I", "0.3", "start"],
                               env=child_env, cwd=REPO, capture_output=True, text=True,
                               timeout=20)
        assert allow.returncode == 0, allow.stderr
        second = subprocess.run(start, env=child_env, cwd=REPO, capture_output=True,
                                text=True, timeout=20)
        assert second.returncode != 0
        assert "running" in (second.stdout + second.stderr).lower()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.exists()
    log = logfile.read_text()
    # twistd's log file narrates at [general] log_level (info): no raw events.
    assert "[ocd.night#info] night " in log and "ARMED by ocd allow_hetdex start" in log
    assert " publish ocd." not in log
    assert "Traceback" not in log
    # ... and the night log recorded the daemon's start, the arming and its stop.
    import sqlite3

    with sqlite3.connect(config.get_path("general", "night_log")) as conn:
        rows = conn.execute("SELECT kind, what, reason FROM entries WHERE kind IN "
                            "('ocd', 'arming') ORDER BY id").fetchall()
    assert [(kind, what) for kind, what, _ in rows] == [
        ("ocd", "start"), ("arming", "allowed"), ("ocd", "stop")]
    assert rows[0][2].startswith("twistd ocd (pid ")


def test_foreground_bind_error_is_reported(tmp_path, free_url, child_env):
    import zmq

    config = make_config(free_url)
    cfg = write_config(config, tmp_path / "site.cfg")
    context = zmq.Context()
    holder = context.socket(zmq.PUB)
    holder.bind(config.get_urls("urls", "ocd_main_loop")[0])
    try:
        result = subprocess.run(TWISTD + ["-n", "--pidfile=", "ocd", "--config", cfg],
                                env=child_env, cwd=REPO, capture_output=True, text=True,
                                timeout=20)
    finally:
        holder.close(linger=0)
        context.term()
    assert result.returncode != 0
    assert "address already in use" in result.stdout + result.stderr


def test_twistd_r_asyncio_runs_ocd_on_that_reactor(tmp_path, free_url, ocd_command, child_env):
    """txZMQ (imported by the bus) must not install the default reactor first."""
    config = make_config(free_url)
    cfg = write_config(config, tmp_path / "site.cfg")
    logfile = tmp_path / "ocd.log"
    child = subprocess.Popen(TWISTD + ["-r", "asyncio", "-n", "--pidfile=", "--logfile",
                                       str(logfile), "ocd", "--config", cfg],
                             env=child_env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # up to 30 s: on a loaded machine twistd's start and the first decision
        # (the night's sky) take that long; the handshake ends at the first answer
        allow = subprocess.run(ocd_command + ["allow_hetdex", "--config", cfg, "-n", "120",
                                              "-I", "0.25", "start"],
                               env=child_env, cwd=REPO, capture_output=True, text=True,
                               timeout=60)
        assert allow.returncode == 0, allow.stderr + (logfile.read_text()
                                                      if logfile.exists() else "")
    finally:
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=15)
    # twistd stops cleanly, then ends itself with the signal it got (its exit status)
    assert child.returncode in (0, -signal.SIGTERM), out + err
    log = logfile.read_text()
    assert "AsyncioSelectorReactor" in log and "Server Shut Down" in log
    assert "ARMED by ocd allow_hetdex start" in log  # the narration, at info
    assert "Traceback" not in log


def test_the_bus_uses_the_reactor_twistd_chose(child_env):
    code = ("import twisted.plugins.ocd_plugin, ocd.tap, sys; "
            "assert 'txzmq' not in sys.modules; "
            "from twisted.internet import asyncioreactor; asyncioreactor.install(); "
            "from twisted.internet import reactor; "
            "from ocd.protocols.zmq import Bus; "
            "assert Bus().reactor is reactor, Bus().reactor; "
            "assert type(reactor).__name__ == 'AsyncioSelectorReactor'")
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env, cwd=REPO)
