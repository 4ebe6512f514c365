"""What the stand-ins for ``syscmd`` and ``hetdex-dither.py`` share.

The real programs exist only at the observatory. The stand-ins are real,
small programs so that OCD's process handling is exercised for real: each
call is recorded as one JSON line (``program``, ``argv``, ``time``, ``pid``,
``call``) in the file named by ``OCD_STANDIN_LOG`` (or ``--standin-log``),
time is scaled by ``OCD_STANDIN_SPEEDUP``, and a call can be told to
misbehave through the environment, ``<PREFIX>`` being ``OCD_SYSCMD`` or
``OCD_DITHER``:

- ``<PREFIX>_FAIL_ON=N``: the Nth call exits with status
  ``<PREFIX>_FAIL_CODE`` (default 1) after a message on stderr;
- ``<PREFIX>_HANG_ON=N``: the Nth call never ends (with
  ``<PREFIX>_HANG_IGNORE_TERM=1`` it also ignores SIGTERM, so only KILL ends it);
  "never" is :data:`HANG_LIMIT` seconds of wall time (``<PREFIX>_HANG_SECONDS``),
  then it exits with status 124;
- ``<PREFIX>_CRASH_ON=N``: the Nth call kills itself with a signal
  (``<PREFIX>_CRASH_SIGNAL``, default KILL).

N may be a comma-separated list. Calls are counted per program across
processes: the Nth call is the Nth line of that program in the log, written
under an exclusive lock (without a log every call is call 1).

Only the standard library is imported here: the stand-ins must start fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
TYPE_CHECKING = False  # typing itself costs a stand-in's start 4 ms
if TYPE_CHECKING:
    from typing import Any, Mapping

#: How long a stand-in told to hang waits before it gives up, in seconds of
#: wall time (not scaled by the speed-up): far beyond any timeout of OCD or
#: of the tests, so to them it never ends. Unbounded, one whose test run was
#: killed outlived it (a stand-in runs in a session of its own): two were
#: found still hanging 90 minutes later.
HANG_LIMIT = 900.0
#: The exit status of a stand-in that gave up hanging (``timeout(1)``'s).
HANG_GAVE_UP = 124

LOG_ENV = "OCD_STANDIN_LOG"
SPEEDUP_ENV = "OCD_STANDIN_SPEEDUP"
DATA_DIR_ENV = "OCD_STANDIN_DATA_DIR"


def speedup(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    text = env.get(SPEEDUP_ENV, "").strip()
    if not text:
        return 1.0
    value = float(text)
    if not value > 0:
        raise ValueError(f"{SPEEDUP_ENV}={text!r}: must be > 0")
    return value


def record_call(program: str, argv: list[str], log_path: str | None = None,
                extra: Mapping[str, Any] | None = None) -> int:
    """Append this call to the log and return its number (1-based, per program)."""
    path = log_path or os.environ.get(LOG_ENV, "")
    if not path:
        return 1
    entry: dict[str, Any] = {"program": program, "argv": list(argv), "time": time.time(),
                             "pid": os.getpid()}
    if extra:
        entry.update(extra)
    with open(path, "a+", encoding="utf-8") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        try:
            log.seek(0)
            count = 0
            for line in log:
                try:
                    if json.loads(line).get("program") == program:
                        count += 1
                except ValueError:
                    continue
            entry["call"] = count + 1
            log.seek(0, os.SEEK_END)
            log.write(json.dumps(entry) + "\n")
            log.flush()
        finally:
            fcntl.flock(log, fcntl.LOCK_UN)
    return int(entry["call"])


def read_calls(log_path: str | os.PathLike[str], program: str | None = None) -> list[dict[str, Any]]:
    """The recorded calls (for tests and the night report)."""
    calls = []
    try:
        with open(log_path, encoding="utf-8") as log:
            for line in log:
                if line.strip():
                    entry = json.loads(line)
                    if program is None or entry.get("program") == program:
                        calls.append(entry)
    except FileNotFoundError:
        pass
    return calls


def _numbers(text: str) -> set[int]:
    return {int(part) for part in text.replace(" ", "").split(",") if part}


def misbehave(prefix: str, call: int, program: str) -> None:
    """Fail, hang or crash when the environment asks for it on this call."""
    env = os.environ
    if call in _numbers(env.get(f"{prefix}_CRASH_ON", "")):
        sig = env.get(f"{prefix}_CRASH_SIGNAL", "KILL").upper().removeprefix("SIG")
        print(f"{program}: crashing on call {call} (SIG{sig}) as asked", file=sys.stderr, flush=True)
        os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))
        time.sleep(10)  # a signal that does not kill at once
    if call in _numbers(env.get(f"{prefix}_HANG_ON", "")):
        if env.get(f"{prefix}_HANG_IGNORE_TERM", "") not in ("", "0", "no"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        limit = float(env.get(f"{prefix}_HANG_SECONDS", HANG_LIMIT))
        print(f"{program}: hanging on call {call} as asked", file=sys.stderr, flush=True)
        deadline = time.monotonic() + limit
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
        print(f"{program}: gave up hanging after {limit:g} s", file=sys.stderr, flush=True)
        sys.exit(HANG_GAVE_UP)
    if call in _numbers(env.get(f"{prefix}_FAIL_ON", "")):
        code = int(env.get(f"{prefix}_FAIL_CODE", "1"))
        print(f"{program}: failing on call {call} with status {code} as asked",
              file=sys.stderr, flush=True)
        sys.exit(code)
