"""``ocd run_shot``, the command, in a child process: its exit codes, the events it
emits with and without a main loop, and the checks it makes before anything moves.

The shot sequence itself (ShotRunner with the stand-ins) is ``test_run_shot.py``.
"""

from __future__ import annotations

import json as _json
import signal as _signal
import subprocess
import time

import pytest

from conftest import reap
from ocd.sim.standin import read_calls
from run_shot_helpers import DITHER, SYSCMD, standins  # noqa: F401  (standins: a fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def command_env(tmp_path, standins, child_env, free_url):
    import os

    env = dict(os.environ)  # the standins fixture set the stand-in variables here
    env["PYTHONPATH"] = child_env["PYTHONPATH"]
    site = tmp_path / "site.cfg"
    main_url = free_url()  # nothing answers there unless a test puts a fake main loop
    site.write_text(
        "[run_shot]\n"
        f"syscmd_command = {SYSCMD}\n"
        f"dither_command = {DITHER}\n"
        "kill_grace = 0.3\n"
        "[paths]\n"
        f"shuffle_shot = {tmp_path / 'shuffle'}\n"
        "[database]\n"
        "backend = sqlite\n"
        f"sqlite_file = {tmp_path / 'obsnum.sqlite'}\n"
        "[urls]\n"
        f"ocd_main_loop = {main_url}\n"
    )
    return env, site, main_url


SHOT_ARGS = ["DEX00001", "1234", "12.401733", "56.1464", "97.5", "0", "3.6", "3.6", "3.6"]


def run_command(ocd_command, env, site, *extra, timeout=120):
    argv = [*ocd_command, "run_shot", "--config", str(site), *extra, *SHOT_ARGS]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def _obsnums(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT obsnum, shotid FROM vl_obsnum").fetchall()


def test_command_success_records_the_number(tmp_path, command_env, ocd_command, standins):
    env, site, main_url = command_env
    done = run_command(ocd_command, env, site, "-m", '{"QIFU": "000", "QIDX": 89}', "-d", "yes")
    assert done.returncode == 0, done.stderr
    assert "done" in done.stderr
    # It says that it runs stand-ins, which take no data.
    assert "STAND-IN" in done.stderr and "NO DATA IS TAKEN" in done.stderr
    assert _obsnums(tmp_path / "obsnum.sqlite") == [(1234, "DEX00001")]
    calls = read_calls(standins, "syscmd")
    assert calls[0]["argv"] == ["-T", 'set_metadata(QIFU="000", QIDX=89)']
    assert calls[1]["argv"][1].startswith("load_trajectory(az=97.5, ra=12.401733")
    assert read_calls(standins, "hetdex-dither.py")[0]["argv"][-1] == "yes"


def test_command_refuses_a_taken_number_before_anything_moves(tmp_path, command_env, ocd_command,
                                                              standins):
    env, site, main_url = command_env
    import sqlite3

    with sqlite3.connect(tmp_path / "obsnum.sqlite") as db:
        db.execute("CREATE TABLE vl_obsnum (id INTEGER PRIMARY KEY AUTOINCREMENT, obsnum INTEGER "
                   "NOT NULL UNIQUE, shotid VARCHAR(32), created TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
        db.execute("INSERT INTO vl_obsnum (obsnum, shotid) VALUES (1234, 'OTHER')")
    done = run_command(ocd_command, env, site)
    assert done.returncode == 2
    assert "1234 is already taken" in done.stderr
    assert read_calls(standins) == []


@pytest.mark.parametrize("metadata, message", [
    ("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"),
])
def test_command_bad_metadata_exits_2(command_env, ocd_command, standins, metadata, message):
    env, site, main_url = command_env
    done = run_command(ocd_command, env, site, "-m", metadata)
    assert done.returncode == 2
    assert message in done.stderr
    assert read_calls(standins) == []


def test_command_failed_shot_exits_1(command_env, ocd_command, standins):
    env, site, main_url = command_env
    env["OCD_SYSCMD_FAIL_ON"] = "1"
    done = run_command(ocd_command, env, site)
    assert done.returncode == 1
    assert "syscmd load_trajectory" in done.stderr and "failed" in done.stderr


def test_command_wait_for_connection_without_main_loop_exits_3(command_env, ocd_command, standins,
                                                                free_url):
    env, site, main_url = command_env
    done = run_command(ocd_command, env, site, "-e", "-c", "-t", "0.3",
                       "--ocd-run-shot", free_url(), free_url(), "-N", "1")
    assert done.returncode == 3
    assert "no answer from the OCD main loop" in done.stderr
    assert read_calls(standins) == []


def _subscriber(url):
    import zmq

    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"ocd.run_shot.")
    sub.connect(url)
    return sub


def _received(sub):
    import zmq

    events = []
    while sub.poll(200):
        topic, payload = sub.recv_multipart(zmq.NOBLOCK)
        events.append((topic.decode(), _json.loads(payload)))
    return events


def test_command_emit_without_main_loop_goes_on_and_is_stopped_by_sigint(
        tmp_path, command_env, ocd_command, standins, free_url):
    """-e without -c: after the handshake timeout the shot runs, its events go out on the
    bound URL; SIGINT mid-exposure ends the children and still sends FINISH with the error."""
    env, site, main_url = command_env
    env["OCD_DITHER_HANG_ON"] = "2"
    url = free_url()
    sub = _subscriber(url)
    argv = [*ocd_command, "run_shot", "--config", str(site), "-e", "-t", "0.3",
            "--ocd-run-shot", url, "-N", "0", *SHOT_ARGS]
    child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        # Until the hanging second exposure runs: 13 process starts after the
        # command's own, seconds under load; the deadline only guards a hang.
        deadline = time.monotonic() + 90
        while len(read_calls(standins, "hetdex-dither.py")) < 2 and child.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(read_calls(standins, "hetdex-dither.py")) >= 2, "exposure 2 never started"
        child.send_signal(_signal.SIGINT)
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 1, err
        assert "WARNING: no answer from the OCD main loop" in err
        events = _received(sub)
    finally:
        sub.close()
        reap(child)
    topics = [(t, e["exec_status"]) for t, e in events]
    assert topics[0] == ("ocd.run_shot.run", 0)
    assert topics[-1] == ("ocd.run_shot.run", 1)
    finish = events[-1][1]
    assert finish["error"] is True and finish["exc_type"] == "ShotStopped"
    assert finish["shotid"] == "DEX00001" and finish["obs_number"] == 1234
    assert all(k in finish for k in ("__data_time", "__wire_time", "__system"))


class FakeMainLoop:
    """Answers heartbeat enquiries and keeps every shot event (a thread with pyzmq)."""

    def __init__(self, main_url, run_shot_urls):
        import threading

        import zmq

        self.events: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        #: Set once the shot's last event (run FINISH) has been received.
        self.finished = threading.Event()
        context = zmq.Context.instance()
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(main_url)
        self.sub = context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"ocd.")
        for url in run_shot_urls:
            self.sub.connect(url)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        from ocd.core.events import make_event, to_frames

        while not self._stop.is_set():
            if not self.sub.poll(20):
                continue
            topic, payload = self.sub.recv_multipart()
            fields = _json.loads(payload)
            self.events.append((topic.decode(), fields))
            if topic == b"ocd.run_shot.run" and fields.get("exec_status") == 1:
                self.finished.set()
            if topic == b"ocd.heartbeat.enquiry":
                now = time.time()
                self.pub.send_multipart(to_frames(make_event(
                    "ocd.heartbeat.reply", {"id": fields["id"]}, now, now)))

    def close(self):
        self._stop.set()
        self.thread.join(2)
        self.sub.close()
        self.pub.close()


