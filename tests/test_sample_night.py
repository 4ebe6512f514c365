"""The sample-night generator and ``ocd sample_night``."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from ocd.cli import main as ocd_main
from ocd.core.events import parse_time
from ocd.services.replay import ReplayDatabase
from ocd.sim.night import (
    GUIDERS, HEARTBEAT, POINTING, SHUTTER, WEATHER, cached_night, generate_night, night_span,
)

START = 1740098895.0  # sunset at the HET, 2025-02-20 (see test_night_span)


def dump(path) -> str:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT e.event_id, e.topic, d.key, d.value FROM events e "
                        "JOIN event_data d USING (event_id) ORDER BY 1, 3").fetchall()
    conn.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def fields_of(path, topic):
    conn = sqlite3.connect(path)
    out: dict[int, dict[str, str | None]] = {}
    for event_id, key, value in conn.execute(
            "SELECT e.event_id, d.key, d.value FROM events e JOIN event_data d USING (event_id) "
            "WHERE e.topic = ? ORDER BY e.event_id", (topic,)):
        out.setdefault(event_id, {})[key] = value
    conn.close()
    return list(out.values())


def test_night_span_is_sunset_to_sunrise_at_the_het():
    sunset, sunrise = night_span("2025-02-20")
    assert sunset == pytest.approx(START, abs=60)  # 18:48 CST
    assert 11.5 < (sunrise - sunset) / 3600 < 13.5


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    a = generate_night(tmp_path / "a.db", seed=7, start=START, hours=0.5)
    b = generate_night(tmp_path / "b.db", seed=7, start=START, hours=0.5)
    c = generate_night(tmp_path / "c.db", seed=8, start=START, hours=0.5)
    assert dump(a.path) == dump(b.path) != dump(c.path)
    assert a.events == b.events and a.topics == b.topics


def test_night_content_follows_the_contract(tmp_path):
    # Heartbeats once in ten seconds, not every second: they were half of the
    # night's rows and the contract says the same of each; every stream at the
    # TCS's rates is test_whole_night_is_realistic's.
    s = generate_night(tmp_path / "n.db", seed=1, start=START, hours=3, bad_weather_minutes=40,
                       bad_weather_at=1.5, heartbeat_hz=0.1)
    hours = 3 * 3600
    assert s.topics[HEARTBEAT] == pytest.approx(hours / 10, abs=2)
    assert s.topics[WEATHER] == pytest.approx(hours / 60, abs=2)
    assert s.topics[SHUTTER] >= hours / 60
    assert s.bad_weather == (START + 1.5 * 3600, START + 1.5 * 3600 + 40 * 60)
    tracked = sum(min(b, START + hours) - a for a, b in
                  [(t[0], t[1]) for t in __import__("ocd.sim.night", fromlist=["plan_night"]).plan_night(
                      1, START, START + hours, 40, 1.5).tracks])
    assert s.topics[POINTING] == pytest.approx(tracked, rel=0.02)
    for guider in GUIDERS:
        assert tracked / 10 <= s.topics[guider] <= tracked / 5 + 10

    # Every event has the six bookkeeping keys, values as str(value).
    for topic in (HEARTBEAT, POINTING, *GUIDERS, WEATHER, SHUTTER):
        for fields in fields_of(s.path, topic)[:50]:
            assert {"__system", "__source", "__key", "__data_time", "__wire_time", "__data"} <= set(fields)
            assert fields["__data"] == "False"
            assert START <= parse_time(fields["__data_time"]) <= START + hours + 1
    pointing = fields_of(s.path, POINTING)
    assert {f["tracking"] for f in pointing} == {"True", "False"}
    assert {f["dir"] for f in pointing} <= {"EAST", "WEST"}
    metrology = fields_of(s.path, GUIDERS[0])
    assert {f["valid"] for f in metrology} == {"True", "False"}
    fwhm = [float(f["fwhm"]) for f in metrology]
    assert 0.7 <= min(fwhm) < max(fwhm) <= 4.0 and len(set(fwhm)) > len(fwhm) / 2  # drifts
    assert metrology[0]["probe"] == "01" and metrology[0]["offsets"].startswith("[")
    weather = fields_of(s.path, WEATHER)
    assert "T" in weather[0]["__data_time"]  # the weather station writes ISO 8601
    assert any(f["rain_rate"] is None for f in weather) and any(f["rain_rate"] for f in weather)

    # The shutter is closed all through the spell of bad weather; no pointing then.
    bad0, bad1 = s.bad_weather
    for f in fields_of(s.path, SHUTTER):
        if bad0 <= float(f["__data_time"]) < bad1:
            assert f["state"] == "closed"
    assert not [f for f in pointing if bad0 <= float(f["__data_time"]) < bad1 and f["tracking"] == "True"]
    humid = [float(f["humidity"]) for f in weather if bad0 + 900 <= parse_time(f["__data_time"]) < bad1]
    assert min(humid) > 80

    # The replay reads it back in event_id = arrival (wire time) order.
    ids = [e.event_id for e in ReplayDatabase(s.path, sort_by="__wire_time").events()]
    assert ids == sorted(ids) and len(ids) == s.events


@pytest.mark.slow(2.5)
def test_whole_night_is_realistic(tmp_path):
    # How fast it is generated is a figure of bench/sample_night.py: a timed
    # assertion here failed whenever the shared machine was loaded.
    s = generate_night(tmp_path / "w.db", seed=0)
    assert 80_000 <= s.events <= 100_000
    assert s.bad_weather is not None and s.start < s.bad_weather[0] < s.bad_weather[1] < s.end


def test_cached_night_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OCD_CACHE_DIR", str(tmp_path / "cache"))
    first = cached_night(seed=2, start=START, hours=0.05)
    assert first.parent == tmp_path / "cache"
    mtime = first.stat().st_mtime_ns
    assert cached_night(seed=2, start=START, hours=0.05) == first
    assert first.stat().st_mtime_ns == mtime
    assert cached_night(seed=3, start=START, hours=0.05) != first
    assert not list((tmp_path / "cache").glob(".*partial"))


def test_bad_parameters_are_errors(tmp_path):
    with pytest.raises(ValueError, match="end after it starts"):
        generate_night(tmp_path / "x.db", start=START, end=START - 1)
    with pytest.raises(ValueError, match="heartbeat_hz"):
        generate_night(tmp_path / "x.db", start=START, hours=1, heartbeat_hz=0)


def test_command_writes_a_night(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli.db"
    assert ocd_main(["sample_night", str(out), "--seed", "4", "--start", "2025-02-21T00:48:15Z",
                     "--hours", "0.1", "--bad-weather", "0", "--heartbeat-hz", "2"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "bad weather" not in text
    assert ReplayDatabase(out).count() > 720
    assert ocd_main(["sample_night"]) == 2
    assert "OUTPUT" in capsys.readouterr().err
    monkeypatch.setenv("OCD_CACHE_DIR", str(tmp_path / "c"))
    assert ocd_main(["sample_night", "--cache", "--start", "1740098895", "--hours", "0.01"]) == 0
    assert capsys.readouterr().out.strip().startswith(str(tmp_path / "c"))
    assert ocd_main(["sample_night", str(out), "--start", "1740098895", "--end", "1740098000"]) == 2
    assert "end after it starts" in capsys.readouterr().err
