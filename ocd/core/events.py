"""Events: the values that move between the TCS, ``ocd run`` and the tools.

On the wire an event is a two-frame ZeroMQ message: the topic
``system.source.key`` (UTF-8) and a JSON object that carries the six
bookkeeping keys ``__system __source __key __data_time __wire_time __data``
(see ``docs/spec/events.rst``). Everything here is pure: frames in, an
:class:`Event` or a :class:`MalformedEvent` out, and back.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import orjson

from ocd.core.shot_tracker import invalid_shot_event

BOOKKEEPING = ("__system", "__source", "__key", "__data_time", "__wire_time", "__data")
_BOOKKEEPING_SET = frozenset(BOOKKEEPING)


class UrlKind(str, enum.Enum):
    """The kind of URL an event arrived on; each kind carries its own topics."""

    TCS = "tcs"
    REPLAY = "replay"
    ALLOW_HETDEX = "allow_hetdex"
    CONFIG = "config"
    RUN_SHOT = "run_shot"
    MAIN_LOOP = "main_loop"

    @property
    def is_telescope(self) -> bool:
        """TCS and replay URLs carry telescope events (and advance OCD's clock)."""
        return self in (UrlKind.TCS, UrlKind.REPLAY)


class MalformedEvent(ValueError):
    """A message that is not an event; ``kind`` names the reason for counting."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Event:
    """One parsed event. ``payload`` keeps every field, ``__*`` included."""

    topic: str
    payload: Mapping[str, Any]
    data_time: float
    wire_time: float
    url_kind: UrlKind | None = None
    url: str | None = field(default=None, compare=False)

    @property
    def system(self) -> str:
        return self.topic.split(".", 2)[0]

    @property
    def source(self) -> str:
        return self.topic.split(".", 2)[1]

    @property
    def key(self) -> str:
        return self.topic.split(".", 2)[2]

    def get(self, name: str, default: Any = None) -> Any:
        return self.payload.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.payload[name]

    @classmethod
    def _trusted(
        cls, topic: str, payload: Mapping[str, Any], data_time: float, wire_time: float,
        url_kind: UrlKind | None, url: str | None,
    ) -> "Event":
        """The same event as ``Event(...)``, built at half the cost (the hot path).

        The frozen dataclass ``__init__`` pays one ``object.__setattr__`` per
        field; an event has no ``__post_init__`` to skip, so setting the
        instance dict at once builds an identical value.
        """
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", {
            "topic": topic, "payload": payload, "data_time": data_time,
            "wire_time": wire_time, "url_kind": url_kind, "url": url})
        return event


def split_topic(topic: str) -> tuple[str, str, str]:
    """``system.source.key`` (``key`` may contain dots); raises ValueError."""
    parts = topic.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"topic {topic!r} is not system.source.key")
    return parts[0], parts[1], parts[2]


def _finite(value: float | int) -> bool:
    """``math.isfinite`` that says False (not OverflowError) for a huge int."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_time(value: Any) -> float:
    """A time as sent on the wire (number, numeric string, ISO 8601) -> epoch s.

    ISO strings without a zone are UTC. Raises ValueError for anything else.
    """
    if type(value) is float and math.isfinite(value):
        return value  # fast path: what JSON numbers with a fraction decode to
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is a boolean")
    if isinstance(value, (int, float)):
        if not _finite(value):
            raise ValueError(f"time {value!r} is not finite")
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"time {value!r} is neither a number nor ISO 8601") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            number = parsed.timestamp()
    else:
        raise ValueError(f"time {value!r} is not a number or a string")
    if not math.isfinite(number):
        raise ValueError(f"time {value!r} is not finite")
    return number


