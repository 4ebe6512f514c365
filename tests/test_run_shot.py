"""The shot runner with real child processes: the stand-ins for syscmd and hetdex-dither.py."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted

from ocd.config import Config
from ocd.protocols.process import ProcessRunner
from ocd.services.shot_runner import ShotRequest, ShotRunner
from ocd.sim.shuffle_files import FAKE_JPEG, write_shuffle_files
from ocd.sim.standin import read_calls

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
SYSCMD = f"{PY} -m ocd.sim.syscmd {{switch}} {{command}}"
DITHER = (f"{PY} -m ocd.sim.dither --exposure {{exposure}} --exptime {{seconds}} "
          "--obsnum {obs_number} --object {shotid} --dither-with-probes {dither_with_probes}")
METADATA = {"QIDX": "89", "QPROG": "HET18-2-100", "QIFU": "000", "QRA": "10:55:31.00"}


def shot_config(tmp_path: Path, **options: str) -> Config:
    overrides = {
        ("run_shot", "syscmd_command"): SYSCMD,
        ("run_shot", "dither_command"): DITHER,
        # Guards against a hang only: a process start takes seconds under load.
        ("run_shot", "syscmd_timeout"): "30",
        ("run_shot", "dither_timeout"): "30",
        ("run_shot", "kill_grace"): "0.3",
        ("paths", "shuffle_shot"): str(tmp_path / "shuffle"),
        ("paths", "acam_dest_file"): str(tmp_path / "acam" / "current.jpg"),
        ("paths", "data_dir"): str(tmp_path / "data" / "virus{obs_number:07d}" / "exp03"),
    }
    for key, value in options.items():
        section, option = key.split("__")
        overrides[(section, option)] = value
    return Config.load(None, [(s, o, v) for (s, o), v in overrides.items()])


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """Children find this tree, log their calls to a file and run fast."""
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OCD_STANDIN_LOG", str(log))
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "100")
    monkeypatch.setenv("OCD_SYSCMD_DELAY", "0")
    for name in ("FAIL_ON", "HANG_ON", "CRASH_ON", "HANG_IGNORE_TERM"):
        monkeypatch.delenv(f"OCD_SYSCMD_{name}", raising=False)
        monkeypatch.delenv(f"OCD_DITHER_{name}", raising=False)
    write_shuffle_files([dict(shotid="DEX00001", ra=12.401733, dec=56.1464, track=0,
                              QIFU="000")], tmp_path / "shuffle")
    return log


class FakeStore:
    """Records what the runner writes for crash recovery."""

    def __init__(self):
        self.steps: list[tuple] = []
        self.cleared = 0

    def record_running(self, shotid, obs_number, step, pgid=None, **identity):
        self.steps.append((shotid, obs_number, step, pgid))

    def clear_running(self):
        self.cleared += 1


def request(**changes) -> ShotRequest:
    base = dict(shotid="DEX00001", obs_number=1234, ra=12.401733, dec=56.1464, azimuth=97.5,
                track=0, exptimes=(3.6, 3.6, 3.6), metadata=METADATA, forced_az=-1)
    base.update(changes)
    return ShotRequest(**base)


def make_runner(config, store=None, stamps=None):
    """The runner and the events it emits; ``stamps`` gets each event's monotonic time."""
    events: list[tuple[str, dict]] = []
    from twisted.internet import reactor

    def emit(topic, fields):
        events.append((topic, fields))
        if stamps is not None:
            stamps.append(time.monotonic())

    runner = ShotRunner(config, emit, ProcessRunner(reactor, kill_grace=0.3), reactor,
                        store=store)
    return runner, events


def steps(events):
    out = []
    for topic, fields in events:
        key = topic.rsplit(".", 1)[1]
        status = "START" if fields["exec_status"] == 0 else "FINISH"
        if "exposure" in fields:
            key += f"{fields['exposure']}"
        if status == "FINISH" and fields.get("error"):
            status += "!"
        out.append(f"{key} {status}")
    return out


