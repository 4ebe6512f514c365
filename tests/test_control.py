"""``ocd run``, ``ocd allow_hetdex`` and ``ocd config send`` as real processes."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import zmq

from bus_helpers import make_config, write_config
from conftest import REPO, reap

pytestmark = pytest.mark.integration


def run(argv, env, timeout=120):  # a hang guard: a child starts in seconds under load
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def site(tmp_path, free_url):
    config = make_config(free_url)
    return config, write_config(config, tmp_path / "site.cfg")


@pytest.fixture
def ocd_run(site, ocd_command, child_env):
    """``ocd run`` in a child process; yields the Popen."""
    _, cfg = site
    child = subprocess.Popen(ocd_command + ["run", "--config", cfg], env=child_env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield child
    reap(child)


@pytest.mark.slow(3)
def test_allow_round_trip_against_a_child_ocd_run(site, ocd_run, ocd_command, child_env):
    """Then Ctrl+C on the idle ``ocd run`` (SIGTERM when idle: ``test_start``;
    each stop signal during a shot: ``test_run_stop_during_shot``)."""
    _, cfg = site
    # Until the child ocd run answers (it starts in seconds under load): the
    # first answer ends the enquiries, 480 x 0.25 s only bounds a hang.
    start = run(ocd_command + ["allow_hetdex", "--config", cfg, "-n", "480", "-I", "0.25",
                               "start"], child_env)
    assert start.returncode == 0, start.stderr
    assert "HETDEX shots allowed" in start.stderr
    stop = run(ocd_command + ["allow_hetdex", "--config", cfg, "stop"], child_env)
    assert stop.returncode == 0, stop.stderr
    sent = run(ocd_command + ["config", "send", "--config", cfg, "decision", "max_wind", "x"],
               child_env)
    assert sent.returncode == 1
    assert "refused" in sent.stderr and "max_wind" in sent.stderr
    ocd_run.send_signal(signal.SIGINT)
    assert ocd_run.wait(timeout=60) == 0
    err = ocd_run.stderr.read()
    assert "Traceback" not in err
    # The console narrates the arming and the disarming, with who asked.
    assert "ARMED by ocd allow_hetdex start: asked by " in err
    assert "DISARMED by ocd allow_hetdex stop: asked by " in err


def test_no_main_loop_exits_3_within_the_timeout(site, ocd_command, child_env):
    _, cfg = site
    started = time.monotonic()
    result = run(ocd_command + ["config", "send", "--config", cfg, "-n", "2", "-I", "0.5",
                                "decision", "max_wind", "12"], child_env)
    assert result.returncode == 3
    assert "no answer from the OCD main loop" in result.stderr
    assert time.monotonic() - started < 8  # 1 s of handshake plus interpreter start-up


def test_both_telescope_sources_abort_run_but_only_warn_elsewhere(tmp_path, site, ocd_command,
                                                                  child_env):
    _, cfg = site
    both = tmp_path / "both.cfg"
    both.write_text(open(cfg).read().replace("ocd_db_replay = ",
                                             "ocd_db_replay = tcp://127.0.0.1:9"))
    result = run(ocd_command + ["run", "--config", str(both)], child_env)
    assert result.returncode == 2
    assert "both [urls] event_urls" in result.stderr
    result = run(ocd_command + ["allow_hetdex", "--config", str(both), "-n", "1", "-I", "0.2",
                                "stop"], child_env)
    assert result.returncode == 3
    assert "WARNING" in result.stderr


def test_unbindable_url_is_a_clear_error(site, ocd_command, child_env):
    config, cfg = site
    context = zmq.Context()
    holder = context.socket(zmq.PUB)
    holder.bind(config.get_urls("urls", "ocd_main_loop")[0])
    try:
        result = run(ocd_command + ["run", "--config", cfg], child_env)
    finally:
        holder.close(linger=0)
        context.term()
    assert result.returncode == 2
    assert "cannot bind" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
