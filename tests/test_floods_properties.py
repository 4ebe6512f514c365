"""Property tests (issue 12, section 6): garbage never escapes as an exception.

Random frames on every kind of URL, random shot-list lines, shuffle files
and configuration values. What must hold: nothing but the documented error
escapes, and the counters add up (every message is either received or
counted as malformed). Example counts come from the "ocd" profile in
conftest.py (HYPOTHESIS_PROFILE=thorough for many more).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from ocd.config import Config, ConfigError, apply_live_update
from ocd.config_checks import OPTION_TYPES
from ocd.core.events import BOOKKEEPING, TCS_FIELDS, MalformedEvent, UrlKind, parse_frames
from ocd.core.shots import ShotListError, parse_shot_text
from ocd.core.shuffle import ShuffleError, read_shuffle, setup_commands
from ocd.services.orchestrator import Orchestrator
from ocd.sim.shotlist import make_sample_shots, shot_list_text
from ocd.sim.shuffle_files import shuffle_text
from conftest import stopped

NIGHT = 1740031200.0

# -- frames ---------------------------------------------------------------------

TOPICS = [*TCS_FIELDS, "ocd.heartbeat.enquiry", "ocd.states.hetdex_allowed", "ocd.config.update",
          "ocd.run_shot.run", "ocd.run_shot.exp_hetdex", "ocd.replay.end", "tcs.x", "a..b", ""]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                          allow_infinity=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
times = st.one_of(st.just(NIGHT), st.floats(NIGHT - 10, NIGHT + 10), st.floats(),
                  st.integers(), st.text(max_size=30), st.just("2025-02-20T06:00:00"),
                  st.booleans(), st.none())
field_names = st.sampled_from(["ra", "dec", "az", "dir", "tracking", "fwhm", "transparency",
                               "valid", "humidity", "wind_speed", "ambtemp", "dewpoint", "state",
                               "id", "allow", "reason", "section", "option", "value", "shotid",
                               "obs_number", "exptimes", "exec_status", "error", "exposure",
                               "handshake_id", "sent", "sent_by_topic"])


@st.composite
def payloads(draw) -> bytes:
    """Mostly event-shaped JSON (so handlers are reached), sometimes anything."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=64))
    if kind == 1:
        return json.dumps(draw(json_value)).encode()
    topic = draw(st.sampled_from(TOPICS))
    parts = (topic.split(".", 2) + ["", "", ""])[:3]
    payload = {"__system": parts[0], "__source": parts[1], "__key": parts[2],
               "__data_time": draw(times), "__wire_time": draw(times), "__data": False}
    for name in draw(st.lists(st.sampled_from(BOOKKEEPING), max_size=2)):
        payload.pop(name, None)
    payload.update(draw(st.dictionaries(field_names, json_value, max_size=8)))
    return json.dumps(payload).encode()


messages = st.one_of(
    st.tuples(st.sampled_from(TOPICS).map(str.encode), payloads()).map(list),
    st.lists(st.binary(max_size=30), max_size=3),
)


@pytest.fixture
def orchestrators(tmp_path):
    """One started Orchestrator per kind of URL, each with its own files."""
    loops = {}
    for kind in UrlKind:
        folder = tmp_path / kind.value
        folder.mkdir()
        shots = make_sample_shots(NIGHT - 3600, NIGHT + 3600, 4, seed=3)
        (folder / "shots.txt").write_text(shot_list_text(shots))
        config = Config.load(None, [("shots", "shot_file", str(folder / "shots.txt")),
                                    ("shots", "state_db", str(folder / "state.sqlite"))])
        clock = Clock()
        clock.advance(NIGHT)
        loops[kind] = Orchestrator(config, clock)
        loops[kind].startService()
    yield loops
    for loop in loops.values():
        stopped(loop)


def test_random_frames_never_escape_and_the_counters_add_up(orchestrators):
    """Each random batch goes to every kind of URL, each kind its own orchestrator.

    Drawing a batch costs far more than handling it, so one batch serves
    every kind: each kind still meets as many random batches as the profile
    gives one test, as when the kinds were drawn for separately.
    """

    @given(st.lists(messages, min_size=1, max_size=20))
    def check(batch):
        for kind, loop in orchestrators.items():
            check_kind(loop, kind, batch)

    check()


