"""Sample shot lists whose targets really cross the HET's elevation tonight.

A made-up shot list is useless for a simulated night if its targets never
reach 55 degrees while it is dark. Here each shot is placed so that it
crosses the fixed elevation at a chosen time of the night, on the east
(rising) or west (setting) side: given the declination, the hour angle at
which the altitude equals the HET elevation follows from the spherical
triangle, and the right ascension is the local sidereal time minus it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from ocd.core.site import HET_ELEVATION, HET_LATITUDE, HET_LONGITUDE

#: Declinations that reach the HET elevation (with a margin at both ends).
DEC_RANGE = (0.0, 62.0)

HEADER = (
    "# shotid ra dec track priority n_obs forced_az QIDX QPROG QOBJECT QIFU "
    "QRA QDEC QEQUINOX QPMRA QPMDEC QEPOCH\n"
)


@dataclass(frozen=True)
class SampleShot:
    shotid: str
    ra_hours: float
    dec_deg: float
    track: int
    priority: int
    n_obs: int
    ifu: str
    crossing: float

    def line(self, index: int) -> str:
        ra_h = int(self.ra_hours)
        ra_m = int((self.ra_hours - ra_h) * 60)
        ra_s = ((self.ra_hours - ra_h) * 60 - ra_m) * 60
        sign = "+" if self.dec_deg >= 0 else "-"
        dec = abs(self.dec_deg)
        dec_d = int(dec)
        dec_m = int((dec - dec_d) * 60)
        dec_s = ((dec - dec_d) * 60 - dec_m) * 60
        return (
            f"{self.shotid} {self.ra_hours:.6f} {self.dec_deg:.6f} {self.track} "
            f"{self.priority} {self.n_obs} -1 {89 + index} HET26-3-400 HS{index:04d}_E "
            f"{self.ifu} {ra_h:02d}:{ra_m:02d}:{ra_s:05.2f} {sign}{dec_d:02d}:{dec_m:02d}:{dec_s:05.2f} "
            "2000 0.0 0.0 2000\n"
        )


def hour_angle_at_elevation(dec_deg: float, latitude: float = HET_LATITUDE,
                            elevation: float = HET_ELEVATION) -> float:
    """Hour angle (hours, >= 0) at which a declination crosses ``elevation``."""
    phi, dec, alt = (math.radians(v) for v in (latitude, dec_deg, elevation))
    cos_h = (math.sin(alt) - math.sin(phi) * math.sin(dec)) / (math.cos(phi) * math.cos(dec))
    if not -1.0 <= cos_h <= 1.0:
        raise ValueError(f"declination {dec_deg} never reaches {elevation} deg")
    return math.degrees(math.acos(cos_h)) / 15.0


def local_sidereal_hours(epochs: Sequence[float]) -> list[float]:
    """Apparent local sidereal time at the HET, in hours (astropy, offline)."""
    import ocd.core.astro  # noqa: F401  (configures astropy for offline use first)
    from astropy import units as u
    from astropy.time import Time

    times = Time(list(epochs), format="unix", scale="utc")
    lst = times.sidereal_time("apparent", longitude=HET_LONGITUDE * u.deg)
    return [float(v) for v in lst.hour]


def make_sample_shots(start: float, end: float, count: int, seed: int = 1) -> list[SampleShot]:
    """``count`` shots crossing the HET elevation between ``start`` and ``end``.

    Crossing times are spread over the night with a little jitter; tracks,
    priorities and IFU slots are drawn from ``seed`` so the list is
    reproducible.
    """
    rng = random.Random(seed)
    span = end - start
    crossings = sorted(
        start + span * (i + 0.5 + rng.uniform(-0.3, 0.3)) / count for i in range(count)
    )
    lsts = local_sidereal_hours(crossings)
    shots = []
    for i, (crossing, lst) in enumerate(zip(crossings, lsts)):
        dec = rng.uniform(*DEC_RANGE)
        track = rng.choice((0, 1))
        ha = hour_angle_at_elevation(dec)
        # Be inside the band for the whole shot: cross the elevation a little
        # before the middle of the planned window.
        ha = -ha if track == 0 else ha
        ra = (lst - ha) % 24.0
        shots.append(
            SampleShot(
                shotid=f"DEX{i + 1:05d}",
                ra_hours=ra,
                dec_deg=dec,
                track=rng.choice((track, 2)),
                priority=rng.choice((1, 1, 2, 3)),
                n_obs=1,
                ifu=f"{rng.randrange(0, 100):03d}",
                crossing=crossing,
            )
        )
    return shots


def shot_list_text(shots: Sequence[SampleShot]) -> str:
    return HEADER + "".join(shot.line(i) for i, shot in enumerate(shots))
