"""A child that floods its pipes (issue 12, section 4): bounded log, nothing lost.

Real child processes through the one process runner: the head of each stream
is logged, the rest counted, the last lines logged at the end; the error
message of a failed child still names its last stderr lines.
"""

from __future__ import annotations

import sys

import pytest
import pytest_twisted
from twisted.logger import globalLogPublisher

from ocd.protocols.process import HEAD_LINES, STDERR_TAIL, TAIL_LINES, ProcessFailed, run_process


def _reactor():
    from twisted.internet import reactor  # pytest-twisted installed it

    return reactor


pytestmark = pytest.mark.integration

PY = sys.executable
#: 200,000 stdout lines (about 9 MB) and 3,000 stderr lines, written in big chunks.
FLOOD = (
    "import sys\n"
    "out = ''.join(f'exposure line {i:07d} ' + 'x' * 25 + '\\n' for i in range(200000))\n"
    "sys.stdout.write(out); sys.stdout.flush()\n"
    "sys.stderr.write(''.join(f'warning {i}\\n' for i in range(3000)))\n"
    "sys.stdout.write('no newline at the end')\n"
    "sys.exit(int(sys.argv[1]))\n"
)


@pytest.fixture
def child_lines():
    """The log lines that name the child "flood"."""
    events: list[dict] = []

    def observe(event: dict) -> None:
        if event.get("name") == "flood":
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


@pytest_twisted.inlineCallbacks
def test_a_flood_of_output_logs_head_and_tail_and_counts_the_rest(child_lines):
    result = yield run_process([PY, "-c", FLOOD, "0"], name="flood", timeout=60, reactor=_reactor())
    stdout_lines, stderr_lines = 200_001, 3000
    assert result.unlogged_lines == stdout_lines - HEAD_LINES + stderr_lines - HEAD_LINES
    lines = [e for e in child_lines if "line" in e]
    per_stream = {s: [e["line"] for e in lines if e["stream"] == s] for s in ("stdout", "stderr")}
    assert len(per_stream["stdout"]) == HEAD_LINES + TAIL_LINES
    assert per_stream["stdout"][0].startswith("exposure line 0000000")
    assert per_stream["stdout"][HEAD_LINES - 1].startswith("exposure line 0000099")
    assert per_stream["stdout"][-2].startswith("exposure line 0199999")
    assert per_stream["stdout"][-1] == "no newline at the end"
    assert per_stream["stderr"][-1] == "warning 2999"
    assert len(per_stream["stderr"]) == HEAD_LINES + TAIL_LINES
    cut = {e["stream"]: e for e in child_lines if e.get("ocd_event") == "output_cut"}
    assert cut["stdout"]["unlogged"] == stdout_lines - HEAD_LINES
    assert cut["stderr"]["unlogged"] == stderr_lines - HEAD_LINES
    assert len(child_lines) < 2 * (HEAD_LINES + TAIL_LINES) + 10


@pytest_twisted.inlineCallbacks
def test_a_failed_flooding_child_still_names_its_last_stderr_lines(child_lines):
    with pytest.raises(ProcessFailed) as info:
        yield run_process([PY, "-c", FLOOD, "3"], name="flood", timeout=60, reactor=_reactor())
    message = str(info.value)
    assert "exit status 3" in message
    assert "warning 2999" in message and f"warning {2999 - STDERR_TAIL}" not in message
    assert info.value.result.stderr_tail[-1] == "warning 2999"
    assert len(info.value.result.stderr_tail) == STDERR_TAIL
