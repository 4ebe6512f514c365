"""When to wake a person: the messages for ``[general] alert_command``.

Pure bookkeeping. The main loop feeds every decision's blockers with the
reactor's time; :class:`AlertTracker` says which messages are due. A blocker
alerts once per *spell* (from the moment it appears until it goes away) when
it has lasted longer than ``[general] alert_after`` while shots are allowed;
while shots are not allowed no spell runs (nobody asked OCD to observe).

``shot_running`` does not alert by default: a shot lasts longer than the
default ``alert_after`` and is what OCD is for; a shot that never finishes
is declared lost after ``shot_grace`` and alerts as a failed shot.
Self-disarm and failed shots alert at once (:func:`disarm_message`,
:func:`failed_shot_message`). The main loop runs the command.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ocd.core.topics import Blocker

#: Blockers that never alert on their own (see the module doc).
QUIET_BLOCKERS: frozenset[Blocker] = frozenset({Blocker.NOT_ALLOWED, Blocker.SHOT_RUNNING})


class AlertTracker:
    """Start time of each blocker spell, and whether it has alerted yet."""

    def __init__(self, quiet: Iterable[str] = QUIET_BLOCKERS):
        self.quiet = frozenset(quiet)
        self._since: dict[str, float] = {}
        self._alerted: set[str] = set()

    def update(
        self,
        blockers: Iterable[str],
        allowed: bool,
        now: float,
        alert_after: float,
        details: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Messages due now, one per blocker whose spell just passed ``alert_after``.

        ``now`` is the reactor's clock (seconds, monotonic).
        """
        return [message for _name, message in
                self.update_named(blockers, allowed, now, alert_after, details)]

    def update_named(
        self,
        blockers: Iterable[str],
        allowed: bool,
        now: float,
        alert_after: float,
        details: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """Like :meth:`update`, each message with the name of its blocker."""
        if not allowed:
            self._since.clear()
            self._alerted.clear()
            return []
        current = [b for b in blockers if b not in self.quiet]
        for name in list(self._since):
            if name not in current:
                del self._since[name]
                self._alerted.discard(name)
        messages = []
        for name in current:
            since = self._since.setdefault(name, now)
            if name not in self._alerted and now - since > alert_after:
                self._alerted.add(name)
                detail = (details or {}).get(name)
                text = f"OCD: shots allowed but blocked by {name} for {now - since:.0f} s"
                messages.append((name, f"{text}: {detail}" if detail else text))
        return messages

    def spells(self, now: float) -> dict[str, float]:
        """How long each current blocker spell has lasted (s)."""
        return {name: now - since for name, since in self._since.items()}


class AlertLimiter:
    """At most one alert per kind per ``every`` seconds; counts what it holds back.

    300 forged failed shots must not run the alert command 300 times (issue
    12): the first alert of a kind goes out, the others within ``every``
    seconds are held back and counted, and the next one that goes out (or
    :meth:`due`, called on the timer once the window has passed) says how
    many there were and repeats the last of them. ``now`` is the reactor's
    (monotonic) clock; ``every`` 0 means no limit.
    """

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._last_held: dict[str, str] = {}

    def offer(self, kind: str, message: str, now: float, every: float) -> str | None:
        """The text to send now, or None when the alert is held back."""
        sent = self._sent.get(kind)
        if every > 0 and sent is not None and now - sent < every:
            self._held[kind] = self._held.get(kind, 0) + 1
            self._last_held[kind] = message
            return None
        self._sent[kind] = now
        held = self._held.pop(kind, 0)
        self._last_held.pop(kind, None)
        if held:
            return f"{message} [{held} more {kind} alert(s) held back in the last {every:.0f} s]"
        return message

    def due(self, now: float, every: float) -> list[str]:
        """Summaries of the kinds whose held-back alerts may go out now."""
        out = []
        for kind in sorted(self._held):
            if every <= 0 or now - self._sent[kind] >= every:
                held = self._held.pop(kind)
                last = self._last_held.pop(kind)
                self._sent[kind] = now
                out.append(f"OCD: {held} {kind} alert(s) held back in the last {every:.0f} s; "
                           f"the last one: {last}")
        return out

    @property
    def held_back(self) -> int:
        """Alerts held back and not yet summarised."""
        return sum(self._held.values())


def disarm_message(reason: str) -> str:
    return f"OCD disarmed itself (allowed -> not allowed): {reason}; a person must run 'ocd allow_hetdex start'"


def failed_shot_message(shotid: str, obs_number: int | None, error: str) -> str:
    obs = "" if obs_number is None else f" (observation {obs_number})"
    return f"OCD: shot {shotid}{obs} failed: {error}"
