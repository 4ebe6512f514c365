"""The one place where OCD runs child processes.

Every external program (``syscmd``, ``hetdex-dither.py``, the alert command)
goes through :class:`ProcessRunner`, so that all of them share the same
guarantees (shots.md section 3):

- each child runs in its own process group (``setsid``), and every signal
  goes to the whole group, so a grandchild that holds the pipes open cannot
  keep a shot alive;
- a timeout, then TERM, then KILL after ``kill_grace`` seconds; the same on
  :meth:`RunningProcess.terminate` (Ctrl+C, service stop);
- stdout and stderr logged line by line with the command's name (long lines
  cut), but only the first :data:`HEAD_LINES` of each stream: after them
  lines are only counted, the last :data:`TAIL_LINES` kept and logged when
  the child ends (a child that writes 300 MB must neither fill the disk with
  log nor be slowed down by it: past the head a chunk costs a few C-level
  byte operations, never a log event per line); the last stderr lines are
  kept for the error message;
- the exit status checked: a non-zero exit, a signal, a timeout or a
  command that cannot be started fails the Deferred with
  :class:`ProcessFailed`, whose message names the command.

Twisted's ``spawnProcess`` has no hook to run ``setsid()`` in the child, so
the child is started through the ``setsid`` program (util-linux) when it is
installed, or through a two-line Python trampoline otherwise. Both exec the
real program in place: the pid Twisted sees is the program's pid, and its
process group id equals it.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.internet import defer
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

log = Logger(namespace="ocd.process")

#: Longest line written to the log; the rest is cut (with a marker).
MAX_LINE = 500
#: stderr lines kept for the message of :class:`ProcessFailed`.
STDERR_TAIL = 10
#: Lines of each stream of a child logged as they arrive; the rest are counted.
HEAD_LINES = 100
#: Last lines of each stream logged when the child ends, after the head.
TAIL_LINES = 20
#: A "line" without a newline is cut into pieces of this many bytes.
RUNAWAY_LINE = 64 * MAX_LINE
#: After the child exited, how long its pipes may stay open (held by a
#: grandchild) before the rest of its process group is stopped.
EXIT_PIPE_GRACE = 0.2
#: After KILL, how long to wait for the pipes before closing our ends.
KILL_PIPE_GRACE = 1.0

_TRAMPOLINE = "import os,sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"


@dataclass(frozen=True)
class ProcessResult:
    """How one child process ended."""

    name: str
    argv: tuple[str, ...]
    exit_code: int | None  # None when killed by a signal
    signal: int | None
    timed_out: bool
    duration: float
    stopped: bool = False
    pid: int | None = None
    stderr_tail: tuple[str, ...] = field(default=(), repr=False)
    #: Lines of stdout and stderr that were counted but not logged.
    unlogged_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.stopped

    def describe(self) -> str:
        """The end of the process in plain words ("exit status 2", ...)."""
        if self.timed_out:
            how = f"timed out after {self.duration:.1f} s"
        elif self.stopped:
            how = "stopped"
        else:
            how = ""
        if self.signal is not None:
            try:
                signame = signal.Signals(self.signal).name
            except ValueError:
                signame = str(self.signal)
            end = f"killed by signal {signame}"
        else:
            end = f"exit status {self.exit_code}"
        return f"{how} ({end})" if how else end


class ProcessFailed(Exception):
    """A child failed: non-zero exit, signal, timeout, stop or no such command.

    ``result`` is the :class:`ProcessResult` (None when it never started).
    """

    def __init__(self, message: str, result: ProcessResult | None = None):
        super().__init__(message)
        self.result = result


def _failure_message(result: ProcessResult) -> str:
    message = f"command {result.name!r} ({_show_argv(result.argv)}) failed: {result.describe()}"
    if result.stderr_tail:
        message += "; last stderr lines: " + " | ".join(result.stderr_tail)
    return message


def _show_argv(argv: tuple[str, ...] | list[str], limit: int = 300) -> str:
    import shlex

    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return line[:MAX_LINE] + f"... [{len(line) - MAX_LINE} more characters]"


def _signal_group(pgid: int | None, sig: int) -> bool:
    """Send ``sig`` to a process group; False when nothing is left there."""
    if pgid is None or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:  # pragma: no cover - pid reuse by another user
        log.warn("cannot signal process group {pgid}: {exc}", pgid=pgid, exc=exc)
        return False
    return True


def resolve_command(argv0: str, env: Mapping[str, str] | None) -> str | None:
    """Full path of the program ``argv0`` (searched on the child's PATH)."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    return shutil.which(argv0, path=path)


def _session_argv(executable: str, argv: list[str]) -> tuple[str, list[str]]:
    """The argv that runs ``executable`` in a new session (own process group)."""
    setsid = shutil.which("setsid")
    if setsid:
        return setsid, [setsid, executable, *argv[1:]]
    return sys.executable, [sys.executable, "-c", _TRAMPOLINE, executable, *argv[1:]]


class _LineLogger:
    """Split a byte stream into lines: log the head, count the rest, keep the tail.

    The first :data:`HEAD_LINES` lines are logged as they come. After them
    :meth:`feed` counts newlines and keeps the last lines with ``bytes``
    methods only (no decoding, no log event), so a flood of output costs the
    reactor little and the child is never held up by its pipe. :meth:`flush`
    (when the child ends) logs how much was not logged and the last
    :data:`TAIL_LINES` lines.
    """

    def __init__(self, name: str, stream: str, keep: int = 0,
                 head: int | None = None, tail: int | None = None):
        self.name = name
        self.stream = stream
        self.pid: int | None = None
        self._buffer = b""
        self._head = HEAD_LINES if head is None else head
        self._late_keep = TAIL_LINES if tail is None else tail
        self._keep = keep
        #: The last ``keep`` lines (raw), whether logged or not.
        self._tail: collections.deque[bytes] = collections.deque(maxlen=max(keep, 1))
        #: The last lines that were not logged (raw).
        self._late: collections.deque[bytes] = collections.deque(maxlen=max(self._late_keep, 1))
        self.logged = 0
        self.lines = 0
        self.unlogged_lines = 0
        self.unlogged_bytes = 0

    @property
    def tail(self) -> list[str]:
        """The last ``keep`` lines, decoded and cut (for an error message)."""
        if not self._keep:
            return []
        return [_decode(raw) for raw in self._tail]

    def feed(self, data: bytes) -> None:
        if self.logged >= self._head:
            self._count(data)
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for index, raw in enumerate(lines):
            if self.logged >= self._head:  # the head is full: count the rest
                rest = b"\n".join(lines[index:]) + b"\n" + self._buffer
                self._buffer = b""
                self._count(rest)
                return
            self._line(raw)
        if len(self._buffer) > RUNAWAY_LINE:  # a runaway line without newline
            self._line(self._buffer)
            self._buffer = b""

    def _count(self, data: bytes) -> None:
        """Past the head: count lines and keep the last ones, bytes only."""
        self.unlogged_bytes += len(data)
        newlines = data.count(b"\n")
        buffer = self._buffer + data if self._buffer else data
        if not newlines:
            if len(buffer) > RUNAWAY_LINE:
                self._unlogged([buffer[:RUNAWAY_LINE]], 1)
                buffer = b""
            self._buffer = buffer
            return
        keep = max(self._keep, self._late_keep)
        parts = buffer.rsplit(b"\n", keep + 1)
        self._buffer = parts[-1]
        complete = parts[1:-1] if len(parts) == keep + 2 else parts[:-1]
        self._unlogged(complete, newlines)

    def _unlogged(self, raws: list[bytes], count: int) -> None:
        self.lines += count
        self.unlogged_lines += count
        self._late.extend(raws)
        if self._keep:
            self._tail.extend(raws)

    def _line(self, raw: bytes) -> None:
        self.lines += 1
        if self._keep:
            self._tail.append(raw)
        if self.logged < self._head:
            self.logged += 1
            self._emit(raw)
        else:
            self.unlogged_lines += 1
            self.unlogged_bytes += len(raw) + 1
            self._late.append(raw)

    def flush(self) -> None:
        if self._buffer:
            buffer, self._buffer = self._buffer, b""
            if self.logged < self._head:
                self._line(buffer)
            else:
                self._unlogged([buffer], 1)
        if self.unlogged_lines:
            late = list(self._late)[-min(self._late_keep, self.unlogged_lines):] \
                if self._late_keep else []
            log.info(
                "{name}[{pid}] {stream}: {unlogged} more lines ({size} bytes) not logged "
                "after the first {head}; the last {last} follow",
                name=self.name, pid=self.pid, stream=self.stream, unlogged=self.unlogged_lines,
                size=self.unlogged_bytes, head=self.logged, last=len(late),
                ocd_event="output_cut")
            for raw in late:
                self._emit(raw)

    def _emit(self, raw: bytes) -> None:
        log.info(
            "{name}[{pid}] {stream}: {line}",
            name=self.name, pid=self.pid, stream=self.stream, line=_decode(raw),
        )


def _decode(raw: bytes) -> str:
    return _cut(raw.decode("utf-8", "replace").rstrip("\r"))


class RunningProcess(ProcessProtocol):
    """One child: its protocol, its timers and its outcome.

    ``result`` fires with a :class:`ProcessResult` on success or fails with
    :class:`ProcessFailed`; ``ended`` fires (never fails) once the child and
    its pipes are gone, whatever happened.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        timeout: float | None,
        kill_grace: float,
        reactor: Any,
    ):
        self.name = name
        self.argv = tuple(argv)
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.reactor = reactor
        self.pid: int | None = None
        self.result: defer.Deferred[ProcessResult] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._out = _LineLogger(name, "stdout")
        self._err = _LineLogger(name, "stderr", keep=STDERR_TAIL)
        self._started = reactor.seconds()
        self._timed_out = False
        self._stopped = False
        self._exit_code: int | None = None
        self._signal: int | None = None
        self._exited = False
        self._done = False
        self._killing = False
        self._calls: list[Any] = []
        #: Called first when the child is gone (the runner forgets it).
        self.on_gone: Callable[[RunningProcess], None] | None = None

    # -- ProcessProtocol ----------------------------------------------------
    def connectionMade(self) -> None:
        self.pid = self.transport.pid  # type: ignore[union-attr]
        self._out.pid = self._err.pid = self.pid
        self.transport.closeStdin()  # type: ignore[union-attr]
        log.info("{name}[{pid}] started: {argv}", name=self.name, pid=self.pid,
                 argv=_show_argv(self.argv))
        if self.timeout is not None:
            self._later(self.timeout, self._on_timeout)

    def outReceived(self, data: bytes) -> None:
        self._out.feed(data)

    def errReceived(self, data: bytes) -> None:
        self._err.feed(data)

    def processExited(self, reason: Any) -> None:
        self._exited = True
        self._exit_code = getattr(reason.value, "exitCode", None)
        self._signal = getattr(reason.value, "signal", None)
        if not self._done:
            # Pipes still open: maybe only a moment, maybe a grandchild holds them.
            self._later(EXIT_PIPE_GRACE, self._stop_leftovers)

    def processEnded(self, reason: Any) -> None:
        if self._done:
            return
        self._done = True
        if not self._exited:
            self._exit_code = getattr(reason.value, "exitCode", None)
            self._signal = getattr(reason.value, "signal", None)
        for call in self._calls:
            if call.active():
                call.cancel()
        self._out.flush()
        self._err.flush()
        result = ProcessResult(
            name=self.name,
            argv=self.argv,
            exit_code=None if self._signal is not None else self._exit_code,
            signal=self._signal,
            timed_out=self._timed_out,
            duration=self.reactor.seconds() - self._started,
            stopped=self._stopped,
            pid=self.pid,
            stderr_tail=tuple(self._err.tail),
            unlogged_lines=self._out.unlogged_lines + self._err.unlogged_lines,
        )
        log.info("{name}[{pid}] ended: {how} after {duration:.3f} s", name=self.name,
                 pid=self.pid, how=result.describe(), duration=result.duration)
        if self.on_gone is not None:
            self.on_gone(self)
        if result.ok:
            self.result.callback(result)
        else:
            self.result.errback(ProcessFailed(_failure_message(result), result))
        self.ended.callback(None)

    # -- ending it ------------------------------------------------------------
    def terminate(self) -> defer.Deferred[None]:
        """Stop the child's group: TERM, then KILL after ``kill_grace``."""
        if not self._done and not self._timed_out:
            self._stopped = True
        self._kill_group()
        return self.ended

    def _on_timeout(self) -> None:
        if self._done:
            return
        self._timed_out = True
        log.warn("{name}[{pid}] timed out after {timeout} s: stopping it",
                 name=self.name, pid=self.pid, timeout=self.timeout)
        self._kill_group()

    def _stop_leftovers(self) -> None:
        if not self._done:
            log.warn("{name}[{pid}] exited but its pipes are still open: "
                     "stopping what is left of its process group", name=self.name, pid=self.pid)
            self._kill_group()

    def _kill_group(self) -> None:
        if self._done or self._killing:
            return
        self._killing = True
        _signal_group(self.pid, signal.SIGTERM)
        self._later(self.kill_grace, self._kill_hard)

    def _kill_hard(self) -> None:
        if self._done:
            return
        if _signal_group(self.pid, signal.SIGKILL):
            log.warn("{name}[{pid}] did not end on TERM: sent KILL", name=self.name, pid=self.pid)
        self._later(KILL_PIPE_GRACE, self._close_pipes)

    def _close_pipes(self) -> None:
        if not self._done and self.transport is not None:
            log.warn("{name}[{pid}] pipes still open after KILL: closing them",
                     name=self.name, pid=self.pid)
            self.transport.loseConnection()

    def _later(self, delay: float, func: Callable[[], None]) -> None:
        self._calls.append(self.reactor.callLater(delay, func))


class ProcessRunner:
    """Starts children and knows which ones are running (to stop them all)."""

    def __init__(self, reactor: IReactorProcess, kill_grace: float = 5.0):
        #: Spawns the children (IReactorProcess) and times them (IReactorTime).
        self.reactor = reactor
        self.kill_grace = kill_grace
        self.running: set[RunningProcess] = set()

    def start(
        self,
        argv: list[str],
        *,
        name: str,
        timeout: float | None,
        kill_grace: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> RunningProcess:
        """Spawn ``argv``; the returned handle's ``result`` says how it went."""
        argv = [str(a) for a in argv]
        grace = self.kill_grace if kill_grace is None else kill_grace
        child = RunningProcess(name, argv, timeout, grace, self.reactor)
        if not argv:
            child.result.errback(ProcessFailed(f"cannot start {name!r}: empty command"))
            child.ended.callback(None)
            return child
        environment = dict(os.environ if env is None else env)
        executable = resolve_command(argv[0], environment)
        if executable is None:
            message = f"cannot start {name!r}: command {argv[0]!r} not found or not executable"
            log.error("{message}", message=message)
            child.result.errback(ProcessFailed(message))
            child.ended.callback(None)
            return child
        program, spawn_argv = _session_argv(executable, argv)
        try:
            self.reactor.spawnProcess(
                child, program, spawn_argv, env=environment, path=cwd, usePTY=False
            )
        except Exception as exc:  # OSError and friends from the spawn itself
            message = f"cannot start {name!r} ({_show_argv(argv)}): {exc}"
            log.error("{message}", message=message)
            child.result.errback(ProcessFailed(message))
            child.ended.callback(None)
            return child
        self.running.add(child)
        child.on_gone = self.running.discard
        return child

    def run(self, argv: list[str], **kwargs: Any) -> defer.Deferred[ProcessResult]:
        """Like :meth:`start`, but only the outcome."""
        return self.start(argv, **kwargs).result

    def stop_all(self) -> defer.Deferred[Any]:
        """Stop every running child; fires once all of them are gone."""
        ends = [child.terminate() for child in list(self.running)]
        return defer.DeferredList(ends, consumeErrors=True)


def run_process(
    argv: list[str],
    *,
    name: str,
    timeout: float | None,
    kill_grace: float = 5,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    reactor: IReactorProcess,
) -> defer.Deferred[ProcessResult]:
    """Run one child with a runner of its own (see :class:`ProcessRunner`)."""
    return ProcessRunner(reactor, kill_grace).run(
        argv, name=name, timeout=timeout, env=env, cwd=cwd
    )
