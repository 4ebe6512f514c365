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

from ocd.core.file_kinds import file_kind

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


#: The largest shot file read, in bytes. A real shot list is a few kilobytes
#: to a few hundred; the bound is there so that a wrong path (``/dev/zero``,
#: a log file, a disk image) is refused at once instead of being read until
#: memory runs out, with the reactor (and so SIGTERM) blocked meanwhile.
MAX_SHOT_FILE_BYTES = 16 * 1024 * 1024

def _size_text(size: int) -> str:
    """``16 MB`` rather than ``16777216 bytes``, where it is whole."""
    mb = 1024 * 1024
    return f"{size // mb} MB" if size >= mb and size % mb == 0 else f"{size} bytes"


def _not_regular(mode: int) -> str | None:
    """Why a file of ``mode`` is no shot file (None: a regular file).

    Only a regular file has an end that comes: a FIFO blocks its reader (at
    ``open`` even) until a writer comes, and a character device such as
    ``/dev/zero`` or ``/dev/full`` never ends.
    """
    kind = file_kind(mode)
    return None if kind is None else f"is {kind}, not a regular file"


def _check_kind(name: str, mode: int, size: int, limit: int) -> None:
    """Refuse what is not a regular file, or is larger than ``limit`` bytes."""
    why = _not_regular(mode)
    if why is None and size > limit:
        why = f"is larger than {_size_text(limit)} ({size} bytes); not a shot list"
    if why is not None:
        raise ShotListError(f"{name}: {why}", name)


def _read_bytes(name: str, limit: int) -> bytes:
    """The bytes of the regular file ``name``, at most ``limit`` of them.

    The path is looked at before it is opened, so that a FIFO is never
    opened (that would wait for a writer); it is opened non-blocking and
    looked at again through the open file, in case it was replaced in
    between. At most ``limit + 1`` bytes are read, so that a file that grew
    after the look, or whose size says nothing (``/proc``), is still refused.
    """
    info = os.stat(name)
    _check_kind(name, info.st_mode, info.st_size, limit)
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        _check_kind(name, info.st_mode, info.st_size, limit)
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ShotListError(f"{name}: is larger than {_size_text(limit)}; not a shot list", name)
    return raw


def parse_shot_file(path: str | os.PathLike[str], limit: int = MAX_SHOT_FILE_BYTES) -> list[Shot]:
    """Read and parse ``path``; any problem is a :class:`ShotListError`.

    Only a regular file of at most ``limit`` bytes is read (see
    :func:`_read_bytes`): anything else is refused like a bad line.
    """
    name = os.fspath(path)
    try:
        raw = _read_bytes(name, limit)
    except OSError as exc:
        raise ShotListError(f"{name}: cannot read the shot list: {exc.strerror or exc}", name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise ShotListError(f"{name}, line {lineno}: not UTF-8 text", name, lineno) from None
    return parse_shot_text(text, name)
