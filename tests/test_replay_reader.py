"""The replay reader: conversion, order, selection and bad files (replay-db.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ocd.services.replay import ReplayDatabase, ReplayError, convert_value
from ocd.sim.night import INDEX, SCHEMA


def make_db(path: Path, events: list[tuple[int, str, dict[str, object]]]) -> Path:
    """A TCS event database holding ``(event_id, topic, fields)`` as given."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA + INDEX)
    for event_id, topic, fields in events:
        conn.execute("INSERT INTO events VALUES (?, ?)", (event_id, topic))
        conn.executemany(
            "INSERT INTO event_data VALUES (?, ?, ?)",
            [(event_id, key, value) for key, value in fields.items()],
        )
    conn.commit()
    conn.close()
    return path


def stamped(topic: str, wire: object, data: object = None, **fields: object) -> dict[str, object]:
    system, source, key = topic.split(".", 2)
    out: dict[str, object] = {"__system": system, "__source": source, "__key": key,
                              "__data": "False", **fields}
    if wire is not None:
        out["__wire_time"] = wire
    if data is not None:
        out["__data_time"] = data
    return out


@pytest.mark.parametrize(
    "text, expected",
    [
        ("42", 42), ("-3", -3), ("0", 0), ("1.25", 1.25), ("1e-3", 1e-3), ("-2.5E+2", -250.0),
        ("000", "000"), ("007", "007"), ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"),
        ("1_000", "1_000"), ("1e999", "1e999"), (" 1", " 1"), ("1.", "1."), (".5", ".5"),
        ("+1", "+1"), ("0x10", "0x10"),
        ("True", True), ("False", False), ("true", True), ("false", False),
        ("TRUE", "TRUE"), ("yes", "yes"), ("[1, 2]", "[1, 2]"), ('{"a": 1}', '{"a": 1}'),
        ("open", "open"), ("", ""), (None, None),
    ],
)
def test_conversion_rules(text, expected):
    value = convert_value(text)
    assert value == expected and type(value) is type(expected)


def test_conversion_switches():
    assert convert_value("42", numbers=False) == "42"
    assert convert_value("True", numbers=False) is True
    assert convert_value("True", bools=False) == "True"
    assert convert_value("1.5", bools=False) == 1.5


def test_payload_conversion_in_stream(tmp_path):
    fields = {"n": "42", "f": "1.25", "slot": "000", "ifu": "007", "nan": "nan", "under": "1_000",
              "ok": "True", "no": "false", "list": "[1, 2]", "obj": '{"a": 1}', "null": None}
    db_path = make_db(tmp_path / "c.db", [(1, "a.b.c", stamped("a.b.c", "100.5", **fields))])
    (event,) = list(ReplayDatabase(db_path).events())
    p = event.payload
    assert p["n"] == 42 and type(p["n"]) is int
    assert p["f"] == 1.25
    assert (p["slot"], p["ifu"], p["nan"], p["under"]) == ("000", "007", "nan", "1_000")
    assert p["ok"] is True and p["no"] is False and p["__data"] is False
    assert p["list"] == "[1, 2]" and p["obj"] == '{"a": 1}' and p["null"] is None
    assert p["__wire_time"] == 100.5 and event.t == 100.5

    (raw,) = list(ReplayDatabase(db_path, convert_number=False, convert_bool=False).events())
    assert raw.payload["n"] == "42" and raw.payload["ok"] == "True" and raw.payload["__wire_time"] == "100.5"
    assert raw.t == 100.5  # the schedule still reads the time
    (half,) = list(ReplayDatabase(db_path, convert_number=False).events())
    assert half.payload["n"] == "42" and half.payload["ok"] is True


