"""Benchmark: reserving an observation number, and starting a child process.

Run: ``.venv/bin/python bench/obsnum.py [--n 200]``

Prints p50/p99 latency of ``ObsnumPool.reserve`` one after the other on
SQLite (a temporary file) and on MariaDB at 127.0.0.1:3306 (a temporary
database, skipped when the server is not there), and of
``ProcessRunner.run(['true'])`` from spawn to exit: the two actions that sit
between a decision and the first ``syscmd``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocd.config import Config  # noqa: E402


def _report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<32} n={len(samples):4d}  p50 {statistics.median(ordered) * 1e3:7.2f} ms"
          f"  p99 {p99 * 1e3:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()

    from twisted.internet import defer, reactor, task

    from ocd.services.obsnum import ObsnumPool
    from ocd.protocols.process import ProcessRunner

    async def time_reserve(config: Config, name: str) -> None:
        pool = ObsnumPool(config, reactor)
        pool.startService()
        try:
            samples = []
            for i in range(args.n):
                start = time.perf_counter()
                await pool.reserve(f"BENCH{i:05d}")
                samples.append(time.perf_counter() - start)
            _report(name, samples)
        finally:
            pool.stopService()

    async def run(_reactor) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            config = Config.load(None, [("database", "backend", "sqlite"),
                                        ("database", "sqlite_file", f"{tmp}/o.sqlite")])
            await time_reserve(config, "reserve (SQLite)")
        try:
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True,
                                   connect_timeout=2)
        except Exception as exc:
            print(f"reserve (MariaDB)                skipped: {exc}")
        else:
            name = f"ocd_bench_{uuid.uuid4().hex[:8]}"
            conn.cursor().execute(f"CREATE DATABASE `{name}`")
            try:
                config = Config.load(None, [("database", "backend", "mysql"),
                                            ("database", "database", name)])
                await time_reserve(config, "reserve (MariaDB)")
            finally:
                conn.cursor().execute(f"DROP DATABASE `{name}`")
                conn.close()
        runner = ProcessRunner(reactor)
        samples = []
        for _ in range(min(args.n, 100)):
            start = time.perf_counter()
            await runner.run(["true"], name="true", timeout=10)
            samples.append(time.perf_counter() - start)
        _report("spawn 'true' to exit", samples)

    task.react(lambda r: defer.ensureDeferred(run(r)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
