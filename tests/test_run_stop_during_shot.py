"""SIGTERM to ``ocd run`` during a shot: the children end, FINISH goes out, exit 0.

A real ``ocd run`` child, a real TCS publisher (pyzmq) saying the sky is
good, ``ocd allow_hetdex start`` as a child, and a dither stand-in told to
hang: the shot starts, then OCD is stopped in the middle of it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import zmq

from bus_helpers import make_config, tcs_frames
from conftest import REPO
from ocd.sim.shotlist import make_sample_shots, shot_list_text
from ocd.sim.shuffle_files import write_shuffle_files

pytestmark = pytest.mark.integration

NIGHT = 1740031200.0  # 2025-02-20 06:00 UTC, dark at the HET


def write_all(config, path) -> str:
    lines = []
    for section, options in config.as_dict().items():
        lines.append(f"[{section}]")
        lines += [f"{option} = {value.replace(chr(10), ' ')}" for option, value in options.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_sigterm_during_a_shot_emits_finish_with_error_and_exits_0(
        tmp_path, free_url, ocd_command, child_env):
    shots = make_sample_shots(NIGHT - 300, NIGHT + 300, 1, seed=5)
    (tmp_path / "shots.txt").write_text(shot_list_text(shots))
    write_shuffle_files(shots, tmp_path)
    python = sys.executable
    config = make_config(
        free_url,
        dates__mock_time=str(NIGHT),
        shots__shot_file=str(tmp_path / "shots.txt"),
        paths__shuffle_shot=str(tmp_path),
        run_shot__syscmd_command=f"{python} -m ocd.sim.syscmd {{switch}} {{command}}",
        run_shot__dither_command=f"{python} -m ocd.sim.dither --exposure {{exposure}} "
                                 "--exptime {seconds} --obsnum {obs_number} --object {shotid}",
        run_shot__kill_grace="1",
        decision__decide_interval="0.2",
    )
    cfg = write_all(config, tmp_path / "site.cfg")
    env = dict(child_env, OCD_STANDIN_LOG=str(tmp_path / "standins.jsonl"),
               OCD_STANDIN_SPEEDUP="1000", OCD_DITHER_HANG_ON="1")

    ctx = zmq.Context.instance()
    tcs = ctx.socket(zmq.PUB)
    tcs.setsockopt(zmq.LINGER, 0)
    tcs.bind(config.get_urls("urls", "event_urls")[0])
    shots_sub = ctx.socket(zmq.SUB)
    shots_sub.setsockopt(zmq.LINGER, 0)
    shots_sub.setsockopt(zmq.SUBSCRIBE, b"ocd.run_shot.run")
    for url in config.get_urls("urls", "ocd_run_shot"):
        shots_sub.connect(url)

    child = subprocess.Popen(ocd_command + ["run", "--config", cfg], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        armed = subprocess.run(ocd_command + ["allow_hetdex", "--config", cfg, "start",
                                              "-n", "20", "-I", "0.5"],
                               env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert armed.returncode == 0, armed.stderr
        runs: list[dict] = []
        deadline = time.monotonic() + 30
        started = False
        while time.monotonic() < deadline and not started:
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
        assert started, "OCD did not start the shot"
        # wait until the hanging exposure is running
        log = tmp_path / "standins.jsonl"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if log.exists() and "dither" in log.read_text():
                break
            tcs.send_multipart(tcs_frames("tcs.receiver.heartbeat", NIGHT))
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        finish = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and finish is None:
            if shots_sub.poll(200):
                event = json.loads(shots_sub.recv_multipart()[1])
                if event["exec_status"] == 1:
                    finish = event
        assert finish is not None, "no FINISH after SIGTERM"
        assert finish["error"] is True
        assert finish["shotid"] == shots[0].shotid
        assert child.wait(timeout=20) == 0
        stderr = child.stderr.read()
        # the FINISH payload carries the shot's traceback (and is logged);
        # OCD itself must not die with one
        assert not [line for line in stderr.splitlines() if line.startswith("Traceback")]
        assert "Unhandled" not in stderr
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
        tcs.close()
        shots_sub.close()
