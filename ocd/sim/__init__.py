"""Simulation: sample nights, stand-in programs and the simulated night."""

#: The night ``ocd sample_night`` and ``ocd simulate_night`` make by default: a
#: recent winter night; long, so a whole night is about 90 thousand events.
#: Here, not in :mod:`ocd.sim.night`, so that building ``ocd``'s argument
#: parser (every command, every start) does not import the generator.
DEFAULT_DATE = "2025-02-20"
