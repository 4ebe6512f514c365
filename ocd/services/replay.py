"""Replaying a TCS event database (``docs/spec/replay-db.md``).

Two parts, both free of sockets:

* :class:`ReplayDatabase` streams the events of an SQLite file written by the
  TCS event logger: topic-prefix selection, ordering done *inside* SQLite
  (a registered function reads the sort field as a time, so rows keep
  streaming and memory stays flat however long the night), and the value
  conversion rules of the contract (:func:`convert_value`).
* :class:`ocd.services.replay_schedule.Replayer` sends those events on an absolute
  schedule (its own module: the clockwork changes for other reasons than
  the reading).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from twisted.logger import Logger

from ocd.core.events import parse_time, split_topic

log = Logger(namespace="ocd.replay")

SORT_CHOICES = ("none", "__data_time", "__wire_time")


class ReplayError(Exception):
    """A database that cannot be replayed; the message names the file."""


# -- conversion ----------------------------------------------------------------

# A JSON number: an integer has neither fraction nor exponent; "000"/"007"
# fail the pattern (JSON forbids leading zeros), "nan"/"inf"/"1_000" too.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_BOOLS = {"True": True, "true": True, "False": False, "false": False}
_NUMBER_START = frozenset("-0123456789")


def convert_value(text: str | None, numbers: bool = True, bools: bool = True) -> Any:
    """One stored value -> what the replay sends (replay-db.md, conversion).

    NULL -> None; a JSON integer -> int; a finite JSON number with a fraction
    or exponent -> float; True/False/true/false -> bool; anything else
    (including JSON text of lists and objects) stays text.
    """
    if text is None:
        return None
    if numbers and text and text[0] in _NUMBER_START:
        match = _NUMBER.fullmatch(text)
        if match is not None:
            if match.group(1) is None and match.group(2) is None:
                return int(text)
            number = float(text)
            if math.isfinite(number):
                return number
            return text
    if bools:
        value = _BOOLS.get(text)
        if value is not None:
            return value
    return text


def sql_time(value: Any) -> float | None:
    """The SQLite function ``ocd_time``: a stored time -> epoch s, or NULL."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return number if math.isfinite(number) else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return parse_time(value)
    except (ValueError, TypeError):
        return None


# -- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayEvent:
    """One rebuilt event: ``t`` is its sort time (None when it has none)."""

    event_id: int
    topic: str
    payload: dict[str, Any]
    t: float | None

    def frames(self) -> list[bytes]:
        """The two wire frames (topic, JSON payload)."""
        return [
            self.topic.encode("utf-8"),
            json.dumps(self.payload, separators=(",", ":")).encode("utf-8"),
        ]


def _decode(raw: bytes) -> str:
    # Bad UTF-8 must not abort the whole stream: keep it, skip that event.
    return raw.decode("utf-8", "surrogateescape")