def parse_frames(
    frames: Sequence[bytes], url_kind: UrlKind | None = None, url: str | None = None
) -> Event:
    """Two ZeroMQ frames -> :class:`Event`; raises :class:`MalformedEvent`."""
    if len(frames) != 2:
        raise MalformedEvent("frame_count", f"expected 2 frames, got {len(frames)}")
    body = frames[1]
    try:
        topic = frames[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent("bad_utf8", f"frame is not UTF-8: {exc}") from None
    try:
        split_topic(topic)
    except ValueError as exc:
        raise MalformedEvent("bad_topic", str(exc)) from None
    # Measured on the text, before decoding: a deep payload must never bring
    # a later ``json.dumps`` (the JSON log, an echo) near the stack limit.
    # Counting brackets is C speed; only a payload with many of them is scanned.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and \
            _text_depth(body) > MAX_DEPTH:
        raise MalformedEvent("too_deep", f"{topic}: payload nested deeper than {MAX_DEPTH} levels")
    # orjson decodes straight from the frame's bytes and checks UTF-8 while it
    # parses: about ten times faster than ``json.loads`` on a TCS payload,
    # which made it most of the ingest cost (bench/ingest.py). It is stricter
    # than the standard library: NaN/Infinity literals and integers beyond 64
    # bits are not JSON and are refused here as ``bad_json``.
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise MalformedEvent("bad_utf8", f"frame is not UTF-8: {bad}") from None
        raise MalformedEvent("bad_json", f"{topic}: payload is not JSON: {exc}") from None
    # The payload was just decoded and nobody else holds it: no copy needed.
    return _validated_event(topic, payload, url_kind, url)


#: Deepest nesting of lists and objects a payload may have. No event of the
#: contract needs more than 2; a deep one would break every later
#: ``json.dumps`` (the JSON log, an echo) with a RecursionError.
MAX_DEPTH = 32


#: A JSON string (skipped whole: brackets in it are text) or one bracket.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _text_depth(text: bytes) -> int:
    """Deepest nesting of ``[`` and ``{`` in JSON text, brackets in strings ignored.

    Read from the frame's bytes: in UTF-8 no byte of a character beyond ASCII
    is a quote, a backslash or a bracket, so nothing needs decoding.

    Reads the text only until it passes :data:`MAX_DEPTH`: a flood of deep
    payloads costs each one its first few dozen brackets, not the whole
    text (removing the strings and listing every bracket first took 9 ms for
    a payload 50 thousand levels deep, 100 kB; 0.1 ms now: ``bench/deep_payload.py``).
    Never recurses.
    """
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token == b"[" or token == b"{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif token == b"]" or token == b"}":
            depth -= 1
    return deepest


def event_from_payload(
    topic: str, payload: Any, url_kind: UrlKind | None = None, url: str | None = None
) -> Event:
    """Validate a decoded payload and build the event (``payload`` is copied)."""
    if isinstance(payload, dict):
        payload = dict(payload)  # the event must not change with the caller's dict
    return _validated_event(topic, payload, url_kind, url)


_TELESCOPE_KINDS = frozenset((UrlKind.TCS, UrlKind.REPLAY))


def _validated_event(topic: str, payload: Any, url_kind: UrlKind | None, url: str | None) -> Event:
    """Validate ``payload`` (which becomes the event's own) and build the event."""
    if not isinstance(payload, dict):
        raise MalformedEvent("not_object", f"{topic}: payload is not a JSON object")
    if not _BOOKKEEPING_SET <= payload.keys():
        missing = [k for k in BOOKKEEPING if k not in payload]
        raise MalformedEvent("missing_key", f"{topic}: missing {', '.join(missing)}")
    try:
        data_time = parse_time(payload["__data_time"])
        wire_time = parse_time(payload["__wire_time"])
    except ValueError as exc:
        raise MalformedEvent("bad_time", f"{topic}: {exc}") from None
    if url_kind in _TELESCOPE_KINDS:  # a set, not the is_telescope property: hot path
        payload = normalise_tcs_fields(topic, payload)
    elif url_kind is UrlKind.RUN_SHOT:
        check_shot_fields(topic, payload)
    return Event._trusted(topic, MappingProxyType(payload), data_time, wire_time, url_kind, url)


# -- TCS fields that OCD reads (events.md, section 2) -------------------------

_NUMBER = "number"
_BOOL = "bool"
_STR = "str"

#: For each TCS topic OCD consumes, the fields it needs and their types.
TCS_FIELDS: dict[str, dict[str, str]] = {
    "tcs.receiver.heartbeat": {},
    "tcs.root.ra_dec": {"ra": _NUMBER, "dec": _NUMBER, "az": _NUMBER, "dir": _STR, "tracking": _BOOL},
    "pas.Guider1.metrology_data": {"fwhm": _NUMBER, "transparency": _NUMBER, "valid": _BOOL},
    "pas.Guider2.metrology_data": {"fwhm": _NUMBER, "transparency": _NUMBER, "valid": _BOOL},
    "legacy.weather.status": {"humidity": _NUMBER, "wind_speed": _NUMBER, "ambtemp": _NUMBER, "dewpoint": _NUMBER},
    "legacy.shutter.status": {"state": _STR},
}

