"""The shot list: parsing it, and keeping what is left to observe.

A shot list is plain text, one shot per line, 17 whitespace-separated
columns (docs: shots.md section 1)::

    shotid ra dec track priority n_obs forced_az QIDX QPROG QOBJECT QIFU QRA QDEC QEQUINOX QPMRA QPMDEC QEPOCH

A malformed line rejects the whole file, with an error that names the file,
the line and the column: a half-read shot list is worse than none (OCD then
runs with no shots, ``no_target``, and reads the file again when it changes).

The remaining ``n_obs`` of each shot lives in
:class:`ocd.services.shot_store.ShotStore` (SQLite): parsing stays pure.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping

METADATA_COLUMNS: tuple[str, ...] = (
    "QIDX", "QPROG", "QOBJECT", "QIFU", "QRA", "QDEC", "QEQUINOX", "QPMRA", "QPMDEC", "QEPOCH",
)
COLUMNS: tuple[str, ...] = (
    "shotid", "ra", "dec", "track", "priority", "n_obs", "forced_az",
) + METADATA_COLUMNS

EAST, WEST, EITHER = 0, 1, 2
TRACK_NAMES = {EAST: "EAST", WEST: "WEST"}
#: The shotid is stored in vl_obsnum.shotid, a VARCHAR(32).
MAX_SHOTID = 32


@dataclass(frozen=True)
class Shot:
    """One line of the shot list. ``ra`` in hours, ``dec`` in degrees."""

    shotid: str
    ra: float
    dec: float
    track: int
    priority: int
    n_obs: int
    forced_az: float
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tracks(self) -> tuple[int, ...]:
        """The tracks this shot may be observed on (0 EAST, 1 WEST)."""
        return (EAST, WEST) if self.track == EITHER else (self.track,)

    def with_n_obs(self, n_obs: int) -> "Shot":
        return replace(self, n_obs=n_obs)


class ShotListError(ValueError):
    """A shot list that cannot be used; says which file, line and column."""

    def __init__(self, message: str, name: str = "", line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.name = name
        self.line = line
        self.column = column


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _integer(text: str) -> int:
    return int(text, 10)


def _check_ra(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value < 24.0:
        raise ValueError("must be in hours, 0 <= ra < 24")
    return value


def _check_dec(text: str) -> float:
    value = _number(text)
    if not -90.0 <= value <= 90.0:
        raise ValueError("must be in degrees, -90 <= dec <= 90")
    return value


def _check_track(text: str) -> int:
    value = _integer(text)
    if value not in (EAST, WEST, EITHER):
        raise ValueError("must be 0 (EAST), 1 (WEST) or 2 (either)")
    return value


def _check_nonneg_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _check_az(text: str) -> float:
    value = _number(text)
    if value != -1 and not 0.0 <= value <= 360.0:
        raise ValueError("must be -1 (none) or an azimuth 0 to 360 deg")
    return value


#: A shot id is a plain name: it becomes part of file names (the shuffle
#: file, data folders) and of command lines, so no path separators, no
#: leading dot or dash, no quotes or shell characters.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


def _check_shotid(text: str) -> str:
    if len(text) > MAX_SHOTID:
        raise ValueError(f"is longer than {MAX_SHOTID} characters")
    if not _PLAIN_NAME.match(text):
        raise ValueError("is not a plain name (letters, digits and _ . + -, not starting "
                         "with . + or -; no / or other characters)")
    return text


_CHECKS: dict[str, tuple[Callable[[str], object], str]] = {
    "shotid": (_check_shotid, "a shot name"),
    "ra": (_check_ra, "a number"),
    "dec": (_check_dec, "a number"),
    "track": (_check_track, "an integer"),
    "priority": (_check_nonneg_int, "an integer"),
    "n_obs": (_check_nonneg_int, "an integer"),
    "forced_az": (_check_az, "a number"),
}


def _tokens(line: str) -> list[tuple[int, str]]:
    """(1-based character column, token) for each token before a ``#``."""
    text = line.split("#", 1)[0]
    out: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append((i + 1, text[i:j]))
        i = j
    return out


def parse_shot_text(text: str, name: str = "<text>") -> list[Shot]:
    """Parse a whole shot list; raise :class:`ShotListError` on the first bad line."""
    shots: list[Shot] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = _tokens(line)
        if not tokens:
            continue

        def fail(index: int, char: int, what: str) -> ShotListError:
            column = COLUMNS[index] if index < len(COLUMNS) else "extra"
            return ShotListError(
                f"{name}, line {lineno}, column {index + 1} ({column}, character {char}): {what}",
                name, lineno, index + 1,
            )

        if len(tokens) < len(COLUMNS):
            end = len(line.split("#", 1)[0].rstrip()) + 1
            raise fail(
                len(tokens), end,
                f"missing; a shot line has {len(COLUMNS)} columns, this one has {len(tokens)}",
            )
        if len(tokens) > len(COLUMNS):
            char, token = tokens[len(COLUMNS)]
            raise fail(
                len(COLUMNS), char,
                f"unexpected {token!r}; a shot line has {len(COLUMNS)} columns, this one has {len(tokens)}",
            )
        values: dict[str, object] = {}
        for index, (char, token) in enumerate(tokens[: len(_CHECKS)]):
            column = COLUMNS[index]
            check, kind = _CHECKS[column]
            try:
                values[column] = check(token)
            except ValueError as exc:
                reason = str(exc)
                if not reason or reason == token or reason.startswith(("could not", "invalid literal")):
                    reason = f"is not {kind}"
                raise fail(index, char, f"{token!r} {reason}") from None
        shotid = str(values["shotid"])
        if shotid in first_line:
            raise fail(0, tokens[0][0], f"duplicate shotid {shotid!r} (first on line {first_line[shotid]})")
        first_line[shotid] = lineno
        metadata = {
            column: token for column, (_, token) in zip(METADATA_COLUMNS, tokens[len(_CHECKS):])
        }
        shots.append(
            Shot(
                shotid=shotid,
                ra=float(values["ra"]),  # type: ignore[arg-type]
                dec=float(values["dec"]),  # type: ignore[arg-type]
                track=int(values["track"]),  # type: ignore[call-overload]
                priority=int(values["priority"]),  # type: ignore[call-overload]
                n_obs=int(values["n_obs"]),  # type: ignore[call-overload]
                forced_az=float(values["forced_az"]),  # type: ignore[arg-type]
                metadata=MappingProxyType(metadata),
            )
        )
    return shots


def parse_shot_file(path: str | os.PathLike[str]) -> list[Shot]:
    """Read and parse ``path``; any problem is a :class:`ShotListError`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ShotListError(f"{name}: cannot read the shot list: {exc.strerror or exc}", name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise ShotListError(f"{name}, line {lineno}: not UTF-8 text", name, lineno) from None
    return parse_shot_text(text, name)
