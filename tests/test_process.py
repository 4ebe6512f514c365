"""The one child-process runner, with real child processes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
import pytest_twisted

from bus_helpers import wait_until
from ocd.protocols.process import ProcessFailed, ProcessRunner, run_process

pytestmark = pytest.mark.integration

PY = sys.executable


def the_reactor():
    from twisted.internet import reactor  # pytest-twisted installed it

    return reactor


def run(argv, **options):
    """:func:`run_process` on the test's reactor."""
    return run_process(argv, reactor=the_reactor(), **options)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest_twisted.inlineCallbacks
def test_success_reports_exit_code_and_own_process_group():
    from twisted.logger import formatEvent, globalLogPublisher

    code = "import os; print(os.getpgrp() == os.getpid()); print('done')"
    logged: list[str] = []

    def observer(event):
        logged.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        result = yield run([PY, "-c", code], name="hello", timeout=10)
    finally:
        globalLogPublisher.removeObserver(observer)
    # what the child printed is logged line by line, and says it leads its group
    out = [line.split(" stdout: ", 1)[1] for line in logged
           if line.startswith("hello[") and " stdout: " in line]
    assert out == ["True", "done"]
    assert result.exit_code == 0
    assert result.signal is None
    assert not result.timed_out
    assert result.name == "hello"
    assert result.duration >= 0


@pytest_twisted.inlineCallbacks
def test_child_is_a_process_group_leader(tmp_path):
    out = tmp_path / "pg"
    code = f"import os; open({str(out)!r}, 'w').write(str(os.getpgrp() == os.getpid()))"
    yield run([PY, "-c", code], name="pg", timeout=10)
    assert out.read_text() == "True"


@pytest_twisted.inlineCallbacks
def test_nonzero_exit_fails_with_command_name_and_stderr():
    code = "import sys; print('oops: bad thing', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ProcessFailed) as info:
        yield run([PY, "-c", code], name="failing-tool", timeout=10)
    message = str(info.value)
    assert "failing-tool" in message
    assert "exit status 3" in message
    assert "oops: bad thing" in message
    assert info.value.result.exit_code == 3


@pytest_twisted.inlineCallbacks
def test_hang_killed_on_timeout_term_then_kill():
    # Ignores TERM: only KILL ends it.
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    start = time.monotonic()
    with pytest.raises(ProcessFailed) as info:
        yield run([PY, "-c", code], name="stubborn", timeout=0.5, kill_grace=0.3)
    elapsed = time.monotonic() - start
    result = info.value.result
    assert result.timed_out
    assert result.signal == signal.SIGKILL
    assert result.exit_code is None
    assert "timed out" in str(info.value) and "stubborn" in str(info.value)
    assert elapsed < 3


@pytest_twisted.inlineCallbacks
def test_timeout_term_is_enough_for_a_polite_child():
    with pytest.raises(ProcessFailed) as info:
        yield run([PY, "-c", "import time; time.sleep(60)"], name="polite",
                          timeout=0.3, kill_grace=5)
    assert info.value.result.signal == signal.SIGTERM
    assert info.value.result.duration < 3


@pytest_twisted.inlineCallbacks
def test_grandchild_holding_the_pipes_is_killed_with_the_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # The shell starts a long sleep in the background (it inherits stdout and
    # stderr) and exits 0 at once: only the group kill ends the sleep.
    script = f"sleep 30 & echo $! > {pidfile}; exit 0"
    start = time.monotonic()
    result = yield run(["sh", "-c", script], name="leaker", timeout=10, kill_grace=0.5)
    assert result.exit_code == 0
    assert time.monotonic() - start < 3
    grandchild = int(pidfile.read_text())
    assert (yield wait_until(lambda: not _alive(grandchild), 2.0, 0.02))


@pytest_twisted.inlineCallbacks
def test_timeout_kills_grandchildren_too(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    with pytest.raises(ProcessFailed):
        yield run(["sh", "-c", script], name="waiter", timeout=0.3, kill_grace=0.5)
    grandchild = int(pidfile.read_text())
    assert (yield wait_until(lambda: not _alive(grandchild), 2.0, 0.02))


@pytest_twisted.inlineCallbacks
def test_command_not_found_names_it():
    with pytest.raises(ProcessFailed) as info:
        yield run(["no-such-program-ocd-xyz", "-T", "x"], name="syscmd", timeout=5)
    assert "no-such-program-ocd-xyz" in str(info.value)
    assert "syscmd" in str(info.value)
    assert info.value.result is None


@pytest_twisted.inlineCallbacks
def test_stop_all_ends_every_child_and_marks_them_stopped():
    runner = ProcessRunner(the_reactor(), kill_grace=0.5)
    first = runner.start([PY, "-c", "import time; time.sleep(60)"], name="a", timeout=30)
    second = runner.start([PY, "-c", "import time; time.sleep(60)"], name="b", timeout=30)
    assert len(runner.running) == 2
    results = []
    first.result.addErrback(lambda f: results.append(f.value))
    second.result.addErrback(lambda f: results.append(f.value))
    start = time.monotonic()
    yield runner.stop_all()
    assert time.monotonic() - start < 2
    assert runner.running == set()
    assert len(results) == 2
    assert all(isinstance(r, ProcessFailed) and r.result.stopped for r in results)
    assert all("stopped" in str(r) for r in results)


@pytest_twisted.inlineCallbacks
def test_long_output_lines_are_cut_and_logged(logged):
    code = "print('x' * 2000); print('short')"
    yield run([PY, "-c", code], name="chatty", timeout=10)
    lines = [e["line"] for e in logged if e.get("name") == "chatty" and "line" in e]
    assert "short" in lines
    long_line = next(line for line in lines if line.startswith("xxx"))
    assert len(long_line) < 600 and "more characters" in long_line