class ReplayDatabase:
    """A TCS event database opened read-only for streaming.

    ``sort_by`` is ``none`` (``event_id`` order, timed by ``__wire_time``),
    ``__data_time`` or ``__wire_time``. ``skipped`` counts the events of the
    last pass that could not be rebuilt.
    """

    def __init__(
        self,
        path: str | Path,
        topics: Sequence[str] | None = None,
        sort_by: str = "__wire_time",
        convert_number: bool = True,
        convert_bool: bool = True,
    ):
        if sort_by not in SORT_CHOICES:
            raise ValueError(f"sort_by {sort_by!r} is not one of {', '.join(SORT_CHOICES)}")
        self.path = Path(path)
        self.topics = [t for t in (topics or []) if t]
        self.sort_by = sort_by
        self.time_field = "__wire_time" if sort_by == "none" else sort_by
        self.convert_number = convert_number
        self.convert_bool = convert_bool
        self.skipped = 0
        self._conn = self._open()

    # opening and checking ------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        name = str(self.path)
        if not self.path.exists():
            raise ReplayError(f"{name}: no such file")
        if not self.path.is_file():
            raise ReplayError(f"{name}: not a file")
        with open(self.path, "rb") as handle:
            head = handle.read(16)
        if head != b"SQLite format 3\x00":
            raise ReplayError(f"{name}: not an SQLite 3 database")
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            conn.text_factory = _decode
            conn.create_function("ocd_time", 1, sql_time, deterministic=True)
            tables = {
                row[0]: {c[1] for c in conn.execute(f"PRAGMA table_info({row[0]})")}
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise ReplayError(f"{name}: cannot read it as SQLite: {exc}") from None
        wanted = {"events": {"event_id", "topic"}, "event_data": {"event_id", "key", "value"}}
        for table, columns in wanted.items():
            if table not in tables:
                conn.close()
                raise ReplayError(f"{name}: no table {table!r} (not a TCS event database)")
            missing = columns - tables[table]
            if missing:
                conn.close()
                raise ReplayError(f"{name}: table {table!r} lacks column(s) {', '.join(sorted(missing))}")
        return conn

    def close(self) -> None:
        self._conn.close()

    # queries -------------------------------------------------------------------

    def _where(self) -> tuple[str, list[Any]]:
        if not self.topics:
            return "", []
        clauses = " OR ".join("substr(e.topic, 1, ?) = ?" for _ in self.topics)
        params: list[Any] = []
        for prefix in self.topics:
            params += [len(prefix), prefix]
        return f"WHERE ({clauses})", params

    def count(self) -> int:
        """How many events the selection holds."""
        where, params = self._where()
        return self._conn.execute(f"SELECT count(*) FROM events AS e {where}", params).fetchone()[0]

    def count_untimed(self) -> int:
        """How many selected events have no readable sort field."""
        where, params = self._where()
        where = f"{where} AND" if where else "WHERE"
        sql = (
            "SELECT count(*) FROM events AS e LEFT JOIN event_data AS s "
            "ON s.event_id = e.event_id AND s.key = ? "
            f"{where} ocd_time(s.value) IS NULL"
        )
        return self._conn.execute(sql, [self.time_field, *params]).fetchone()[0]

    def time_span(self) -> tuple[float | None, float | None]:
        """First and last sort time of the selection (for progress)."""
        where, params = self._where()
        sql = (
            "SELECT min(ocd_time(s.value)), max(ocd_time(s.value)) FROM events AS e "
            f"JOIN event_data AS s ON s.event_id = e.event_id AND s.key = ? {where}"
        )
        first, last = self._conn.execute(sql, [self.time_field, *params]).fetchone()
        return first, last

    def _rows(self) -> sqlite3.Cursor:
        # One row per event: SQLite gathers the fields into a JSON object, so
        # the sort (when asked) handles events, not fields, and Python parses
        # each payload with one json.loads.
        where, params = self._where()
        order = "e.event_id" if self.sort_by == "none" else "t, e.event_id"
        sql = (
            "SELECT e.event_id, e.topic, ocd_time(s.value) AS t, "
            "(SELECT json_group_object(d.key, CAST(d.value AS TEXT)) FROM event_data AS d "
            " WHERE d.event_id = e.event_id AND d.key IS NOT NULL) AS data "
            "FROM events AS e "
            "LEFT JOIN event_data AS s ON s.event_id = e.event_id AND s.key = ? "
            f"{where} ORDER BY {order}"
        )
        return self._conn.execute(sql, [self.time_field, *params])

    def events(self) -> Iterator[ReplayEvent]:
        """Stream the selected events in order; resets :attr:`skipped` now.

        Events without the sort field come first (SQLite sorts NULL first);
        :meth:`count_untimed` tells how many, for the warning.
        """
        self.skipped = 0
        return self._stream()

    def _stream(self) -> Iterator[ReplayEvent]:
        # Text that is not UTF-8 makes the sqlite3 module raise in the middle
        # of a cursor. Then read again from the start, decoding leniently, skip
        # what was already sent, and drop the events that hold bad text.
        done = 0
        try:
            for event in self._pass(lenient=False):
                done += 1
                yield event
            return
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc).lower():
                raise
            log.warn("{path}: text that is not UTF-8; those events are skipped", path=str(self.path))
        self.skipped = 0
        position = 0
        for event in self._pass(lenient=True):
            position += 1
            if position > done:
                yield event

    def _pass(self, lenient: bool) -> Iterator[ReplayEvent]:
        numbers, bools = self.convert_number, self.convert_bool
        loads = json.loads
        self._conn.text_factory = _decode if lenient else str
        cursor = self._rows()
        try:
            while True:
                rows = cursor.fetchmany(1000)
                if not rows:
                    break
                for event_id, topic, t, data in rows:
                    if not _valid_topic(topic) or data is None or data == "{}":
                        self.skipped += 1
                        continue
                    if lenient:
                        try:
                            data.encode("utf-8")
                        except UnicodeEncodeError:
                            self.skipped += 1
                            continue
                    payload = loads(data)
                    if numbers or bools:
                        _convert_payload(payload, numbers, bools)
                    yield ReplayEvent(event_id, topic, payload, t)
        finally:
            cursor.close()
            self._conn.text_factory = str


def _convert_payload(payload: dict[str, Any], numbers: bool, bools: bool) -> None:
    """:func:`convert_value` on every field, in place (the hot loop of a replay)."""
    match = _NUMBER.fullmatch
    for key, text in payload.items():
        if text is None or not text:
            continue
        first = text[0]
        if first in _NUMBER_START:
            if numbers:
                found = match(text)
                if found is not None:
                    if found.group(1) is None and found.group(2) is None:
                        payload[key] = int(text)
                    else:
                        number = float(text)
                        if math.isfinite(number):
                            payload[key] = number
        elif bools and first in "TtFf":
            value = _BOOLS.get(text)
            if value is not None:
                payload[key] = value


def _valid_topic(topic: Any) -> bool:
    if not isinstance(topic, str):
        return False
    try:
        split_topic(topic)
        topic.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


# -- the timed publisher -----------------------------------------------------------
