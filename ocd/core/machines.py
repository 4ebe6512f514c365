"""Explicit state machines with named states.

Every lifecycle OCD keeps (arming, a running shot) is a small machine whose
states and transitions are written down here, so an impossible step is an
error instead of a silent flag flip, and every step is a :class:`Change`
that the main loop publishes as ``ocd.states.change`` (events.md 3.5).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from ocd.core.topics import (ArmingState, ArmingTransition, MachineName, ShotState,
                             ShotTransition)


class InvalidTransition(Exception):
    """A transition fired from a state it does not leave."""


@dataclass(frozen=True)
class Change:
    """One transition that happened, as published in ``ocd.states.change``."""

    machine_name: str
    transition: str
    old_state: str
    new_state: str
    msg: str

    def fields(self) -> dict[str, str]:
        return asdict(self)


class StateMachine:
    """A named machine: ``transitions`` maps a name to ``(from_states, to_state)``."""

    def __init__(
        self,
        name: str,
        states: Iterable[str],
        transitions: Mapping[str, tuple[Iterable[str], str]],
        initial: str,
    ) -> None:
        self.name = name
        self.states = tuple(states)
        self.transitions = {
            t: (frozenset(sources), target) for t, (sources, target) in transitions.items()
        }
        for t, (sources, target) in self.transitions.items():
            unknown = (set(sources) | {target}) - set(self.states)
            if unknown:
                raise ValueError(f"machine {name}: transition {t} uses unknown states {sorted(unknown)}")
        if initial not in self.states:
            raise ValueError(f"machine {name}: initial state {initial!r} is not one of {self.states}")
        self.initial = initial
        self.state = initial

    def can_fire(self, transition: str) -> bool:
        entry = self.transitions.get(transition)
        return entry is not None and self.state in entry[0]

    def fire(self, transition: str, msg: str = "") -> Change:
        """Take ``transition`` from the current state; raises InvalidTransition."""
        entry = self.transitions.get(transition)
        if entry is None:
            raise InvalidTransition(f"machine {self.name}: no transition {transition!r}")
        sources, target = entry
        if self.state not in sources:
            raise InvalidTransition(
                f"machine {self.name}: cannot {transition} from '{self.state}' "
                f"(only from {', '.join(sorted(sources))})"
            )
        old, self.state = self.state, target
        return Change(self.name, transition, old, target, msg)

    def __repr__(self) -> str:
        return f"<StateMachine {self.name}: {self.state}>"


def arming_machine() -> StateMachine:
    """``hetdex_allowed``: may OCD start survey shots? Not allowed at start."""
    return StateMachine(
        MachineName.HETDEX_ALLOWED,
        tuple(ArmingState),
        {
            ArmingTransition.ALLOW: ((ArmingState.NOT_ALLOWED,), ArmingState.ALLOWED),
            ArmingTransition.DISALLOW: ((ArmingState.ALLOWED,), ArmingState.NOT_ALLOWED),
            ArmingTransition.SELF_DISARM: ((ArmingState.ALLOWED,), ArmingState.NOT_ALLOWED),
        },
        ArmingState.NOT_ALLOWED,
    )


def shot_machine() -> StateMachine:
    """``run_shot``: is a shot running (by OCD or by hand)?"""
    return StateMachine(
        MachineName.RUN_SHOT,
        tuple(ShotState),
        {
            ShotTransition.START: ((ShotState.IDLE,), ShotState.RUNNING),
            ShotTransition.FINISH: ((ShotState.RUNNING,), ShotState.IDLE),
            ShotTransition.LOST: ((ShotState.RUNNING,), ShotState.IDLE),
        },
        ShotState.IDLE,
    )
