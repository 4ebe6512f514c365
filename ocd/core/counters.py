"""Named integer counters that the main loop owns, and bounded families of them.

Malformed events by kind, events by topic, dropped requests, decisions:
anything worth a number on a status or metrics page. A plain dict behind a
tiny interface, so a later metrics page reads ``snapshot()`` and nothing
else.

Names that come from the wire (a topic, a URL) would let a sender grow the
dict without bound: 1.8 M unique topics took 440 MB. :class:`BoundedNames`
keeps a fixed number of such names per family and counts the rest together
under ``<family>.other``; :class:`RateLimitedWarnings` does the same for the
"once per kind per minute" warnings, so a flood of unique topics writes a
bounded number of lines.
"""

from __future__ import annotations

from typing import Any, Callable

#: Distinct wire-given names kept per family before the rest share ``.other``.
MAX_NAMES = 256
#: The shared name of everything past :data:`MAX_NAMES` in a family.
OTHER = "other"


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


class BoundedNames:
    """Maps wire-given names to counter names, at most ``limit`` of them.

    ``name("tcs.root.ra_dec")`` is ``"topic.tcs.root.ra_dec"`` for the first
    ``limit`` distinct names and ``"topic.other"`` for every later one; the
    mapping is cached (the hot path pays one dict lookup), and the cache
    never holds more than ``limit`` entries.
    """

    def __init__(self, family: str, limit: int = MAX_NAMES) -> None:
        self.family = family
        self.limit = limit
        self.other = f"{family}.{OTHER}"
        self._names: dict[str, str] = {}

    def name(self, wire_name: str) -> str:
        found = self._names.get(wire_name)
        if found is not None:
            return found
        if len(self._names) >= self.limit:
            return self.other
        found = self._names[wire_name] = f"{self.family}.{wire_name}"
        return found

    def __len__(self) -> int:
        return len(self._names)


class RateLimitedWarnings:
    """One warning per key per ``every`` seconds, the rest counted and reported.

    At most ``limit`` keys are remembered; later keys share one slot
    (``other``), so unique keys from the wire cannot grow memory or the log
    without bound. ``emit(message, suppressed=N, **fields)`` writes the line
    (``suppressed`` is how many were held back since the last one).
    """

    def __init__(self, every: float, emit: Callable[..., None], limit: int = MAX_NAMES) -> None:
        self.every = every
        self.limit = limit
        self._emit = emit
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, now: float, fmt: str, **fields: Any) -> bool:
        """Warn now unless ``key`` warned less than ``every`` s ago; True if written."""
        if key not in self._last and len(self._last) >= self.limit:
            key = OTHER
        last, suppressed = self._last.get(key, (None, 0))
        if last is not None and now - last < self.every:
            self._last[key] = (last, suppressed + 1)
            return False
        self._last[key] = (now, 0)
        self._emit(fmt + " ({suppressed} similar ones not logged)", suppressed=suppressed,
                   **fields)
        return True

    def __len__(self) -> int:
        return len(self._last)
