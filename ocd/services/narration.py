"""One line per thing a person at the console wants to know, on the night's clock.

:class:`Narrator` listens to every event the main loop publishes (it is one
of ``MainLoop.listeners``) and logs, at info on the ``ocd.night`` namespace:

- a change of decision: the verdict and the blockers in plain words,
- a change of arming: who asked (or OCD itself) and why,
- a shot's start, steps (telescope set up, each exposure) and end.

Every line starts with the night's time (OCD's clock, so a replay reads as
that night). The raw ``publish`` lines are at debug level. :func:`line_for`
is pure: it turns one published event into a line, or None.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from twisted.logger import Logger

#: The console's line length target; a line is cut to this (the JSON log
#: keeps every detail).
MAX_LINE = 130

#: Blocker names in plain words, for the blockers without a detail.
PLAIN: dict[str, str] = {
    "not_allowed": "shots not allowed",
    "shot_running": "a shot is running",
    "daylight": "daylight",
    "tcs_silent": "TCS silent",
    "shutter_closed": "shutter closed",
    "weather": "weather",
    "bad_seeing": "bad seeing",
    "low_transparency": "low transparency",
    "no_target": "no target",
    "obsnum_unavailable": "no observation number",
    "failed_shot": "a shot failed",
    "programs_missing": "programs missing",
}


def night_clock(epoch: float | None) -> str:
    """The night's time as a UTC clock time, ``03:12:09``."""
    if epoch is None:
        return "--:--:--"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S")


def blockers_text(blockers: list[str], details: Mapping[str, str]) -> str:
    """``shutter closed; humidity 92% > 90%`` (a detail, else the plain name)."""
    return "; ".join(str(details.get(name) or PLAIN.get(name, name.replace("_", " ")))
                     for name in blockers)


def _cut(text: str, limit: int = MAX_LINE) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _who(change: Mapping[str, Any]) -> str:
    """Who moved the arming machine, from the transition and its message."""
    if change.get("transition") == "self_disarm":
        return "OCD itself"
    msg = str(change.get("msg") or "")
    return msg.split(" (", 1)[0] if msg.startswith("ocd allow_hetdex") else "?"


def _reason(change: Mapping[str, Any]) -> str:
    msg = str(change.get("msg") or "")
    if change.get("transition") == "self_disarm":
        return msg
    if "(" in msg and msg.endswith(")"):
        return msg.split(" (", 1)[1][:-1]
    return msg


def line_for(topic: str, p: Mapping[str, Any]) -> str | None:
    """The line for one published event (no time), or None; decisions are
    always described (the caller keeps only changes)."""
    if topic == "ocd.decision.made":
        shadow = "SHADOW: would " if p.get("shadow") else ""
        if p.get("verdict") == "run":
            return f"{shadow}RUN {p.get('shotid')}"
        return f"{shadow}WAIT: " + blockers_text(list(p.get("blockers") or []),
                                                 p.get("details") or {})
    shot = f"shot {p.get('shotid')} (obs {p.get('obs_number')})"
    if topic == "ocd.run_shot.run":
        if p.get("exec_status") == 0:
            return f"{shot} started"
        if p.get("error"):
            return f"{shot} FAILED: {p.get('exc_value')}"
        return f"{shot} done"
    if topic == "ocd.run_shot.setup_telescope":
        if p.get("exec_status") == 0:
            return f"{shot}: setting up the telescope"
        return f"{shot}: telescope set up" if not p.get("error") else None
    if topic == "ocd.run_shot.exp_hetdex":
        if p.get("exec_status") == 0:
            return f"{shot}: exposure {p.get('exposure')} of 3 ({float(p.get('seconds') or 0):.0f} s)"
        return None
    if topic == "ocd.states.change" and p.get("machine_name") == "hetdex_allowed":
        verb = {"allowed": "ARMED", "not_allowed": "DISARMED"}.get(str(p.get("new_state")),
                                                                   str(p.get("new_state")))
        return f"{verb} by {_who(p)}: {_reason(p)}".rstrip(": ")
    return None


def decision_key(p: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must change for a decision to be a new line (and a night-log row)."""
    shotid = p.get("shotid") if p.get("verdict") == "run" else None
    return (p.get("verdict"), tuple(p.get("blockers") or ()), shotid)


log = Logger(namespace="ocd.night")


class Narrator:
    """Listener of ``MainLoop.publish``: logs :func:`line_for` of each change."""

    def __init__(self) -> None:
        self._last_decision: tuple[Any, ...] | None = None

    def __call__(self, event: Any) -> None:
        payload = event.payload
        if event.topic == "ocd.decision.made":
            key = decision_key(payload)
            if key == self._last_decision:
                return
            self._last_decision = key
        line = line_for(event.topic, payload)
        if line is None:
            return
        log.info("night {night} {line}", night=night_clock(event.data_time),
                      line=_cut(line), ocd_event="narration", topic=event.topic)
