"""How long a simulated shot takes on this machine *now*, and the replay speed-up that fits.

A replayed night runs at a speed-up of wall time, but a shot takes real wall
time: mostly starting 14 stand-in processes (11 ``syscmd``, 3
``hetdex-dither.py``), about 2.5 s on an idle machine and 6 s or more when
the machine's 2 cores run several test suites. A test that needs N shots in
a slice of night therefore cannot use a constant speed-up: at 2000 a 6 s
shot spends 3.3 hours of replayed night. :func:`replay_speedup` measures
the cost of starting a stand-in right before the replay and picks the
fastest speed-up (at most the idle one) at which the shots the test counts
still fit, so the test proves the same thing at any load and is no slower
on an idle machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Mapping

STANDINS_PER_SHOT = 14
#: Estimate times this: the main loop's own work between stand-ins, and load
#: that rises after the measurement.
MARGIN = 2.0


def standin_seconds(env: Mapping[str, str], samples: int = 3) -> float:
    """Mean wall time of one stand-in ``syscmd`` call, start to exit, measured now."""
    argv = [sys.executable, "-m", "ocd.sim.syscmd", "-T", "set_metadata(pace=1)"]
    quiet = {**env, "OCD_STANDIN_LOG": "", "OCD_SYSCMD_DELAY": "0"}
    for name in ("FAIL_ON", "HANG_ON", "CRASH_ON"):
        quiet.pop(f"OCD_SYSCMD_{name}", None)
    started = time.monotonic()
    for _ in range(samples):
        subprocess.run(argv, env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=120)
    return (time.monotonic() - started) / samples


def replay_speedup(env: Mapping[str, str], *, fastest: float, room: float,
                   exposure_night_seconds: float, standin_speedup: float | None = None,
                   margin: float = MARGIN) -> float:
    """The fastest replay speed-up (at most ``fastest``) at which a shot fits in ``room``.

    ``room`` is the replayed night seconds the test allows for one shot's
    wall time (e.g. between the first shot's start and the last moment the
    second one can start). ``exposure_night_seconds`` is the shot's exposure
    time, scaled by ``standin_speedup`` (None: by the replay's own speed-up,
    as ``prepare()`` does). ``margin`` multiplies the estimate.
    """
    start_cost = STANDINS_PER_SHOT * standin_seconds(env) * margin
    if standin_speedup is not None:
        shot = start_cost + exposure_night_seconds / standin_speedup * margin
        return min(fastest, room / shot)
    # wall = start_cost + exposures / s; night spent = wall * s <= room
    return min(fastest, max(room - exposure_night_seconds * margin, room / 10) / start_cost)