def test_command_emit_with_main_loop(command_env, ocd_command, standins, free_url):
    env, site, main_url = command_env
    shot_url = free_url()
    fake = FakeMainLoop(main_url, [shot_url])
    try:
        done = run_command(ocd_command, env, site, "-e", "-c", "-t", "5",
                           "--ocd-run-shot", free_url(), shot_url, "-N", "1")
        # the command has exited; its FINISH may still be on its way to our thread
        fake.finished.wait(5)
    finally:
        fake.close()
    assert done.returncode == 0, done.stderr
    topics = [t for t, _ in fake.events]
    assert topics[0] == "ocd.heartbeat.enquiry"
    shot = [(t, e["exec_status"]) for t, e in fake.events if t.startswith("ocd.run_shot.")]
    assert shot[0] == ("ocd.run_shot.run", 0) and shot[-1] == ("ocd.run_shot.run", 1)
    assert len(shot) == 10
    assert fake.events[-1][1]["error"] is False


# -- issue 9 item 1 / issue 12 section 1: programs and numbers checked first --------

def test_command_missing_program_exits_2_before_anything(tmp_path, command_env, ocd_command,
                                                         standins):
    env, site, main_url = command_env
    site.write_text(site.read_text().replace(f"syscmd_command = {SYSCMD}",
                                             "syscmd_command = no-such-syscmd-ocd {command}"))
    done = run_command(ocd_command, env, site)
    assert done.returncode == 2, done.stderr
    assert "'no-such-syscmd-ocd', not found on PATH" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "obsnum.sqlite").exists() or _obsnums(tmp_path / "obsnum.sqlite") == []
    assert read_calls(standins) == []


@pytest.mark.slow(2)
def _database_down(site, free_port):
    site.write_text(site.read_text().replace(
        "[database]\nbackend = sqlite\n",
        f"[database]\nbackend = mysql\nhost = 127.0.0.1\nport = {free_port}\ntimeout = 1\n"))


def test_command_number_that_cannot_be_recorded_does_not_run(command_env, ocd_command, standins):
    from conftest import free_port

    env, site, main_url = command_env
    _database_down(site, free_port())
    done = run_command(ocd_command, env, site)
    assert done.returncode == 1, done.stderr
    assert "1234 cannot be recorded" in done.stderr and "Can't connect" in done.stderr
    assert "--force" in done.stderr
    assert read_calls(standins) == []


def test_command_force_runs_without_recording(command_env, ocd_command, standins):
    from conftest import free_port

    env, site, main_url = command_env
    _database_down(site, free_port())
    done = run_command(ocd_command, env, site, "--force")
    assert done.returncode == 0, done.stderr
    assert "not recorded" in done.stderr and "--force" in done.stderr
    assert len(read_calls(standins, "syscmd")) > 0