def test_order_by_time_is_numeric_with_iso_and_ties(tmp_path):
    rows = [
        (1, "a.b.c", stamped("a.b.c", "10.0", data="5")),
        (2, "a.b.c", stamped("a.b.c", "9.5", data="1970-01-01T00:00:07Z")),
        (3, "a.b.c", stamped("a.b.c", "100", data="6")),      # "100" < "9.5" as text
        (4, "a.b.c", stamped("a.b.c", "1970-01-01T00:00:09.5", data="6")),  # ties 2 on wire time
        (5, "a.b.c", stamped("a.b.c", "2", data="5")),
    ]
    db_path = make_db(tmp_path / "o.db", rows)
    order = lambda sort: [e.event_id for e in ReplayDatabase(db_path, sort_by=sort).events()]
    assert order("none") == [1, 2, 3, 4, 5]
    assert order("__wire_time") == [5, 2, 4, 1, 3]
    assert order("__data_time") == [1, 5, 3, 4, 2]
    times = [e.t for e in ReplayDatabase(db_path, sort_by="__wire_time").events()]
    assert times == [2.0, 9.5, 9.5, 10.0, 100.0]


def test_events_without_sort_field_come_first_and_are_counted(tmp_path):
    rows = [
        (1, "a.b.c", stamped("a.b.c", "3")),
        (2, "a.b.c", stamped("a.b.c", None)),
        (3, "a.b.c", stamped("a.b.c", "1")),
        (4, "a.b.c", stamped("a.b.c", "not a time")),
    ]
    db = ReplayDatabase(make_db(tmp_path / "m.db", rows), sort_by="__wire_time")
    assert [e.event_id for e in db.events()] == [2, 4, 3, 1]
    assert db.count_untimed() == 2 and db.count() == 4
    assert db.time_span() == (1.0, 3.0)


def test_topic_selection_by_prefix(tmp_path):
    topics = ["tcs.receiver.heartbeat", "tcs.root.ra_dec", "pas.Guider1.metrology_data",
              "pas.Guider2.metrology_data", "legacy.weather.status"]
    rows = [(i + 1, t, stamped(t, str(i))) for i, t in enumerate(topics)]
    db_path = make_db(tmp_path / "t.db", rows)
    pick = lambda prefixes: [e.topic for e in ReplayDatabase(db_path, topics=prefixes).events()]
    assert pick(None) == topics
    assert pick(["tcs.root"]) == ["tcs.root.ra_dec"]
    assert pick(["pas.", "legacy.weather.status"]) == topics[2:]
    assert pick(["nothing"]) == []
    assert ReplayDatabase(db_path, topics=["tcs"]).count() == 2


def test_rows_that_cannot_be_rebuilt_are_skipped_and_counted(tmp_path):
    db_path = make_db(tmp_path / "s.db", [
        (1, "a.b.c", stamped("a.b.c", "1")),
        (2, "not-a-topic", {"__wire_time": "2"}),
        (3, "a.b.c", {}),  # no fields at all
        (4, "a.b.c", stamped("a.b.c", "4")),
    ])
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO events VALUES (5, ?)", (b"a.b.\xff",))  # not UTF-8
    conn.execute("INSERT INTO event_data VALUES (5, '__wire_time', '5')")
    conn.execute("INSERT INTO events VALUES (6, 'a.b.c')")
    conn.execute("INSERT INTO event_data VALUES (6, '__wire_time', ?)", (b"\xfe6",))
    conn.execute("INSERT INTO events VALUES (7, 'a.b.c')")
    conn.execute("INSERT INTO event_data VALUES (7, '__wire_time', '7')")
    conn.commit()
    conn.close()
    for sort in ("none", "__wire_time"):
        db = ReplayDatabase(db_path, sort_by=sort)
        assert [e.event_id for e in db.events()] == [1, 4, 7]
        assert db.skipped == 4


def test_bad_files_are_clear_errors(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(ReplayError, match="missing.db: no such file"):
        ReplayDatabase(missing)
    text = tmp_path / "text.db"
    text.write_text("this is not a database\n")
    with pytest.raises(ReplayError, match="text.db: not an SQLite 3 database"):
        ReplayDatabase(text)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(ReplayError, match=r"empty.db: no table 'events'"):
        ReplayDatabase(empty)
    with pytest.raises(ReplayError, match="not a file"):
        ReplayDatabase(tmp_path)


def test_database_is_opened_read_only(tmp_path):
    db_path = make_db(tmp_path / "r.db", [(1, "a.b.c", stamped("a.b.c", "1"))])
    db = ReplayDatabase(db_path)
    with pytest.raises(sqlite3.OperationalError):
        db._conn.execute("DELETE FROM events")
    db.close()
