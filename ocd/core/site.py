"""Where the Hobby-Eberly Telescope is, and the elevation it always points at.

Plain numbers, defined once: the scheduler (through astropy's
``EarthLocation`` in :mod:`ocd.core.astro`), the orchestrator's track
azimuth and the simulated nights all read them from here (shots.md section 2).
"""

from __future__ import annotations

#: McDonald Observatory, deg north.
HET_LATITUDE = 30.681436
#: deg east (west is negative).
HET_LONGITUDE = -104.014722
#: Height above sea level, m.
HET_HEIGHT = 2026.0
#: The HET's fixed elevation (altitude angle of its primary), deg.
HET_ELEVATION = 55.055
