"""makeService: the one place OCD's service tree is built.

``ocd run``, ``twistd ocd`` (through :mod:`ocd.tap`) and ``ocd simulate_night``
all call :func:`makeService`. It only builds objects: twistd forks between
``makeService`` and ``startService``, and a ZeroMQ context or a database pool
does not survive a fork, so sockets and pools open in ``startService``.

    OcdService "ocd"            opens/closes the Bus around its children
     ├─ NightLog "night_log"       [general] night_log, when set (first on, last off)
     ├─ ControlChannels "control"   main-loop PUB, run-shot PUB, SUBs for the
     │                              allow_hetdex, config and run_shot URLs
     ├─ ObsnumPool "obsnum"         observation numbers (adbapi)
     ├─ TelescopeSubscriber "subscriber"   event_urls (TCS) or ocd_db_replay
     ├─ Orchestrator "main_loop"    handles every event, decides, runs shots
     ├─ SkyService "sky"             sky spans from OCD's cache folder, astropy's
     │                              IERS table when one must be computed (ocd.services.sky_cache)
     ├─ TimerService "timer"        MainLoop.tick every [decision] decide_interval
     └─ status web service "status" /, /status, /healthz, /metrics on [status] endpoint
                                    (absent when the endpoint is empty)
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorCore

from ocd.config import Config
from ocd.protocols.zmq import Bus
from ocd.services.channels import ControlChannels, OcdService, TelescopeSubscriber
from ocd.services.narration import Narrator
from ocd.services.nightlog import NightLog
from ocd.services.obsnum import ObsnumPool
from ocd.services.orchestrator import Orchestrator
from ocd.services.sky_cache import SkyService


def use_monotonic_clock(reactor: Any, monotonic: Callable[[], float] = time.monotonic) -> None:
    """Make the reactor's clock monotonic (``ocd run``, ``twistd ocd``).

    Twisted's reactor measures ``callLater`` delays on ``time.time()``: a step
    of the machine's clock (NTP, an operator's ``date``) moves every pending
    timer and every measured silence, and a step back hides a dead TCS for
    the length of the step (twisted/twisted#2424). OCD measures silences,
    timeouts and deadlines on the reactor's clock and reads the wall clock
    separately (``MainLoop.wall_time``, ``time.time`` in the daemons), so
    the daemons switch the reactor to ``time.monotonic`` before anything is
    scheduled; a call already pending keeps its remaining delay.
    """
    if reactor.seconds is monotonic:
        return
    before = reactor.seconds()
    pending = list(reactor.getDelayedCalls())
    reactor.seconds = monotonic
    for call in pending:
        remaining = max(call.getTime() - before, 0.0)
        call.seconds = monotonic
        call.reset(remaining)


def makeService(config: Config, reactor: IReactorCore, daemon: bool = False,
                program: str = "ocd run") -> MultiService:
    """The tree of ``ocd run`` and ``twistd ocd``: builds objects, opens nothing.

    ``reactor`` is the one the program runs (resolved where it starts:
    ``task.react`` for ``ocd run``, twistd's for ``twistd ocd``); every service
    gets it from here, none imports the global one.

    Children start in this order and stop in the reverse one: the main loop
    (ending a running shot) stops before the subscriber, the observation
    number pool and the control channels whose sockets carry its FINISH.
    ``daemon`` (``ocd run``, ``twistd ocd``): log the banner at start and
    stop on signals as events.md 3.6 says (:mod:`ocd.services.signals`).
    """
    bus = Bus(reactor)
    obsnum = ObsnumPool(config, reactor)
    obsnum.setName("obsnum")
    # The daemons' reactor clock is monotonic: OCD's time and stamps come from
    # the wall clock. Elsewhere (tests, simulate_night) the reactor's clock is both.
    main_loop = Orchestrator(config, reactor, obsnum=obsnum,
                             wall=time.time if daemon else None)
    root = OcdService(bus, main_loop, daemon=daemon)
    main_loop.listeners.append(Narrator())
    night_log_path = config.get_path("general", "night_log")
    if night_log_path is not None:
        # First child: it starts before the main loop and stops after it, so
        # OCD's start, the last shot's end and OCD's stop are all recorded.
        night_log = NightLog(night_log_path, main_loop.now, program=program)
        main_loop.listeners.append(night_log)
        main_loop.alerter.listeners.append(night_log.alert)
        crew = getattr(main_loop, "crew_shot_listeners", None)
        if crew is not None:
            crew.append(night_log.crew_shot)
        night_log.setServiceParent(root)
    ControlChannels(config, bus, main_loop).setServiceParent(root)
    obsnum.setServiceParent(root)
    TelescopeSubscriber(config, bus, main_loop).setServiceParent(root)
    main_loop.setServiceParent(root)
    # After the main loop (a bad state database stops OCD before astropy is
    # even imported), before the timer whose first tick makes the first decision.
    SkyService().setServiceParent(root)
    interval = config.get_float("decision", "decide_interval")  # >= 0.1 (config_checks)
    timer = TimerService(interval, main_loop.tick)
    timer.setName("timer")
    timer.clock = reactor
    timer.setServiceParent(root)
    if config.get_str("status", "endpoint").strip():
        # twisted.web and prometheus_client only when the page is served.
        from ocd.services.status import status_service

        status = status_service(config, main_loop, reactor)
        if status is not None:
            status.setServiceParent(root)
    return root