def check_kind(loop, kind, batch):
    before = loop.counters.snapshot()
    parse_failed = 0
    for message in batch:
        try:
            event = parse_frames(message, kind, "tcp://fuzz")
        except MalformedEvent as exc:
            parse_failed += 1
            loop.on_malformed(exc, "tcp://fuzz")
        else:
            loop.handle_event(event)
    after = loop.counters.snapshot()

    def delta(prefix: str) -> int:
        return sum(v - before.get(k, 0) for k, v in after.items() if k.startswith(prefix))

    received = delta("received.")
    assert received + parse_failed == len(batch), f"on {kind.value} URLs"
    # malformed after parsing: the time check and handler errors, on received events
    late = delta("malformed.far_time") + delta("malformed.handler_error")
    assert delta("malformed.") == parse_failed + late, f"on {kind.value} URLs"
    assert late <= received, f"on {kind.value} URLs"


# -- shot lists -------------------------------------------------------------------

GOOD_LINES = shot_list_text(make_sample_shots(NIGHT - 3600, NIGHT + 3600, 3, seed=1)).splitlines()


@st.composite
def shot_lines(draw) -> str:
    line = draw(st.sampled_from(GOOD_LINES))
    tokens = line.split()
    for _ in range(draw(st.integers(0, 3))):
        if tokens:
            at = draw(st.integers(0, len(tokens) - 1))
            tokens[at] = draw(st.one_of(st.text(max_size=12), st.sampled_from(
                ["nan", "inf", "-1", "1e308", "24", "-91", "../../etc/x", "#", "0x10", ""])))
    if draw(st.booleans()):
        tokens = tokens[: draw(st.integers(0, len(tokens)))]
    return " ".join(tokens)


@given(st.lists(st.one_of(shot_lines(), st.text(max_size=80)), max_size=6))
def test_shot_lists_parse_or_are_refused_whole(lines):
    text = "\n".join(lines)
    try:
        shots = parse_shot_text(text, "fuzz.txt")
    except ShotListError as exc:
        assert "fuzz.txt" in str(exc)
        return
    for shot in shots:
        assert 0 <= shot.ra < 24 and -90 <= shot.dec <= 90
        assert math.isfinite(shot.ra) and math.isfinite(shot.dec)


# -- shuffle files ------------------------------------------------------------------

GOOD_SHUFFLE = shuffle_text("DEX00001", 150.1, 50.2, 0, "073")


@st.composite
def shuffle_texts(draw) -> str:
    lines = GOOD_SHUFFLE.splitlines()
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.integers(0, 2))
        if action == 0:
            del lines[at]
        elif action == 1 and "=" in lines[at]:
            key = lines[at].split("=", 1)[0]
            lines[at] = key + "= " + draw(st.one_of(st.text(max_size=15), st.sampled_from(
                ["north", "nan", "", "1e400", "\"quoted\"", "a, b"])))
        else:
            lines.insert(at, draw(st.text(max_size=30)))
    return "\n".join(lines)


def test_shuffle_files_read_or_say_what_is_wrong(tmp_path):
    path = tmp_path / "shuffle.ini"

    @given(st.one_of(shuffle_texts(), st.text(max_size=200)), st.sampled_from([0, 1]))
    def check(text, track):
        path.write_text(text, encoding="utf-8")
        try:
            shuffle = read_shuffle(path)
            commands = setup_commands(shuffle, track=track, metadata={"shotid": "DEX00001"})
        except ShuffleError as exc:
            assert str(exc)
            return
        assert commands and all(isinstance(c, str) for c in commands)

    check()


# -- configuration values ------------------------------------------------------------

TYPED = sorted(OPTION_TYPES)
values = st.one_of(st.text(max_size=30), st.sampled_from(
    ["nan", "inf", "-inf", "-5", "0", "1e300", "nan nan nan", "-5 -5 -5", "1e300 1 1",
     "tcp://127.0.0.1:1", "yes", "${NOSUCH}", "$$", "/bin/sh -c 'x'", "'unclosed"]))


@given(st.sampled_from(TYPED), values)
def test_config_values_apply_or_are_refused_with_a_reason(option, value):
    section, name = option
    config = Config.load(None, [])
    applied, message = apply_live_update(config, section, name, value)
    assert isinstance(applied, bool) and message
    try:
        Config.load(None, [(section, name, value)]).validate()
    except ConfigError as exc:
        assert name in str(exc)