@pytest_twisted.inlineCallbacks
def test_success_runs_every_command_in_order(tmp_path, standins):
    store = FakeStore()
    runner, events = make_runner(shot_config(tmp_path), store)
    outcome = yield runner.run(request())
    assert outcome.ok, outcome.error
    assert steps(events) == [
        "run START", "setup_telescope START", "setup_telescope FINISH",
        "exp_hetdex1 START", "exp_hetdex1 FINISH", "exp_hetdex2 START", "exp_hetdex2 FINISH",
        "exp_hetdex3 START", "exp_hetdex3 FINISH", "run FINISH",
    ]
    for _topic, fields in events:
        assert fields["shotid"] == "DEX00001" and fields["obs_number"] == 1234
        assert fields["ra"] == 12.401733 and fields["dec"] == 56.1464
        assert fields["azimuth"] == 97.5 and fields["track"] == 0
        assert fields["exptimes"] == [3.6, 3.6, 3.6]
    assert events[-1][1]["error"] is False
    exposure = events[3][1]
    assert exposure["seconds"] == 3.6 and exposure["observation"] == 1234
    assert exposure["object"] == "DEX00001" and exposure["recipe"] == "hetdex-dither.py 1.0"

    syscmds = [call["argv"] for call in read_calls(standins, "syscmd")]
    assert syscmds[0] == ["-T", 'set_metadata(QIDX=89, QPROG="HET18-2-100", QIFU="000", '
                                'QRA="10:55:31.00")']
    assert syscmds[1] == ["-T", 'load_trajectory(ra=12.401733, dec=56.146400, equinox=2000.0, '
                                'dir="EAST")']
    assert syscmds[2] == ["-T", 'Guider1_set_position(ra=12.404550, dec=56.210100, '
                                'equinox=2000.0, trajectory="next")']
    assert syscmds[6] == ["-p", 'Guider1_SetObjectAndMagnitudes(object="SDSS:1237648702975934556", '
                                'g=16.900, r=16.100, i=15.800)']
    assert syscmds[-1] == ["-T", 'go_next(move_structure="true", move_dome="true", '
                                 'move_probes="true")']
    assert len(syscmds) == 11
    dithers = [call["argv"] for call in read_calls(standins, "hetdex-dither.py")]
    assert dithers == [
        ["--exposure", str(n), "--exptime", "3.6", "--obsnum", "1234", "--object", "DEX00001",
         "--dither-with-probes", "no"] for n in (1, 2, 3)
    ]
    # One after the other, never overlapping: each call starts after the previous.
    times = [call["time"] for call in read_calls(standins)]
    assert times == sorted(times)
    assert (tmp_path / "acam" / "current.jpg").read_bytes() == FAKE_JPEG
    # Crash-recovery record: before the start, each step with its process group, cleared at the end.
    assert store.steps[0] == ("DEX00001", 1234, "start", None)
    assert any(step[2] == "exp_hetdex 3" and step[3] for step in store.steps)
    assert store.cleared == 1
    assert runner.running is None


@pytest_twisted.inlineCallbacks
def test_failing_syscmd_fails_the_shot_and_names_the_command(tmp_path, standins, monkeypatch):
    monkeypatch.setenv("OCD_SYSCMD_FAIL_ON", "3")
    runner, events = make_runner(shot_config(tmp_path))
    outcome = yield runner.run(request())
    assert not outcome.ok
    assert outcome.exc_type == "ProcessFailed"
    assert "Guider1_set_position" in outcome.error and "exit status 1" in outcome.error
    assert "failing on call 3" in outcome.error  # the stderr tail
    assert steps(events) == ["run START", "setup_telescope START", "setup_telescope FINISH!",
                             "run FINISH!"]
    finish = events[-1][1]
    assert finish["error"] is True and finish["exc_type"] == "ProcessFailed"
    assert "Guider1_set_position" in finish["exc_value"] and "Traceback" in finish["traceback"]
    assert len(read_calls(standins, "syscmd")) == 3
    assert read_calls(standins, "hetdex-dither.py") == []


@pytest_twisted.inlineCallbacks
def test_hanging_dither_is_killed_on_timeout(tmp_path, standins, monkeypatch):
    monkeypatch.setenv("OCD_DITHER_HANG_ON", "2")
    monkeypatch.setenv("OCD_DITHER_HANG_IGNORE_TERM", "1")
    config = shot_config(tmp_path, run_shot__dither_timeout="0.4")
    stamps: list[float] = []
    runner, events = make_runner(config, stamps=stamps)
    outcome = yield runner.run(request(exptimes=(0.1, 0.1, 0.1)))
    # The hanging exposure ended on its own timeout (0.4 s) and the kill grace
    # (0.3 s), not shot_config's dither_timeout (30 s): timed from its START to
    # its FINISH, so the 13 process starts before it (seconds under load) do not count.
    hung = steps(events).index("exp_hetdex2 START")
    assert stamps[hung + 1] - stamps[hung] < 10
    assert not outcome.ok
    assert "timed out" in outcome.error and "hetdex-dither.py exposure 2" in outcome.error
    assert "SIGKILL" in outcome.error  # it ignored TERM
    assert steps(events)[-3:] == ["exp_hetdex2 START", "exp_hetdex2 FINISH!", "run FINISH!"]
    assert events[-2][1]["exposure"] == 2


@pytest_twisted.inlineCallbacks
def test_crashing_syscmd(tmp_path, standins, monkeypatch):
    monkeypatch.setenv("OCD_SYSCMD_CRASH_ON", "1")
    runner, events = make_runner(shot_config(tmp_path))
    outcome = yield runner.run(request())
    assert not outcome.ok
    assert "killed by signal SIGKILL" in outcome.error and "set_metadata" in outcome.error
    assert events[-1][1]["error"] is True


