"""Stand-in for the observatory's ``hetdex-dither.py`` (one dithered exposure).

Takes the options of the default ``[run_shot] dither_command`` (unknown ones
are accepted and ignored), records the call (see :mod:`ocd.sim.standin`),
"exposes" for ``--exptime`` divided by ``OCD_STANDIN_SPEEDUP`` seconds and,
when ``OCD_STANDIN_DATA_DIR`` is set, writes a fake exposure file into that
folder. The folder may use the placeholders ``{obs_number}`` (also
``{obsnum}``), ``{exposure}`` and ``{object}``, with format specs, e.g.
``/tmp/virus/virus{obs_number:07d}/exp{exposure:02d}``. Misbehaves on demand
with ``OCD_DITHER_FAIL_ON`` / ``_HANG_ON`` / ``_CRASH_ON``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ocd.sim import standin

PROGRAM = "hetdex-dither.py"
PREFIX = "OCD_DITHER"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Stand-in for hetdex-dither.py.")
    parser.add_argument("--exposure", type=int, required=True, help="dither number, 1 to 3")
    parser.add_argument("--exptime", type=float, required=True, help="exposure time, s")
    parser.add_argument("--obsnum", type=int, required=True, help="observation number")
    parser.add_argument("--object", default="", help="shot id")
    parser.add_argument("--dither-with-probes", default="no", help="yes or no")
    parser.add_argument("--standin-log", default=None, help=f"call log (default ${standin.LOG_ENV})")
    args, _unknown = parser.parse_known_args(argv)
    call = standin.record_call(PROGRAM, argv, args.standin_log)
    standin.misbehave(PREFIX, call, PROGRAM)
    seconds = max(args.exptime, 0.0) / standin.speedup()
    print(f"{PROGRAM}: exposure {args.exposure} of {args.object} (obsnum {args.obsnum}), "
          f"{args.exptime} s", flush=True)
    time.sleep(seconds)
    template = os.environ.get(standin.DATA_DIR_ENV, "")
    if template:
        folder = Path(template.format(obs_number=args.obsnum, obsnum=args.obsnum,
                                      exposure=args.exposure, object=args.object))
        folder.mkdir(parents=True, exist_ok=True)
        name = f"virus{args.obsnum:07d}_exp{args.exposure:02d}_{args.object or 'object'}.fits"
        (folder / name).write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    print(f"{PROGRAM}: exposure {args.exposure} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
