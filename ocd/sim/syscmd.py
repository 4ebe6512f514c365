"""Stand-in for the observatory's ``syscmd`` (telescope commands).

``syscmd -T 'load_trajectory(ra=..., ...)'`` (``-p`` for
``*_SetObjectAndMagnitudes``): records the call (see :mod:`ocd.sim.standin`),
checks that the command looks like ``name(key=value, ...)`` (exit 2 if not),
takes ``OCD_SYSCMD_DELAY`` seconds (default 0.2) divided by
``OCD_STANDIN_SPEEDUP``, prints one line and exits 0 -- unless told to fail,
hang or crash with ``OCD_SYSCMD_FAIL_ON`` / ``_HANG_ON`` / ``_CRASH_ON``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from ocd.sim import standin

PROGRAM = "syscmd"
PREFIX = "OCD_SYSCMD"
_CALL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\(.*\)\s*$", re.S)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Stand-in for syscmd.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-T", dest="switch", action="store_const", const="-T",
                      help="run a TCS command")
    mode.add_argument("-p", dest="switch", action="store_const", const="-p",
                      help="run a probe command")
    parser.add_argument("--standin-log", default=None, help=f"call log (default ${standin.LOG_ENV})")
    parser.add_argument("command", help="the command text, e.g. 'go_next(move_dome=\"true\")'")
    args = parser.parse_args(argv)
    call = standin.record_call(PROGRAM, argv, args.standin_log)
    standin.misbehave(PREFIX, call, PROGRAM)
    if not _CALL.match(args.command):
        print(f"{PROGRAM}: {args.command!r} is not a command call name(...)", file=sys.stderr)
        return 2
    delay = float(os.environ.get(f"{PREFIX}_DELAY", "0.2")) / standin.speedup()
    time.sleep(max(delay, 0.0))
    print(f"{PROGRAM} {args.switch or '-T'}: {args.command}: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
