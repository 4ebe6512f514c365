"""Benchmark: generating a whole sample night (what ``make demo`` and the e2e tests replay).

Run: ``.venv/bin/python bench/sample_night.py``

Prints the wall time of ``generate_night`` for a whole night (seed 0), its
event rate, and the ratio to a baseline measured in the same run: writing
the same rows into a fresh SQLite file with ``executemany`` (the floor of
any generator that writes this schema). This figure used to be a timed
assertion (< 15 s) in tests/test_sample_night.py, which failed whenever the
shared machine was loaded; a performance target belongs here.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocd.sim.night import INDEX, SCHEMA, generate_night  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = generate_night(Path(tmp) / "night.db", seed=0)
        took = time.perf_counter() - began
        with sqlite3.connect(summary.path) as conn:
            events = conn.execute("SELECT event_id, topic FROM events").fetchall()
            data = conn.execute("SELECT event_id, key, value FROM event_data").fetchall()
        began = time.perf_counter()
        copy = sqlite3.connect(Path(tmp) / "copy.db", isolation_level=None)
        copy.execute("PRAGMA journal_mode=OFF")
        copy.execute("PRAGMA synchronous=OFF")
        copy.executescript(SCHEMA)
        copy.execute("BEGIN")
        copy.executemany("INSERT INTO events VALUES (?, ?)", events)
        copy.executemany("INSERT INTO event_data VALUES (?, ?, ?)", data)
        copy.execute(INDEX)
        copy.execute("COMMIT")
        copy.close()
        floor = time.perf_counter() - began
    print(f"whole night (seed 0)      {summary.events:7d} events  {took:6.2f} s"
          f"  {summary.events / took:8.0f} events/s")
    print(f"baseline: same rows, executemany       {floor:6.2f} s"
          f"  ratio generator/baseline {took / floor:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
