"""The shot runner with real child processes: the stand-ins for syscmd and hetdex-dither.py.

``ocd run_shot``, the command around it, is ``test_run_shot_command.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_twisted

from ocd.config import Config
from ocd.protocols.process import ProcessRunner
from ocd.services.shot_runner import ShotRequest, ShotRunner
from ocd.sim.shuffle_files import FAKE_JPEG, write_shuffle_files
from ocd.sim.standin import read_calls
from run_shot_helpers import DITHER, SYSCMD, standins  # noqa: F401  (standins: a fixture)

pytestmark = pytest.mark.integration

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
