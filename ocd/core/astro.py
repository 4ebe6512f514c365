"""The one place that sets astropy up for an observatory that is offline.

Import this module before any ``astropy.time.Time`` is built (every module of
OCD that computes positions imports its names from here). OCD never
downloads anything at run time, so:

- ``iers.conf.auto_download = False``: use the IERS tables bundled with
  astropy (``astropy-iers-data``), never fetch newer ones;
- ``iers.conf.auto_max_age = None``: without it, a date more than 30 days
  past the bundled predictions raises ``ValueError`` even offline;
- ``iers.conf.iers_degraded_accuracy = "warn"``: past the tables astropy
  extrapolates and warns instead of raising (the error, well below an
  arcsecond for sidereal time within a few years, is far below the
  scheduler's tolerance of 0.1 deg);
- ``astropy.utils.data.conf.allow_internet = False``.

The accuracy warnings are shown once per process, not once per call: the
scheduler computes positions on every rebuild and a log full of the same
warning hides the lines that matter.
"""

from __future__ import annotations

import re
import warnings

import astropy.units as u
import astropy.utils.data
from astropy.coordinates import EarthLocation
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning
from erfa import ErfaWarning

from ocd.core.site import HET_HEIGHT, HET_LATITUDE, HET_LONGITUDE

iers.conf.auto_download = False
iers.conf.auto_max_age = None
iers.conf.iers_degraded_accuracy = "warn"
astropy.utils.data.conf.allow_internet = False

# Accuracy warnings of astropy and erfa, shown once per process.
_ONCE_CATEGORIES: tuple[type[Warning], ...] = (AstropyWarning, ErfaWarning)
_seen: set[tuple[type[Warning], str]] = set()
for _category in _ONCE_CATEGORIES:
    # "once": once per distinct text, for code that does not go through
    # quiet_repeats() below.
    warnings.filterwarnings("once", category=_category)


def _key(item: warnings.WarningMessage) -> tuple[type[Warning], str]:
    # Some messages carry the date or a count; digits do not make a new warning.
    return item.category, re.sub(r"[0-9.:-]+", "#", str(item.message))


class quiet_repeats:
    """Context manager around vectorised computations: each astropy or erfa
    accuracy warning reaches the log once per process, later ones are dropped.
    Other warnings pass through unchanged.
    """

    def __enter__(self) -> "quiet_repeats":
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: object) -> None:
        caught = list(self._caught)
        self._catcher.__exit__(*exc)
        for item in caught:
            if issubclass(item.category, _ONCE_CATEGORIES):
                key = _key(item)
                if key in _seen:
                    continue
                _seen.add(key)
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


#: The Hobby-Eberly Telescope, McDonald Observatory (shots.md section 2).
HET_LOCATION = EarthLocation.from_geodetic(
    lon=HET_LONGITUDE * u.deg, lat=HET_LATITUDE * u.deg, height=HET_HEIGHT * u.m
)