#: The topics ``--auto-subscribe yes`` subscribes to.
TCS_TOPICS: tuple[str, ...] = tuple(TCS_FIELDS)

#: For each kind, the types a value may already have to be kept as it is: the
#: TCS mostly sends real numbers, booleans and strings, so the common case
#: skips ``_coerce`` (``type() is``, so a bool is never taken for a number).
_ALREADY: dict[str, tuple[type, ...]] = {_NUMBER: (float, int), _BOOL: (bool,), _STR: (str,)}


def _coerce(value: Any, kind: str) -> Any:
    if kind == _NUMBER:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            if not _finite(value):
                raise ValueError
            return value
        if isinstance(value, str):
            number = float(value.strip())
            if not math.isfinite(number):
                raise ValueError
            return number
        raise ValueError
    if kind == _BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in ("True", "true", "False", "false"):
            return value.strip() in ("True", "true")
        raise ValueError
    if not isinstance(value, str):
        raise ValueError
    return value


def normalise_tcs_fields(topic: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Coerce the fields OCD needs (numeric strings, True/False strings).

    A needed field that is missing or of the wrong type makes the event
    malformed; fields OCD does not read are kept as they are.
    """
    wanted = TCS_FIELDS.get(topic)
    if not wanted:
        return fields
    for name, kind in wanted.items():
        if name not in fields:
            raise MalformedEvent("missing_field", f"{topic}: missing field {name!r}")
        value = fields[name]
        if type(value) in _ALREADY[kind] and (kind != _NUMBER or _finite(value)):
            continue
        try:
            fields[name] = _coerce(value, kind)
        except (ValueError, TypeError):
            raise MalformedEvent(
                "bad_field", f"{topic}: field {name!r} = {fields[name]!r} is not a {kind}"
            ) from None
    return fields


# -- shot events (events.md, section 3.4) --------------------------------------


def _is_int(value: Any) -> bool:
    return type(value) is int


#: Types of the shot fields an ``ocd.run_shot.*`` event may carry: a value of
#: another type (a list as ``shotid``) would reach the handlers as a
#: TypeError; it makes the event malformed instead.
SHOT_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "shotid": ("string", lambda v: isinstance(v, str)),
    "obs_number": ("integer or null", lambda v: v is None or _is_int(v)),
    "exec_status": ("0 or 1", lambda v: _is_int(v) and v in (0, 1)),
    "exposure": ("integer", _is_int),
    "error": ("boolean", lambda v: isinstance(v, bool)),
}


def check_shot_fields(topic: str, payload: Mapping[str, Any]) -> None:
    """Raise :class:`MalformedEvent` when a shot field present has the wrong type."""
    if not topic.startswith("ocd.run_shot."):
        return
    for name, (what, ok) in SHOT_FIELDS.items():
        if name in payload and not ok(payload[name]):
            raise MalformedEvent(
                "bad_field", f"{topic}: field {name!r} = {_short(payload[name])} is not a {what}")
    # A shot event names its shot; a START says how long it lasts (a NaN held
    # shot_running for good): events.md 3.4.
    problem = invalid_shot_event(payload, start=payload.get("exec_status") == 0)
    if problem is not None:
        raise MalformedEvent("invalid_shot", f"{topic}: {problem}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- writing ----------------------------------------------------------------


def make_payload(topic: str, fields: Mapping[str, Any], data_time: float, wire_time: float) -> dict[str, Any]:
    """The payload of an event OCD writes: ``fields`` plus the six ``__*`` keys."""
    system, source, key = split_topic(topic)
    payload = dict(fields)
    payload.update(
        __system=system,
        __source=source,
        __key=key,
        __data_time=float(data_time),
        __wire_time=float(wire_time),
        __data=False,
    )
    return payload


def make_event(topic: str, fields: Mapping[str, Any], data_time: float, wire_time: float) -> Event:
    payload = make_payload(topic, fields, data_time, wire_time)
    return Event(topic, MappingProxyType(payload), float(data_time), float(wire_time))


def to_frames(event: Event) -> list[bytes]:
    """The two frames of an event (never txZMQ's NUL-joined single frame)."""
    return [
        event.topic.encode("utf-8"),
        json.dumps(dict(event.payload), separators=(",", ":"), default=_json_default).encode("utf-8"),
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
