"""Named integer counters that the main loop owns.

Malformed events by kind, events by topic, dropped requests, decisions:
anything worth a number on a status or metrics page. A plain dict behind a
tiny interface, so a later metrics page reads ``snapshot()`` and nothing
else.
"""

from __future__ import annotations


class Counters:
    """Monotonic integer counters by name (``"malformed.bad_json"``)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    def increment(self, name: str, n: int = 1) -> int:
        """Add ``n`` to ``name`` (created at 0) and return the new value."""
        value = self._values.get(name, 0) + n
        self._values[name] = value
        return value

    def get(self, name: str) -> int:
        return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, sorted by name."""
        return dict(sorted(self._values.items()))

    def total(self, prefix: str) -> int:
        """Sum of the counters whose name starts with ``prefix``."""
        return sum(v for k, v in self._values.items() if k.startswith(prefix))
