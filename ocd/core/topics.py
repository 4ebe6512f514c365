"""OCD's vocabulary: every ``ocd.*`` topic, blocker, verdict and machine state, once.

The names here are the wire contract of ``docs/spec/events.rst`` (topics) and
``docs/spec/shots.rst`` (blockers and their order, verdicts, machines). They
are ``StrEnum`` members: each *is* its string (it compares equal to it, goes
into JSON and log lines as it), so a payload read off the wire can be
compared with a member, while code names the member and never spells the
string again. A typo is then an ``AttributeError`` at import, not a silent
mismatch in the middle of a night.
"""

from __future__ import annotations

import enum


class WireName(enum.StrEnum):
    """A name that is its wire value: its ``repr`` is the string's, so a log
    line reads ``{'verdict': 'wait'}`` as before, not ``<Verdict.WAIT: 'wait'>``."""

    def __repr__(self) -> str:
        return repr(self._value_)


class Topic(WireName):
    """Every topic OCD itself publishes or listens to (events.md section 3)."""

    #: A subcommand's handshake: the main loop answers with the same ``id``.
    HEARTBEAT_ENQUIRY = "ocd.heartbeat.enquiry"
    HEARTBEAT_REPLY = "ocd.heartbeat.reply"
    #: ``ocd allow_hetdex start|stop`` asks; the main loop answers.
    HETDEX_ALLOWED = "ocd.states.hetdex_allowed"
    HETDEX_ALLOWED_CHANGED = "ocd.states.hetdex_allowed_changed"
    #: ``ocd config send`` asks; the main loop answers.
    CONFIG_UPDATE = "ocd.config.update"
    CONFIG_UPDATED = "ocd.config.updated"
    #: Every transition of a state machine, and each machine's state on every TCS heartbeat.
    STATES_CHANGE = "ocd.states.change"
    STATES_STATE = "ocd.states.state"
    #: The verdict, on change and every ``[decision] report_interval``.
    DECISION_MADE = "ocd.decision.made"
    #: A shot and its steps: START (``exec_status`` 0) and FINISH (1) each.
    RUN_SHOT_RUN = "ocd.run_shot.run"
    RUN_SHOT_SETUP = "ocd.run_shot.setup_telescope"
    RUN_SHOT_EXPOSURE = "ocd.run_shot.exp_hetdex"
    #: ``ocd db_replay`` -> main loop at the end of a replay, on the replay URL;
    #: the main loop answers with what it counted of that replay.
    REPLAY_END = "ocd.replay.end"
    REPLAY_COUNTED = "ocd.replay.counted"


#: What every shot topic starts with (a SUB prefix, and the run-shot channel).
RUN_SHOT_PREFIX = "ocd.run_shot."
#: The TCS's own heartbeat: OCD publishes its machines' states on each one.
TCS_HEARTBEAT = "tcs.receiver.heartbeat"


class ExecStatus(enum.IntEnum):
    """``exec_status`` of a shot event: a step starts, or it finished."""

    def __repr__(self) -> str:
        return repr(self._value_)

    START = 0
    FINISH = 1


class Verdict(WireName):
    """What ``decide`` says: start the picked shot, or wait (with blockers)."""

    RUN = "run"
    WAIT = "wait"


class Blocker(WireName):
    """Why a shot may not start, in the order of the spec's table (shots.md 2)."""

    NOT_ALLOWED = "not_allowed"
    SHOT_RUNNING = "shot_running"
    DAYLIGHT = "daylight"
    TCS_SILENT = "tcs_silent"
    SHUTTER_CLOSED = "shutter_closed"
    WEATHER = "weather"
    BAD_SEEING = "bad_seeing"
    LOW_TRANSPARENCY = "low_transparency"
    NO_TARGET = "no_target"
    OBSNUM_UNAVAILABLE = "obsnum_unavailable"
    FAILED_SHOT = "failed_shot"
    PROGRAMS_MISSING = "programs_missing"


#: Blocker names in report order (a change in the set is a change in the tuple).
BLOCKERS: tuple[Blocker, ...] = tuple(Blocker)
#: Not a blocker: the key of the loud note in a decision's ``details`` when a
#: shot would run through OCD's own stand-ins (ocd.services.programs).
STAND_INS = "stand_ins"


class MachineName(WireName):
    """The state machines whose changes go out as ``ocd.states.change``."""

    HETDEX_ALLOWED = "hetdex_allowed"
    RUN_SHOT = "run_shot"


class ArmingState(WireName):
    """``hetdex_allowed``: may OCD start survey shots?"""

    NOT_ALLOWED = "not_allowed"
    ALLOWED = "allowed"


class ArmingTransition(WireName):
    ALLOW = "allow"  # ocd allow_hetdex start
    DISALLOW = "disallow"  # ocd allow_hetdex stop
    SELF_DISARM = "self_disarm"  # a shot failed or was lost


class ShotState(WireName):
    """``run_shot``: is a shot running, by OCD or by hand?"""

    IDLE = "idle"
    RUNNING = "running"


class ShotTransition(WireName):
    START = "start"
    FINISH = "finish"
    LOST = "lost"  # no FINISH within the exposure times plus shot_grace
