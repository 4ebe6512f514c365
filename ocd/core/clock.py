"""OCD's *now*: the telescope's time, the machine's, or a pinned one.

``[dates] clock = tcs``: the latest ``__data_time`` of a telescope event (from
an ``event_urls`` or ``ocd_db_replay`` URL), so that a replayed night is
decided as on that night; before the first such event, the machine's clock.
``[dates] clock = system``: the machine's clock. ``[dates] mock_time``
(ISO 8601, UTC when no zone is given, or epoch seconds) pins it.

A jump back in telescope time (a replay that starts over) is reported by
:meth:`OcdClock.observe` so that the main loop resets the time windows
(metrology averages) and logs it. Events of different sources arrive a
little out of order; a step back smaller than ``jump_tolerance`` is not a
jump, and the clock does not go back for it.

Silences and timeouts are *not* measured here: they run on the injected
monotonic clock (the reactor's, made monotonic in the daemons; shots.md
section 2), so a dead TCS is noticed although its time stands still and a
step of the wall clock moves no deadline. This holder does no I/O and reads no clock: the machine's time
is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, TypeVar

from ocd.core.events import parse_time

T = TypeVar("T")


class ClockOptions(Protocol):
    """What :meth:`OcdClock.from_config` reads of a configuration (``ocd.config.Config``)."""

    def get_choice(self, section: str, option: str, choices: Iterable[str]) -> str: ...
    def convert(self, section: str, option: str, kind: str, convert: Callable[[str], T]) -> T: ...


TCS = "tcs"
SYSTEM = "system"
#: A step back in telescope time larger than this (s) is a jump back.
DEFAULT_JUMP_TOLERANCE = 60.0


#: What ``[dates] mock_time`` holds, for the error about a value that is not one.
MOCK_TIME_KIND = "ISO 8601 or epoch seconds"


#: The times ``[dates] mock_time`` may set (epoch s): 1970 to the end of
#: 2199. OCD turns its time into a night's date and the Sun's place; 1e308 or
#: year 1 failed on every decision (and wrote a night log of no night).
MOCK_TIME_RANGE = (0.0, 7258118400.0)


def parse_mock_time(text: str) -> float | None:
    """``[dates] mock_time``: empty -> None, else epoch seconds (ValueError if bad)."""
    text = text.strip()
    if not text:
        return None
    value = parse_time(text)
    if not MOCK_TIME_RANGE[0] <= value < MOCK_TIME_RANGE[1]:
        raise ValueError(f"{text!r} is not a time from 1970 to 2199")
    return value


@dataclass(frozen=True)
class JumpBack:
    """Telescope time went back from ``old`` to ``new`` (epoch s)."""

    old: float
    new: float

    def describe(self) -> str:
        return f"telescope time jumped back by {self.old - self.new:.0f} s: time windows reset"


class OcdClock:
    """Holds OCD's time; fed by telescope events, asked with the machine's time."""

    def __init__(self, mode: str = TCS, mock_time: float | None = None,
                 jump_tolerance: float = DEFAULT_JUMP_TOLERANCE):
        if mode not in (TCS, SYSTEM):
            raise ValueError(f"clock mode {mode!r}: expected 'tcs' or 'system'")
        self.mode = mode
        self.mock_time = mock_time
        self.jump_tolerance = jump_tolerance
        self.tcs_time: float | None = None

    @classmethod
    def from_config(cls, config: ClockOptions) -> "OcdClock":
        mode = config.get_choice("dates", "clock", (TCS, SYSTEM))
        return cls(mode, config.convert("dates", "mock_time", MOCK_TIME_KIND, parse_mock_time))

    def observe(self, data_time: float) -> JumpBack | None:
        """A telescope event's ``__data_time``; returns a :class:`JumpBack` when
        time went back by more than the tolerance (the clock follows it)."""
        latest = self.tcs_time
        if latest is None or data_time >= latest:
            self.tcs_time = data_time
            return None
        if latest - data_time > self.jump_tolerance:
            self.tcs_time = data_time
            return JumpBack(latest, data_time)
        return None  # a little out of order: keep the latest

    def now(self, system_now: float) -> float:
        """OCD's time, given the machine's time now."""
        if self.mock_time is not None:
            return self.mock_time
        if self.mode == TCS and self.tcs_time is not None:
            return self.tcs_time
        return system_now

    def describe(self) -> str:
        if self.mock_time is not None:
            return f"pinned at {self.mock_time}"
        if self.mode == TCS:
            return "telescope time" if self.tcs_time is not None else "machine time until the first telescope event"
        return "machine time"
