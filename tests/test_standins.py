"""The stand-ins for syscmd and hetdex-dither.py, run as real programs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from ocd.sim.standin import read_calls

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path, child_env):
    env = {k: v for k, v in child_env.items() if not k.startswith(("OCD_SYSCMD_", "OCD_DITHER_"))}
    env.update(OCD_STANDIN_LOG=str(tmp_path / "calls.jsonl"), OCD_STANDIN_SPEEDUP="100",
               OCD_SYSCMD_DELAY="0")
    return env


def syscmd(env, *args, timeout=10):
    return subprocess.run([sys.executable, "-m", "ocd.sim.syscmd", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def dither(env, *args, timeout=10):
    return subprocess.run([sys.executable, "-m", "ocd.sim.dither", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_syscmd_records_and_counts_calls(env, tmp_path):
    assert syscmd(env, "-T", 'go_next(move_dome="true")').returncode == 0
    assert syscmd(env, "-p", "Guider1_SetObjectAndMagnitudes(object=\"X\")").returncode == 0
    calls = read_calls(tmp_path / "calls.jsonl", "syscmd")
    assert [c["argv"] for c in calls] == [["-T", 'go_next(move_dome="true")'],
                                         ["-p", 'Guider1_SetObjectAndMagnitudes(object="X")']]
    assert [c["call"] for c in calls] == [1, 2]
    assert all(c["pid"] > 0 and c["time"] > 0 for c in calls)


def test_syscmd_rejects_a_non_call(env):
    done = syscmd(env, "-T", "not a call")
    assert done.returncode == 2 and "not a command call" in done.stderr


@pytest.mark.parametrize("args, error", [
    (["-T", "-p", "a()"], "-T and -p are exclusive"),
    (["-T"], "one COMMAND is required"),
    (["-x", "a()"], "option -x not recognized"),
])
def test_syscmd_usage_errors_exit_2_and_record_nothing(env, tmp_path, args, error):
    done = syscmd(env, *args)
    assert done.returncode == 2 and error in done.stderr and "usage: syscmd" in done.stderr
    assert read_calls(tmp_path / "calls.jsonl") == []


def test_fail_on_nth_call(env):
    env["OCD_SYSCMD_FAIL_ON"] = "2"
    env["OCD_SYSCMD_FAIL_CODE"] = "7"
    codes = [syscmd(env, "-T", "a()").returncode for _ in range(3)]
    assert codes == [0, 7, 0]


def test_crash_on_nth_call(env):
    env["OCD_DITHER_CRASH_ON"] = "1"
    done = dither(env, "--exposure", "1", "--exptime", "1", "--obsnum", "3")
    assert done.returncode == -signal.SIGKILL


def test_hang_on_nth_call_ignoring_term(env):
    env["OCD_SYSCMD_HANG_ON"] = "1"
    env["OCD_SYSCMD_HANG_IGNORE_TERM"] = "1"
    child = subprocess.Popen([sys.executable, "-m", "ocd.sim.syscmd", "-T", "a()"], env=env,
                             stderr=subprocess.PIPE, text=True)
    line = child.stderr.readline()
    assert "hanging" in line
    child.terminate()
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.3)
    child.kill()
    assert child.wait(5) == -signal.SIGKILL
    child.stderr.close()


def test_a_hang_ends_by_itself_long_after_any_timeout(env):
    """A hanging stand-in whose test run was killed outlived it; now it gives up."""
    from ocd.sim.standin import HANG_GAVE_UP, HANG_LIMIT

    assert 600 <= HANG_LIMIT <= 3600  # beyond every timeout, within an hour
    env["OCD_DITHER_HANG_ON"] = "1"
    env["OCD_DITHER_HANG_SECONDS"] = "0.3"
    result = dither(env, "--exposure", "1", "--exptime", "1", "--obsnum", "7", timeout=30)
    assert result.returncode == HANG_GAVE_UP, result.stderr
    assert "hanging on call 1" in result.stderr and "gave up hanging after 0.3 s" in result.stderr


def test_dither_sleeps_exptime_over_speedup_and_writes_data(env, tmp_path):
    env["OCD_STANDIN_SPEEDUP"] = "10"
    env["OCD_STANDIN_DATA_DIR"] = str(tmp_path / "virus{obs_number:07d}" / "exp{exposure:02d}")
    start = time.monotonic()
    done = dither(env, "--exposure", "2", "--exptime", "3", "--obsnum", "42", "--object",
                  "DEX00001", "--dither-with-probes", "no", "--unknown-option", "x")
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert elapsed >= 0.3
    files = list((tmp_path / "virus0000042" / "exp02").iterdir())
    assert [f.name for f in files] == ["virus0000042_exp02_DEX00001.fits"]
    (call,) = read_calls(tmp_path / "calls.jsonl", "hetdex-dither.py")
    assert call["argv"][:2] == ["--exposure", "2"]


def test_calls_are_counted_across_concurrent_processes(env, tmp_path):
    children = [subprocess.Popen([sys.executable, "-m", "ocd.sim.syscmd", "-T", f"c{i}()"],
                                 env=env, stdout=subprocess.DEVNULL) for i in range(6)]
    assert [c.wait(10) for c in children] == [0] * 6
    calls = read_calls(tmp_path / "calls.jsonl", "syscmd")
    assert sorted(c["call"] for c in calls) == [1, 2, 3, 4, 5, 6]
