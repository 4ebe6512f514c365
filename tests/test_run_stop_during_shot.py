"""Signals to ``ocd run`` during a shot (events.md 3.6).

SIGTERM, SIGHUP or a second Ctrl+C: the children end, FINISH goes out with
the error, exit 0, no traceback (also when more signals arrive while the
children are being ended). A first Ctrl+C: the shot runs to its end first.

A real ``ocd run`` child, a real TCS publisher (pyzmq) saying the sky is
good, ``ocd allow_hetdex start`` as a child, and a dither stand-in told to
hang: the shot starts, then OCD is stopped in the middle of it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import zmq

from bus_helpers import NIGHT, one_shot_standin_config, tcs_frames, write_whole_config
from conftest import REPO, reap

pytestmark = pytest.mark.integration

def _signals_during_a_shot(tmp_path, free_url, ocd_command, child_env, signals, hang=True,
                           extra_env=None):
    """Start ``ocd run`` on a good sky, let it start a shot, send ``signals``.

    Returns the shot's FINISH (or None), ``ocd run``'s exit status and stderr.
    """
    config, shots = one_shot_standin_config(free_url, tmp_path, NIGHT, run_shot__kill_grace="1",
                                            run_shot__exptimes="60 60 60")
    cfg = write_whole_config(config, tmp_path / "site.cfg")
    # 60 s exposures take 1 s each; with hang, the first one never ends.
    env = dict(child_env, OCD_STANDIN_LOG=str(tmp_path / "standins.jsonl"),
               OCD_STANDIN_SPEEDUP="60")
    if hang:
        env["OCD_DITHER_HANG_ON"] = "1"
    env.update(extra_env or {})

    ctx = zmq.Context.instance()
    tcs = ctx.socket(zmq.PUB)
    tcs.setsockopt(zmq.LINGER, 0)
    tcs.bind(config.get_urls("urls", "event_urls")[0])
    shots_sub = ctx.socket(zmq.SUB)
    shots_sub.setsockopt(zmq.LINGER, 0)
    shots_sub.setsockopt(zmq.SUBSCRIBE, b"ocd.run_shot.run")
    monitor = shots_sub.get_monitor_socket()  # what the SUB saw, said on failure
    for url in config.get_urls("urls", "ocd_run_shot"):
        shots_sub.connect(url)

    child = subprocess.Popen(ocd_command + ["run", "--config", cfg], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        armed = subprocess.run(ocd_command + ["allow_hetdex", "--config", cfg, "start",
                                              "-n", "240", "-I", "0.5"],
                               env=env, cwd=REPO, capture_output=True, text=True, timeout=150)
        assert armed.returncode == 0, armed.stderr
        runs: list[dict] = []
        # Every wait below ends on what it waits for; the deadlines (generous:
        # each step starts processes, seconds under load) only guard a hang.
        deadline = time.monotonic() + 90
        started = False
        log = tmp_path / "standins.jsonl"
        ran_at = None  # when the shot's first program was seen running: START was sent
        while time.monotonic() < deadline and not started:
            if ran_at is None and log.exists() and log.stat().st_size:
                ran_at = time.monotonic()
            if ran_at is not None and time.monotonic() - ran_at > 5:
                break  # fail now, not after the 90 s meant for a hang
            t = NIGHT
            tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", t))
            tcs.send_multipart(tcs_frames("legacy.weather.status", t, humidity=20, wind_speed=2,
                                          ambtemp=4, dewpoint=-9))
            tcs.send_multipart(tcs_frames("legacy.shutter.status", t, state="open"))
            tcs.send_multipart(tcs_frames("pas.Guider1.metrology_data", t, fwhm=1.1,
                                          transparency=0.97, valid=True))
            if shots_sub.poll(200):
                runs.append(json.loads(shots_sub.recv_multipart()[1]))
                started = runs[-1]["exec_status"] == 0
        if not started:
            what = ("OCD ran the shot's programs, but its START never reached the test's SUB"
                    if ran_at is not None else "OCD did not start the shot")
            _fail_with_log(child, f"{what}; run-shot events received: {runs}; "
                                  f"the SUB's connections: {_monitor_events(monitor)}")
        # wait until the first exposure is running
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if log.exists() and "dither" in log.read_text():
                break
            tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", NIGHT))
            time.sleep(0.1)
        if not (log.exists() and "dither" in log.read_text()):
            _fail_with_log(child, "the first exposure never started")
        for sig in signals:
            child.send_signal(sig)
            time.sleep(0.3)
        finish = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and finish is None:
            if shots_sub.poll(200):
                event = json.loads(shots_sub.recv_multipart()[1])
                if event["exec_status"] == 1:
                    finish = event
        code = child.wait(timeout=90)
        stderr = child.stderr.read()
        if finish is not None:
            assert finish["shotid"] == shots[0].shotid
        return finish, code, stderr
    finally:
        reap(child)
        tcs.close()
        shots_sub.disable_monitor()
        monitor.close()
        shots_sub.close()


def _monitor_events(monitor: zmq.Socket) -> list[tuple[str, str]]:
    from zmq.utils.monitor import recv_monitor_message

    seen = []
    while monitor.poll(0):
        event = recv_monitor_message(monitor)
        seen.append((zmq.Event(event["event"]).name, event["endpoint"].decode()))
    return seen


def _fail_with_log(child: subprocess.Popen, why: str) -> None:
    """Fail with what ``ocd run`` said: it is stopped first (SIGTERM, then KILL)."""
    child.terminate()
    try:
        _out, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        _out, err = child.communicate()
    if len(err) > 9000:
        err = f"{err[:3000]}\n[...]\n{err[-6000:]}"
    pytest.fail(f"{why}\nocd run's stderr:\n{err}")


def _no_traceback(stderr: str) -> None:
    # the FINISH payload carries the shot's traceback (and is logged);
    # OCD itself must not die with one
    assert not [line for line in stderr.splitlines() if line.startswith("Traceback")], stderr
    assert "Unhandled" not in stderr, stderr


@pytest.mark.slow(3)
@pytest.mark.parametrize("signals, extra_env", [
    # SIGTERM (what systemd and kill send), and more signals while the children
    # are being ended (the dither ignores TERM: it takes kill_grace, 1 s, and a KILL)
    ([signal.SIGTERM, signal.SIGINT, signal.SIGTERM], {"OCD_DITHER_HANG_IGNORE_TERM": "1"}),
    ([signal.SIGHUP], {}),  # a closed terminal: like SIGTERM, never a silent death
    ([signal.SIGINT, signal.SIGINT], {}),  # Ctrl+C twice: abort now
], ids=["SIGTERM-then-more", "SIGHUP", "SIGINT-twice"])
def test_stop_signal_during_a_shot_emits_finish_with_error_and_exits_0(
        tmp_path, free_url, ocd_command, child_env, signals, extra_env):
    finish, code, stderr = _signals_during_a_shot(tmp_path, free_url, ocd_command, child_env,
                                                  signals, extra_env=extra_env)
    assert finish is not None, "no FINISH after the signal\n" + stderr
    assert finish["error"] is True
    assert code == 0, stderr
    _no_traceback(stderr)
    if len(signals) > 2:
        assert "while OCD is already stopping: ignored" in stderr


@pytest.mark.slow(6)
def test_first_ctrl_c_lets_the_shot_finish_then_stops(tmp_path, free_url, ocd_command,
                                                      child_env):
    finish, code, stderr = _signals_during_a_shot(tmp_path, free_url, ocd_command, child_env,
                                                  [signal.SIGINT], hang=False)
    assert finish is not None, "no FINISH\n" + stderr
    assert finish["error"] is False, finish  # the shot ran to its end
    assert code == 0, stderr
    assert "stops after shot" in stderr and "Ctrl+C again" in stderr
    _no_traceback(stderr)
