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
     ├─ TimerService "timer"        MainLoop.tick every [decision] decide_interval
     └─ status web service "status" /, /status, /healthz, /metrics on [status] endpoint
                                    (absent when the endpoint is empty)
"""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorCore

from ocd.config import Config
from ocd.protocols.zmq import Bus
from ocd.services.main_loop import ControlChannels, OcdService, TelescopeSubscriber
from ocd.services.narration import Narrator
from ocd.services.nightlog import NightLog
from ocd.services.obsnum import ObsnumPool
from ocd.services.orchestrator import Orchestrator
from ocd.services.status import status_service


def makeService(config: Config, reactor: IReactorCore, program: str = "ocd run") -> MultiService:
    """The tree of ``ocd run`` and ``twistd ocd``: builds objects, opens nothing.

    ``reactor`` is the one the program runs (resolved where it starts:
    ``task.react`` for ``ocd run``, twistd's for ``twistd ocd``); every service
    gets it from here, none imports the global one.

    Children start in this order and stop in the reverse one: the main loop
    (ending a running shot) stops before the subscriber, the observation
    number pool and the control channels whose sockets carry its FINISH.
    """
    bus = Bus(reactor)
    obsnum = ObsnumPool(config, reactor)
    obsnum.setName("obsnum")
    main_loop = Orchestrator(config, reactor, obsnum=obsnum)
    main_loop.listeners.append(Narrator())
    root = OcdService(bus, main_loop)
    night_log_path = config.get_path("general", "night_log")
    if night_log_path is not None:
        # First child: it starts before the main loop and stops after it, so
        # OCD's start, the last shot's end and OCD's stop are all recorded.
        night_log = NightLog(night_log_path, main_loop.now, program=program)
        main_loop.listeners.append(night_log)
        main_loop.alert_listeners.append(night_log.alert)
        crew = getattr(main_loop, "crew_shot_listeners", None)
        if crew is not None:
            crew.append(night_log.crew_shot)
        night_log.setServiceParent(root)
    ControlChannels(config, bus, main_loop).setServiceParent(root)
    obsnum.setServiceParent(root)
    TelescopeSubscriber(config, bus, main_loop).setServiceParent(root)
    main_loop.setServiceParent(root)
    interval = max(config.get_float("decision", "decide_interval"), 0.1)
    timer = TimerService(interval, main_loop.tick)
    timer.setName("timer")
    timer.clock = reactor
    timer.setServiceParent(root)
    status = status_service(config, main_loop, reactor)
    if status is not None:
        status.setServiceParent(root)
    return root
