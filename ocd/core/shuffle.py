"""hetdex-shuffle's output for one shot, and the ``syscmd`` texts made from it.

For every shot ``hetdex-shuffle`` writes an INI file (shots.md section 1)::

    [image]       acam_output
    [trajectory]  az (optional), ra, dec, equinox, dir
    [guider1] [guider2] [wfs1] [wfs2]
                  id, ra, dec, equinox, trajectory, u g r i z (optional)
    [go_next]     move_structure, move_dome, move_probes

:func:`setup_commands` turns it into the telescope set-up commands of shots.md
section 3, in order, each a function call with keyword arguments. Values are
copied as they are written in the file: one that is written as a JSON number
goes bare (``dec=56.146400``), anything else in double quotes, booleans too
(``move_dome="true"``), and ``"000"`` stays text (``QIFU="000"``).

Everything here is pure apart from :func:`read_shuffle` and
:func:`shuffle_path` (which may look at the folder when the IFU slot is not
known).
"""

from __future__ import annotations

import configparser
import glob
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

TRACK_NAMES = {0: "EAST", 1: "WEST"}
PROBES = (("guider1", "Guider1"), ("guider2", "Guider2"), ("wfs1", "WFS1"), ("wfs2", "WFS2"))
MAGNITUDES = ("u", "g", "r", "i", "z")
#: Magnitudes handed to ``*_SetObjectAndMagnitudes`` (when above zero).
OBJECT_MAGNITUDES = ("g", "r", "i")

REQUIRED: dict[str, tuple[str, ...]] = {
    "image": ("acam_output",),
    "trajectory": ("ra", "dec", "equinox", "dir"),
    **{section: ("id", "ra", "dec", "equinox", "trajectory") for section, _ in PROBES},
    "go_next": ("move_structure", "move_dome", "move_probes"),
}

#: Keys that must be numbers, with the range they must lie in (ra in hours).
NUMERIC: dict[str, tuple[float, float]] = {
    "ra": (0.0, 24.0), "dec": (-90.0, 90.0), "equinox": (-math.inf, math.inf),
    "az": (-1.0, 360.0),
}
_NUMERIC_SECTIONS = ("trajectory",) + tuple(section for section, _ in PROBES)

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_KEYWORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_IFU_SLOT = "\x00QIFU\x00"


class ShuffleError(Exception):
    """A shuffle file that is missing, unreadable or incomplete (fails the shot)."""


@dataclass(frozen=True)
class ShuffleFile:
    """One shuffle file: its sections, each with its keys in file order."""

    path: Path
    sections: Mapping[str, tuple[tuple[str, str], ...]]

    def items(self, section: str) -> tuple[tuple[str, str], ...]:
        return self.sections.get(section, ())

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        for name, value in self.items(section):
            if name == key:
                return value
        return default

    @property
    def acam_output(self) -> str:
        return self.get("image", "acam_output") or ""


def track_placeholders(track: int) -> dict[str, Any]:
    name = TRACK_NAMES[track]
    return {"track": track, "track_name": name, "track_initial": name[0]}


def shuffle_path(
    shuffle_shot: str | os.PathLike[str],
    template: str,
    shotid: str,
    qifu: str | None,
    track: int,
) -> Path:
    """Where the shuffle file of a shot is.

    With ``qifu`` None (``ocd run_shot`` without ``QIFU`` metadata) the one
    file that matches the template with any IFU slot; none or several is a
    :class:`ShuffleError`.
    """
    if track not in TRACK_NAMES:
        raise ShuffleError(f"track {track!r} is neither 0 (EAST) nor 1 (WEST)")
    values = dict(track_placeholders(track), shotid=shotid,
                  QIFU=_IFU_SLOT if qifu is None else qifu)
    try:
        relative = template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ShuffleError(
            f"[paths] shuffle_conf_template {template!r}: bad placeholder {exc}; known: "
            "{shotid} {QIFU} {track} {track_initial} {track_name}"
        ) from None
    base = os.fspath(shuffle_shot)
    if qifu is not None or _IFU_SLOT not in relative:
        return Path(base) / relative
    pattern = os.path.join(glob.escape(base), glob.escape(relative).replace(_IFU_SLOT, "*"))
    matches = sorted(glob.glob(pattern))
    shown = pattern.replace("*", "{QIFU}")
    if not matches:
        raise ShuffleError(f"no shuffle file for shot {shotid} matches {shown} (any IFU slot)")
    if len(matches) > 1:
        raise ShuffleError(
            f"{len(matches)} shuffle files for shot {shotid} match {shown}: "
            f"{', '.join(matches)}; give QIFU in --metadata to pick one"
        )
    return Path(matches[0])


