"""Stand-in for the observatory's ``syscmd`` (telescope commands).

``syscmd -T 'load_trajectory(ra=..., ...)'`` (``-p`` for
``*_SetObjectAndMagnitudes``): records the call (see :mod:`ocd.sim.standin`),
checks that the command looks like ``name(key=value, ...)`` (exit 2 if not),
takes ``OCD_SYSCMD_DELAY`` seconds (default 0.2) divided by
``OCD_STANDIN_SPEEDUP``, prints one line and exits 0 -- unless told to fail,
hang or crash with ``OCD_SYSCMD_FAIL_ON`` / ``_HANG_ON`` / ``_CRASH_ON``.
"""

from __future__ import annotations

import getopt
import os
import re
import sys
import time

from ocd.sim import standin

PROGRAM = "syscmd"
PREFIX = "OCD_SYSCMD"
_CALL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\(.*\)\s*$", re.S)


USAGE = f"usage: {PROGRAM} [-T | -p] [--standin-log FILE] COMMAND"
HELP = f"""{USAGE}

Stand-in for syscmd.

  COMMAND             the command text, e.g. 'go_next(move_dome="true")'
  -T                  run a TCS command (the default)
  -p                  run a probe command
  --standin-log FILE  call log (default ${standin.LOG_ENV})
"""


def parse(argv: list[str]) -> tuple[str, str, str | None]:
    """``(switch, command, log)`` from the command line; :class:`getopt.GetoptError` if wrong.

    The standard library's ``getopt``, not ``argparse``: a stand-in starts 11
    times a shot, and ``argparse`` (with the ``shutil`` and ``locale`` it
    loads to format help) was a third of its start-up.
    """
    options, positional = getopt.gnu_getopt(argv, "Tph", ["standin-log=", "help"])
    switch, log = "", None
    for name, value in options:
        if name in ("-h", "--help"):
            print(HELP, end="")
            raise SystemExit(0)
        if name in ("-T", "-p"):
            if switch and switch != name:
                raise getopt.GetoptError("-T and -p are exclusive")
            switch = name
        else:
            log = value
    if len(positional) != 1:
        raise getopt.GetoptError("one COMMAND is required")
    return switch, positional[0], log


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        switch, command, log = parse(argv)
    except getopt.GetoptError as exc:
        print(f"{USAGE}\n{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    call = standin.record_call(PROGRAM, argv, log)
    standin.misbehave(PREFIX, call, PROGRAM)
    if not _CALL.match(command):
        print(f"{PROGRAM}: {command!r} is not a command call name(...)", file=sys.stderr)
        return 2
    delay = float(os.environ.get(f"{PREFIX}_DELAY", "0.2")) / standin.speedup()
    time.sleep(max(delay, 0.0))
    print(f"{PROGRAM} {switch or '-T'}: {command}: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
