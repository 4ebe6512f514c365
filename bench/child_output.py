"""How much the process runner slows a child that floods its stdout.

Same machine, same run: a child writes N lines (about 40 bytes each) as fast
as it can, once with stdout on /dev/null (the baseline: nobody reads) and
once through :class:`ocd.protocols.process.ProcessRunner` (head logged, the
rest counted, tail kept), with a JSON log observer attached as in ``ocd run``.
Prints both durations as the child measured them and their ratio (target
<= 2: the runner never throttles a child; before the head/tail rule a 2 s
exposure that wrote 300 MB took 57 s).

    .venv/bin/python bench/child_output.py [-n 2000000]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD = (
    "import sys, time\n"
    "n = int(sys.argv[1]); t0 = time.perf_counter()\n"
    "w = sys.stdout.write\n"
    "for i in range(n): w(f'exposure line {i:09d} ' + 'x' * 16 + '\\n')\n"
    "sys.stdout.flush()\n"
    "print(f'{time.perf_counter() - t0:.3f}', file=sys.stderr)\n"
)


def baseline(n: int) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, str(n)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    return float(done.stderr.strip())


def through_runner(n: int) -> tuple[float, int]:
    from twisted.internet import reactor
    from twisted.logger import globalLogPublisher, jsonFileLogObserver

    from ocd.protocols.process import ProcessRunner

    sink = jsonFileLogObserver(io.StringIO())
    globalLogPublisher.addObserver(sink)
    outcome: dict = {}

    def run() -> None:
        d = ProcessRunner(reactor).run([sys.executable, "-c", CHILD, str(n)], name="flood",
                                       timeout=600)

        def done(result):
            outcome["result"] = result
            reactor.stop()

        def failed(failure):
            outcome["error"] = failure
            reactor.stop()

        d.addCallbacks(done, failed)

    reactor.callWhenRunning(run)
    reactor.run()
    globalLogPublisher.removeObserver(sink)
    if "error" in outcome:
        raise SystemExit(str(outcome["error"].value))
    result = outcome["result"]
    return float(result.stderr_tail[-1]), result.unlogged_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2_000_000, help="lines the child writes")
    n = parser.parse_args().n
    base = baseline(n)
    started = time.perf_counter()
    child, unlogged = through_runner(n)
    wall = time.perf_counter() - started
    size = n * 41 / 1e6
    print(f"child writing {n} lines ({size:.0f} MB): to /dev/null {base:.2f} s, "
          f"through the process runner {child:.2f} s (wall {wall:.2f} s); "
          f"{unlogged} lines counted, not logged")
    print(f"ratio runner/baseline: {child / base:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
