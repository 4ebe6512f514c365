"""OCD's clock: tcs, system, mock_time, jump back (shots.md section 2)."""

from __future__ import annotations

import pytest

from ocd.core.clock import JumpBack, OcdClock, parse_mock_time
from ocd.config import Config, ConfigError


def test_tcs_clock_follows_the_telescope_and_falls_back_to_the_machine():
    clock = OcdClock("tcs")
    assert clock.now(system_now=99.0) == 99.0  # before the first TCS event
    assert clock.observe(1000.0) is None
    assert clock.now(system_now=99.0) == 1000.0
    assert clock.observe(1010.0) is None
    assert clock.now(5.0) == 1010.0


def test_small_steps_back_are_ignored_large_ones_reported():
    clock = OcdClock("tcs", jump_tolerance=60.0)
    clock.observe(1000.0)
    assert clock.observe(950.0) is None  # a little out of order
    assert clock.now(0.0) == 1000.0
    jump = clock.observe(100.0)  # the replay started over
    assert jump == JumpBack(1000.0, 100.0)
    assert "jumped back by 900 s" in jump.describe()
    assert clock.now(0.0) == 100.0
    assert clock.observe(101.0) is None


def test_system_clock_ignores_the_telescope():
    clock = OcdClock("system")
    clock.observe(1000.0)
    assert clock.now(system_now=42.0) == 42.0


def test_mock_time_pins_the_clock():
    clock = OcdClock("tcs", mock_time=1526371200.0)
    clock.observe(5.0)
    assert clock.now(1.0) == 1526371200.0


@pytest.mark.parametrize(
    "text, value",
    [("2018-05-15T08:00:00", 1526371200.0), ("2018-05-15T03:00:00-05:00", 1526371200.0),
     ("1526371200", 1526371200.0), ("1526371200.5", 1526371200.5), ("", None)],
)
def test_mock_time_formats(text, value):
    assert parse_mock_time(text) == value


def test_from_config_and_bad_mock_time():
    config = Config.load(overrides=[("dates", "mock_time", "2018-05-15T08:00:00"), ("dates", "clock", "system")])
    clock = OcdClock.from_config(config)
    assert (clock.mode, clock.now(0.0)) == ("system", 1526371200.0)
    assert OcdClock.from_config(Config.load()).mock_time is None
    with pytest.raises(ConfigError, match="mock_time"):
        Config.load(overrides=[("dates", "mock_time", "yesterday")])
    with pytest.raises(ValueError):
        OcdClock("sundial")