@pytest_twisted.inlineCallbacks
def test_missing_shuffle_file(tmp_path, standins):
    runner, events = make_runner(shot_config(tmp_path))
    outcome = yield runner.run(request(shotid="DEX99999"))
    assert not outcome.ok
    assert outcome.exc_type == "ShuffleError"
    assert "DEX99999_000_E.cfg" in outcome.error and "does not exist" in outcome.error
    assert steps(events) == ["run START", "setup_telescope START", "setup_telescope FINISH!",
                             "run FINISH!"]
    assert read_calls(standins) == []


@pytest_twisted.inlineCallbacks
def test_dir_contradicting_track_fails(tmp_path, standins):
    write_shuffle_files([dict(shotid="DEX00002", ra=1.0, dec=50.0, track=1, QIFU="000")],
                        tmp_path / "shuffle", template="HETcommands/{shotid}_{QIFU}_E.cfg")
    runner, _events = make_runner(shot_config(tmp_path))
    outcome = yield runner.run(request(shotid="DEX00002"))
    assert not outcome.ok and "contradicts" in outcome.error


@pytest_twisted.inlineCallbacks
def test_stop_mid_shot_ends_children_and_emits_finish(tmp_path, standins, monkeypatch):
    from twisted.internet import reactor, task

    monkeypatch.setenv("OCD_DITHER_HANG_ON", "1")
    # A dither timeout far beyond the bound below: stop() must end the hanging
    # child itself (TERM, kill_grace 0.3 s), not wait for the timeout.
    runner, events = make_runner(shot_config(tmp_path, run_shot__dither_timeout="120"))
    running = runner.run(request())
    deadline = time.monotonic() + 90  # 12 process starts: seconds under load
    while not read_calls(standins, "hetdex-dither.py") and time.monotonic() < deadline:
        yield task.deferLater(reactor, 0.02, lambda: None)
    assert read_calls(standins, "hetdex-dither.py"), "the first exposure never started"
    assert runner.running is not None
    start = time.monotonic()
    yield runner.stop()
    assert time.monotonic() - start < 20
    assert steps(events)[-2:] == ["exp_hetdex1 FINISH!", "run FINISH!"]
    outcome = yield running
    assert not outcome.ok and outcome.exc_type == "ShotStopped"
    assert "exp_hetdex 1" in outcome.error
    assert runner.processes.running == set()


@pytest_twisted.inlineCallbacks
def test_wait_last_write_waits_for_a_quiet_data_folder(tmp_path, standins, monkeypatch):
    monkeypatch.setenv("OCD_STANDIN_DATA_DIR",
                       str(tmp_path / "data" / "virus{obs_number:07d}" / "exp{exposure:02d}"))
    config = shot_config(tmp_path, run_shot__wait_last_write="yes",
                         run_shot__last_write_quiet="0.3", run_shot__last_write_timeout="3")
    runner, events = make_runner(config)
    outcome = yield runner.run(request(exptimes=(0.1, 0.1, 0.1)))
    assert outcome.ok, outcome.error
    written = list((tmp_path / "data" / "virus0001234" / "exp03").iterdir())
    assert len(written) == 1
    last_dither = read_calls(standins, "hetdex-dither.py")[-1]["time"]
    # FINISH came at least last_write_quiet after the file was written.
    assert time.time() - written[0].stat().st_mtime >= 0.3
    assert time.time() - last_dither >= 0.3


@pytest_twisted.inlineCallbacks
def test_a_second_shot_is_refused_while_one_runs(tmp_path, standins, monkeypatch):
    monkeypatch.setenv("OCD_DITHER_HANG_ON", "1")
    runner, events = make_runner(shot_config(tmp_path))
    first = runner.run(request())
    second = yield runner.run(request(shotid="DEX00002"))
    assert not second.ok and "still running" in second.error
    yield runner.stop()
    outcome = yield first
    assert not outcome.ok


@pytest_twisted.inlineCallbacks
def test_command_not_found_fails_the_shot(tmp_path, standins):
    config = shot_config(tmp_path, run_shot__syscmd_command="no-such-syscmd-ocd {switch} {command}")
    runner, events = make_runner(config)
    outcome = yield runner.run(request())
    assert not outcome.ok and "no-such-syscmd-ocd" in outcome.error
    assert events[-1][1]["error"] is True


# -- ocd run_shot, the command, in a child process -------------------------------

import json as _json
import signal as _signal
import subprocess


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
    try:
        argv = [*ocd_command, "run_shot", "--config", str(site), "-e", "-t", "0.3",
                "--ocd-run-shot", url, "-N", "0", *SHOT_ARGS]
        child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
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
