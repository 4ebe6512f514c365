"""How long ``make test`` takes here, and how fast this machine is while it runs.

The suite's wall time follows its CPU (about CPU / 2 + 5 s on two cores),
and the CPU a second buys changes with the machine: the same suite used
81 s of CPU on one of our 2-core machines and 140 to 175 s on another, and
within one afternoon a fixed Python loop took 0.75 s and 1.31 s. A figure
of seconds alone cannot say whether a change made the suite cheaper, so
this prints it with a baseline measured in the same run: a fixed loop of
pure Python (the kind of work most of the suite's CPU is: imports, parsing,
the main loop), timed before and after the suite and sampled every 2 s
while it runs (a slice of 2 % of the loop each time, about 1 % of one
core): the ratio ``suite CPU / loop seconds`` (the loop's median during the
run) is the suite's cost in "loops", which compares two machines better
than seconds do. It is only as good as those samples follow the machine:
on our shared 2-core machines one sample took 0.36 to 0.82 s within a run,
and the loop timed only before and after gave 236 to 315 "loops" for three
runs of one commit; with the samples, two runs of one commit gave 250 and
248 while their wall time went from 82.5 to 87.9 s. To compare two commits,
run this in a work tree of each, alternately, and compare the means.

    .venv/bin/python bench/suite.py [--jobs N] [-- pytest arguments]

It runs ``make test`` (with ``PYTEST_ARGS=-q``), so the figures are the
README's command's; the CPU is that of ``make`` and everything it waited
for (``RUSAGE_CHILDREN``): pytest-xdist's controller and workers, and every
``ocd`` and stand-in they started.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOP = 10_000_000


def additions(count: int) -> float:
    """CPU seconds this thread takes to add up ``count`` integers: the loop."""
    began = time.thread_time()
    total = 0
    for i in range(count):
        total += i
    return time.thread_time() - began


def loop_seconds(rounds: int = 3) -> float:
    """CPU seconds of the whole loop (:data:`LOOP` additions), best of ``rounds``."""
    return min(additions(LOOP) for _ in range(rounds))


def sample_during(stop: threading.Event, samples: list[float], every: float = 2.0) -> None:
    """Time a slice of :data:`LOOP` every ``every`` seconds until ``stop``, scaled to the whole loop."""
    while not stop.wait(every):
        samples.append(additions(LOOP // 50) * 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", help="TEST_JOBS for make test (default: the Makefile's)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    before = loop_seconds()
    command = ["make", "-s", "test", "PYTEST_ARGS=" + " ".join(["-q", *args.pytest_args])]
    if args.jobs:
        command.append(f"TEST_JOBS={args.jobs}")
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_during, args=(stop, samples), daemon=True)
    began = time.monotonic()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.start()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - began
    stop.set()
    sampler.join()
    after = loop_seconds()
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    loop = statistics.median(samples) if samples else (before + after) / 2
    print(f"make test: {summary}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (user + system, all processes)")
    spread = f", {min(samples):.2f} to {max(samples):.2f} s" if samples else ""
    print(f"baseline: {LOOP:,} additions took {before:.2f} s before, {after:.2f} s after, "
          f"{loop:.2f} s during (median of {len(samples)}{spread})")
    print(f"ratio: suite CPU / loop = {cpu / loop:.0f} loops; wall / loop = {wall / loop:.0f}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
