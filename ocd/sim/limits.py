"""The bounds of a made-up night, in one place.

``ocd sample_night`` checks its options against them before anything is
written (its parser imports this small module, not the generator), and
:mod:`ocd.sim.night` checks them again for its other callers. Without
them a typo (``--hours 1e6``, ``--heartbeat-hz inf``) ran until the memory
or the disk was full.
"""

from __future__ import annotations

#: The longest night, in hours (a night at the HET is 8 to 14 h).
MAX_HOURS = 24.0
#: The most events a night may have (a whole night at the TCS's rates is
#: about 90 thousand, the replay bench's big night a million).
MAX_EVENTS = 50_000_000
#: The fastest heartbeat and pointing streams, in Hz (the TCS sends 1 Hz).
MAX_RATE_HZ = 200.0
#: The shortest time between two guider metrology events, in seconds.
MIN_METROLOGY_INTERVAL = 0.01
#: The shortest time between two weather or shutter reports, in seconds: they
#: report a state, and the shutter's times are all held in memory at once.
MIN_REPORT_INTERVAL = 0.1
#: The longest time between two reports of any kind, in seconds: a night.
MAX_INTERVAL = MAX_HOURS * 3600.0
#: The years of the nights OCD makes up (--date, --start, --end): those of
#: astropy's Sun (ERFA's ephemeris holds from 1900 to 2100).
FIRST_YEAR, LAST_YEAR = 1900, 2099