def read_shuffle(path: str | os.PathLike[str]) -> ShuffleFile:
    """Read and check one shuffle file; :class:`ShuffleError` says what is wrong."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_defaults__")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ShuffleError(f"shuffle file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ShuffleError(f"cannot read shuffle file {path}: {exc}") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ShuffleError(f"shuffle file {path} is not a valid INI file: {exc}") from None
    sections = {
        name: tuple((key, parser.get(name, key).strip()) for key in parser.options(name))
        for name in parser.sections()
    }
    for section, keys in REQUIRED.items():
        if section not in sections:
            raise ShuffleError(f"shuffle file {path} is incomplete: no section [{section}]")
        present = {key for key, value in sections[section] if value != ""}
        missing = [key for key in keys if key not in present]
        if missing:
            raise ShuffleError(
                f"shuffle file {path} is incomplete: section [{section}] lacks "
                + ", ".join(missing)
            )
    for section in _NUMERIC_SECTIONS:
        for key, value in sections[section]:
            if key in NUMERIC:
                _check_number(path, section, key, value)
    return ShuffleFile(path=path, sections=sections)


def _check_number(path: Path, section: str, key: str, value: str) -> None:
    """Coordinates go bare into ``syscmd`` command lines: they must be numbers."""
    low, high = NUMERIC[key]
    if not _JSON_NUMBER.match(value):
        raise ShuffleError(f"shuffle file {path}: [{section}] {key} = {value!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ShuffleError(f"shuffle file {path}: [{section}] {key} = {value} is out of range "
                           f"({low:g} to {high:g})")


def format_value(value: Any) -> str:
    """One keyword value: a JSON number bare, as written; anything else quoted."""
    if isinstance(value, bool):
        return _quote("true" if value else "false")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _quote(str(value))
    if value is None:
        return _quote("null")
    if isinstance(value, str):
        text = value.strip()
        return text if _JSON_NUMBER.match(text) else _quote(text)
    return _quote(json.dumps(value))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def call(name: str, arguments: list[tuple[str, Any]]) -> str:
    """``name(key=value, ...)`` with values formatted by :func:`format_value`."""
    return f"{name}({', '.join(f'{key}={format_value(value)}' for key, value in arguments)})"


def syscmd_switch(command: str) -> str:
    """``-p`` for ``*_SetObjectAndMagnitudes``, ``-T`` for the others."""
    return "-p" if command.split("(", 1)[0].endswith("_SetObjectAndMagnitudes") else "-T"


def _above_zero(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and number > 0


def _no_az(value: Any) -> bool:
    if value is None:
        return True
    try:
        return float(value) == -1
    except (TypeError, ValueError):
        return False


def setup_commands(
    shuffle: ShuffleFile,
    *,
    track: int,
    metadata: Mapping[str, Any],
    forced_az: Any = -1,
    azimuth_arg: Any = None,
) -> list[str]:
    """The ``syscmd`` command texts of the set-up, in the order of shots.md 3.3.

    ``az`` of ``load_trajectory``: ``forced_az`` when it is not -1, else
    ``azimuth_arg`` when given, else the file's own ``az`` when present; it
    always comes first. A ``dir`` that contradicts ``track`` is an error.
    """
    if track not in TRACK_NAMES:
        raise ShuffleError(f"track {track!r} is neither 0 (EAST) nor 1 (WEST)")
    commands: list[str] = []
    if metadata:
        for key in metadata:
            if not _KEYWORD.match(str(key)):
                raise ShuffleError(f"metadata key {key!r} cannot be a keyword of set_metadata")
        commands.append(call("set_metadata", list(metadata.items())))

    trajectory = list(shuffle.items("trajectory"))
    direction = (shuffle.get("trajectory", "dir") or "").strip().upper()
    if direction != TRACK_NAMES[track]:
        raise ShuffleError(
            f"shuffle file {shuffle.path}: [trajectory] dir = {direction or '(empty)'} "
            f"contradicts the shot's track {track} ({TRACK_NAMES[track]})"
        )
    az: Any = shuffle.get("trajectory", "az")
    if not _no_az(forced_az):
        az = forced_az
    elif azimuth_arg is not None:
        az = azimuth_arg
    arguments = [(k, v) for k, v in trajectory if k != "az"]
    if az is not None:
        arguments.insert(0, ("az", az))
    commands.append(call("load_trajectory", arguments))

    for section, name in PROBES:
        args = [(k, v) for k, v in shuffle.items(section) if k != "id" and k not in MAGNITUDES]
        commands.append(call(f"{name}_set_position", args))
    for section, name in PROBES:
        args: list[tuple[str, Any]] = [("object", shuffle.get(section, "id"))]
        for band in OBJECT_MAGNITUDES:
            value = shuffle.get(section, band)
            if value is not None and _above_zero(value):
                args.append((band, value))
        commands.append(call(f"{name}_SetObjectAndMagnitudes", args))
    commands.append(call("go_next", list(shuffle.items("go_next"))))
    return commands
