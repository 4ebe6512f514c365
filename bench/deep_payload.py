"""Benchmark: refusing a deeply nested payload, as a flood of them would arrive.

Run: ``.venv/bin/python bench/deep_payload.py``

A TCS (or anyone who can reach its port) may send payloads nested far
deeper than any event needs; :func:`ocd.core.events.parse_frames` refuses
them as ``too_deep`` before decoding. Prints the time to refuse one payload
100 thousand levels deep (200 kB) and, as the baseline measured in the
same run, the time to refuse a payload of the same size that is plainly not
JSON (orjson stops at its first byte), and their ratio. A depth check that
reads the whole text shows as a ratio over 100; one that stops once it is
past the limit stays near one (``_text_depth`` reads the frame's bytes up to
the 33rd bracket; when it listed every bracket first, a payload took 23 ms
here, a ratio of 124).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocd.core.events import MalformedEvent, parse_frames  # noqa: E402

TOPIC = b"tcs.flood.deep"
DEEP = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NOT_JSON = b"x" + b" " * (len(DEEP) - 1)


def per_payload(body: bytes, expected: str, rounds: int = 500) -> float:
    """Seconds to refuse ``body`` once (best of three batches of ``rounds``)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(rounds):
            try:
                parse_frames([TOPIC, body])
            except MalformedEvent as exc:
                assert exc.kind == expected, exc
        best = min(best, (time.perf_counter() - began) / rounds)
    return best


def main(report: Callable[[str], None] = print) -> int:
    deep = per_payload(DEEP, "too_deep")
    baseline = per_payload(NOT_JSON, "bad_json")
    report(f"deep payload ({len(DEEP) / 1000:.0f} kB): refused in {deep * 1e3:.3f} ms")
    report(f"baseline, not JSON, same size:   refused in {baseline * 1e3:.3f} ms")
    report(f"ratio deep / baseline: {deep / baseline:.1f} (a check that reads the whole text: over 100)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
