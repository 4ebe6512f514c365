"""Sample hetdex-shuffle output: one INI file and one ACAM image per shot.

The real files come from ``hetdex-shuffle`` at the observatory. These are
made up but have the same layout (shots.md section 1), so that ``ocd run``
and ``ocd run_shot`` can run a shot anywhere. Guider 1 sits at a fixed
offset from the target, which reproduces the example of shots.md section 3
for DEX00001 (ra 12.401733, dec 56.1464).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

from ocd.core.shuffle import TRACK_NAMES

DEFAULT_TEMPLATE = "HETcommands/{shotid}_{QIFU}_{track_initial}.cfg"
ACAM_TEMPLATE = "ACAMimages/{shotid}_{QIFU}_{track_initial}.jpg"
#: A tiny but well-formed-looking JPEG (start and end markers).
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"

# (section, ra offset in hours, dec offset in degrees)
_PROBES = (
    ("guider1", 0.002817, 0.0637),
    ("guider2", -0.002817, -0.0637),
    ("wfs1", 0.003100, -0.0600),
    ("wfs2", -0.003100, 0.0600),
)


def _seed(shotid: str, section: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{shotid}/{section}".encode()).digest()[:8], "big")


def _magnitudes(shotid: str, section: str) -> list[tuple[str, str]]:
    if section == "guider1":
        values = {"u": 18.2, "g": 16.9, "r": 16.1, "i": 15.8, "z": 15.6}
    else:
        seed = _seed(shotid, section)
        base = 14.0 + (seed % 400) / 100.0
        values = {"u": base + 1.3, "g": base + 0.8, "r": base, "i": base - 0.3, "z": 0.0}
        if section == "wfs2":
            values["i"] = 0.0  # no i magnitude: left out of the command
    return [(band, f"{value:.3f}") for band, value in values.items()]


def shuffle_text(shotid: str, ra: float, dec: float, track: int, qifu: str,
                 az: float | None = None) -> str:
    """The INI text of one shot's shuffle file (``track`` 0 EAST, 1 WEST)."""
    name = TRACK_NAMES[track]
    lines = ["[image]",
             "acam_output = " + ACAM_TEMPLATE.format(shotid=shotid, QIFU=qifu,
                                                     track_initial=name[0]),
             "", "[trajectory]"]
    if az is not None:
        lines.append(f"az = {az:.4f}")
    lines += [f"ra = {ra:.6f}", f"dec = {dec:.6f}", "equinox = 2000.0", f"dir = {name}", ""]
    for section, dra, ddec in _PROBES:
        catalog_id = 1237648702975934556 if section == "guider1" else (
            1237648700000000000 + _seed(shotid, section) % 10**9)
        lines += [f"[{section}]", f"id = SDSS:{catalog_id}",
                  f"ra = {ra + dra:.6f}", f"dec = {dec + ddec:.6f}",
                  "equinox = 2000.0", "trajectory = next"]
        lines += [f"{band} = {value}" for band, value in _magnitudes(shotid, section)]
        lines.append("")
    lines += ["[go_next]", "move_structure = true", "move_dome = true", "move_probes = true", ""]
    return "\n".join(lines)


def _field(shot: Any, *names: str) -> Any:
    for name in names:
        if hasattr(shot, name):
            return getattr(shot, name)
        if isinstance(shot, dict) and name in shot:
            return shot[name]
    raise AttributeError(f"shot {shot!r} has none of {names}")


def _qifu(shot: Any) -> str:
    metadata = getattr(shot, "metadata", None) or (shot.get("metadata") if isinstance(shot, dict) else None)
    if metadata and "QIFU" in metadata:
        return str(metadata["QIFU"])
    for name in ("qifu", "ifu", "QIFU"):
        try:
            return str(_field(shot, name))
        except AttributeError:
            continue
    return "000"


def write_shuffle_files(
    shots: Iterable[Any],
    shuffle_shot: str | os.PathLike[str],
    template: str = DEFAULT_TEMPLATE,
    az: float | None = None,
) -> list[Path]:
    """Write the shuffle file and ACAM image of every shot, on each of its tracks.

    ``shots`` may be :class:`ocd.core.shots.Shot`, :class:`ocd.sim.shotlist.SampleShot`
    or dicts with ``shotid``, ``ra``, ``dec``, ``track`` (2 = both) and
    ``QIFU`` (or ``metadata``). Returns the shuffle files written.
    """
    base = Path(shuffle_shot)
    written = []
    for shot in shots:
        shotid = str(_field(shot, "shotid"))
        ra = float(_field(shot, "ra", "ra_hours"))
        dec = float(_field(shot, "dec", "dec_deg"))
        track = int(_field(shot, "track"))
        qifu = _qifu(shot)
        for one in ((0, 1) if track == 2 else (track,)):
            initial = TRACK_NAMES[one][0]
            path = base / template.format(shotid=shotid, QIFU=qifu, track=one,
                                          track_initial=initial, track_name=TRACK_NAMES[one])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(shuffle_text(shotid, ra, dec, one, qifu, az=az), encoding="utf-8")
            image = base / ACAM_TEMPLATE.format(shotid=shotid, QIFU=qifu, track_initial=initial)
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(FAKE_JPEG)
            written.append(path)
    return written
