"""The orchestrator: the main loop that decides and runs HETDEX shots.

:class:`Orchestrator` extends :class:`ocd.services.main_loop.MainLoop` (which routes
events, keeps the arming and shot machines and publishes everything) with
what OCD exists for (shots.md, section 2 and 3):

- every telescope event is folded into :class:`ocd.core.state.TelescopeState`;
- after each burst of events (one reactor turn), and on the timer, the pure
  :func:`ocd.core.decide.decide` gives a verdict; ``ocd.decision.made`` goes out
  when the verdict or the blockers change and at least once per
  ``[decision] report_interval``;
- a ``run`` verdict marks the shot running at once, reserves its
  observation number and hands it to the one :class:`ocd.run_shot.ShotRunner`;
- a finished shot counts its ``n_obs`` down; a failed or lost one sets
  ``failed_shot`` and disarms OCD until a person runs ``allow_hetdex start``;
- long blockers, self-disarms and failed shots are alerts
  (:class:`ocd.services.alerter.Alerter`: ``[general] alert_command``).

Decisions are made on OCD's clock (``self.now()``); silences, timers and
child timeouts run on the reactor's clock, so tests drive both.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ocd.core.alerts import AlertTracker, disarm_message, failed_shot_message
from ocd.config import Config
from ocd.core.decide import Decision, DecisionInputs, DecisionSettings, decide
from ocd.core.events import Event
from ocd.services.obsnum import ObsnumPool, ObsnumUnavailable
from ocd.protocols.process import ProcessRunner
from ocd.services.programs import Program, missing_detail, resolve_programs, standin_detail
from ocd.services.shot_runner import ShotOutcome, ShotRequest, ShotRunner
from ocd.services.main_loop import MainLoop
from ocd.core.shot_tracker import ShotTracker
from ocd.core.shots import Shot
from ocd.services.crash_recovery import CrashRecovery
from ocd.services.shot_list import ShotList
from ocd.services.shot_store import ShotStore, StateDbError
from ocd.core.site import HET_ELEVATION, HET_LATITUDE
from ocd.core.state import TelescopeState, fold, reset_windows
from ocd.core.topics import (RUN_SHOT_PREFIX, ArmingState, ArmingTransition, ExecStatus,
                             ShotTransition, Topic, Verdict)

def track_azimuth(dec: float, track: int) -> float:
    """Azimuth (deg, N through E) where ``dec`` crosses the HET elevation.

    Used as the shot's ``azimuth`` when the shot list forces none: the
    structure sits there for the whole track.
    """
    phi, d, h = (math.radians(v) for v in (HET_LATITUDE, dec, HET_ELEVATION))
    cos_az = (math.sin(d) - math.sin(phi) * math.sin(h)) / (math.cos(phi) * math.cos(h))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    return round(az if track == 0 else 360.0 - az, 4)


class Orchestrator(MainLoop):
    """The main loop of ``ocd run``: see the module doc."""

    log = Logger(namespace="ocd.orchestrator")

    def __init__(self, config: Config, reactor: IReactorTime, counters: Any = None,
                 obsnum: ObsnumPool | None = None, processes: ProcessRunner | None = None,
                 wall: Any = None):
        super().__init__(config, reactor, counters, wall)
        self.obsnum = obsnum
        self.telescope = TelescopeState()
        self.settings = DecisionSettings.from_config(config)
        #: Shadow mode ([run] shadow): decide as if allowed, never reserve nor start.
        self.shadow = config.get_bool("run", "shadow")
        #: The shot list in force and its counts (ocd.services.shot_list).
        self.shot_list = ShotList(self.settings, self.counters)
        self.alerts = AlertTracker()
        #: The configured programs as last found on PATH (ocd.services.programs).
        self.programs: list[Program] = []
        self._programs_missing: str | None = None
        self._stand_ins: str | None = None
        self._obsnum_check: defer.Deferred | None = None
        self._starting: str | None = None
        #: Set by a first Ctrl+C: the running shot finishes, no new one starts.
        self._draining = False
        self.last_decision: Decision | None = None
        self.store: ShotStore | None = None
        self.runner: ShotRunner | None = None
        #: The one child-process runner (given by tests: a scripted fake); the
        #: alerter runs ``[general] alert_command`` through it too.
        self.processes: ProcessRunner = (
            processes if processes is not None
            else ProcessRunner(reactor, config.get_float("run_shot", "kill_grace")))
        self.alerter.processes = self.processes
        self.own_shot: ShotRequest | None = None
        self.shots = ShotTracker()
        self._own_keys: set[tuple[Any, Any]] = set()
        self._last_report: float | None = None
        self._pending: Any = None
        self._reserving: defer.Deferred | None = None
        self._shot_done_d: defer.Deferred | None = None
        self._stopping = False
        #: Ends what is left of a shot that was running when OCD died; while
        #: any of it lives, ``allow_hetdex start`` is refused (None: no crash).
        self.crash_recovery: CrashRecovery | None = None
        #: Called with every shot event of another runner (the crew's
        #: ``ocd run_shot -e``), which OCD does not publish again (the night log).
        self.crew_shot_listeners: list[Callable[[Event], None]] = []
        #: Called with (seconds, ok) after each observation-number reservation
        #: (the status service's latency histogram).
        self.reservation_observers: list[Callable[[float, bool], None]] = []

    # -- lifecycle ----------------------------------------------------------
    def startService(self) -> None:
        state_db = self.config.get_path("shots", "state_db")
        if state_db is not None:
            if not state_db.exists():
                self.log.warn(
                    "state database {path} does not exist: a new one is created, so the "
                    "remaining n_obs of every shot start afresh from the shot file and no "
                    "crashed shot can be found (expected only on a first start)",
                    path=str(state_db.absolute()))
            self.store = ShotStore(state_db)  # StateDbError: ocd run exits 2
            self.shot_list.store = self.store
            self._recover_crashed_shot()
        self.runner = ShotRunner(self.config, self.publish, self.processes, self.reactor,
                                 self.store)
        self.reload_shots(force=True)
        self.check_programs()
        if self.shadow:
            self.log.warn("SHADOW mode ([run] shadow = yes): OCD decides as if shots were "
                          "allowed but never reserves an observation number nor starts a shot")
        super().startService()
        self.schedule_decision()

    # -- the programs a shot runs ------------------------------------------------
    def check_programs(self) -> None:
        """Find ``syscmd_command`` and ``dither_command`` on PATH (at start, on the timer).

        A program that cannot be found is the ``programs_missing`` blocker;
        OCD's own stand-ins are said loudly. Changes are logged once.
        """
        programs = resolve_programs(self.config)
        missing, stand_ins = missing_detail(programs), standin_detail(programs)
        first = not self.programs
        if first or programs != self.programs:
            for program in programs:
                if program.path is None:
                    self.log.error("{program}: shots are blocked (programs_missing) until it "
                                   "can be found", program=program.describe())
                elif program.standin:
                    self.log.warn("{program}", program=program.describe())
                elif not first:
                    self.log.info("{program}", program=program.describe())
        self.programs = programs
        self._programs_missing, self._stand_ins = missing, stand_ins

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        """End what must end, in order, before the sockets close.

        A reservation in flight is waited for (it then starts nothing); a
        running shot is stopped and its outcome handled, FINISH included;
        only then are the remaining children (alerts) stopped.
        """
        self._stopping = True
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        if self._reserving is not None:
            yield self._reserving
        if self.crash_recovery is not None and self.crash_recovery.ending is not None:
            yield self.crash_recovery.ending
        if self.runner is not None and self.runner.running is not None:
            self.log.warn("stopping during shot {shotid}: ending its programs",
                          shotid=self.runner.running.shotid)
            self.runner.stop()
        if self._shot_done_d is not None:
            yield self._shot_done_d
        yield self.processes.stop_all()
        if self.store is not None:
            self.store.close()
            self.store = None
            self.shot_list.store = None
        yield super().stopService()

    def _recover_crashed_shot(self) -> None:
        """A shot recorded as running at start means OCD died during it.

        The shot counts as failed (OCD disarmed, ``failed_shot`` set), and
        :class:`ocd.services.crash_recovery.CrashRecovery` ends its recorded
        process group; until nothing of it is left, ``ocd allow_hetdex
        start`` is refused, naming the pids (shots.md section 3).
        """
        assert self.store is not None
        record = self.store.running()
        if record is None:
            return
        self.failed_shot = True
        self.counters.increment("shots.failed")
        self.log.error(
            "OCD stopped during shot {shotid} (observation {obs}, step {step}): the shot "
            "counts as failed; a person must check it and run 'ocd allow_hetdex start'",
            shotid=record["shotid"], obs=record["obs_number"], step=record["step"])
        self.alert(failed_shot_message(
            str(record["shotid"]), record["obs_number"],
            f"OCD stopped during step {record['step']}; check the shot"), kind="crash_recovery")
        self.crash_recovery = CrashRecovery(self.store, self.reactor,
                                            self.config.get_float("run_shot", "kill_grace"),
                                            self.alert, self.counters)
        self.crash_recovery.end_group_of(record)

    def allow_refusal(self) -> str | None:
        """Why ``ocd allow_hetdex start`` must be refused now (the crashed shot's
        processes still alive), or None."""
        return self.crash_recovery.refusal() if self.crash_recovery is not None else None

    # -- the shot list ------------------------------------------------------
    @property
    def scheduler(self) -> Any:
        """The :class:`~ocd.core.scheduler.Scheduler` of the shot list in force."""
        return self.shot_list.scheduler

    def reload_shots(self, force: bool = False) -> None:
        """Read the shot file when it changed (shots.md section 1).

        A file that is missing or rejected changes nothing that was known
        (:class:`ocd.services.shot_list.ShotList`); it is logged once per
        change of the file, and alerted.
        """
        path = self.config.get_path("shots", "shot_file")
        if not self.shot_list.file_changed(path) and not force:
            return
        problem = self.shot_list.read(path, self.settings)
        if problem is None:
            shots = self.shot_list.scheduler.shots
            self.log.info("{n} shot(s) in the list, {left} with observations left",
                          n=len(shots), left=sum(1 for s in shots if s.n_obs > 0))
            return
        if self.shot_list.have_good_list:
            kept = self.shot_list.scheduler.shots
            message = (f"{problem}; OCD keeps deciding on the last good list ({len(kept)} "
                       "shot(s), counts unchanged) and reads the file again when it changes")
        else:
            message = f"{problem}: no shots until it is fixed"
        self.log.error("{message}", message=message)
        self.alert(f"OCD: {message}", kind="shot_file")

    def _count_down(self, shotid: str, obs_number: Any) -> None:
        """A shot finished without error: one observation fewer.

        A count that cannot be written makes the shot a failed one: OCD
        disarms and alerts, naming the file and the error (the count still
        goes down in memory; shots.md section 1).
        """
        try:
            self.shot_list.count_down(shotid)
        except StateDbError as exc:
            self._shot_failed(shotid, obs_number,
                              f"the shot ended without error but its remaining count could "
                              f"not be written: {exc}")
            return
        self.counters.increment("shots.succeeded")

    # -- hooks of the main loop --------------------------------------------
    def handle_event(self, event: Event) -> None:
        super().handle_event(event)
        self.schedule_decision()

    def on_telescope_event(self, event: Event) -> None:
        self.telescope = fold(self.telescope, event, self.reactor.seconds())

    def on_time_jump_back(self, old: float, new: float) -> None:
        self.telescope = reset_windows(self.telescope)
        self._last_report = None

    def on_config_updated(self, section: str, option: str, value: str) -> None:
        self.settings = DecisionSettings.from_config(self.config)

    def clear_failed_shot(self) -> str:
        self.alerts = AlertTracker()
        return super().clear_failed_shot()

    def on_run_shot_event(self, event: Event) -> None:
        """A shot event from another runner (``ocd run_shot -e``), or our own echo.

        Our own shot's events come back over ZeroMQ too; they are ignored:
        its outcome arrives through its Deferred. Another runner's shot is
        tracked from any START (``run``, ``setup_telescope``, ``exp_hetdex``:
        a lost ``run`` START must not hide it) to the FINISH of ``run``.
        A FINISH that matches no START OCD saw changes nothing (events.md 3.4).
        """
        if not event.topic.startswith(RUN_SHOT_PREFIX):
            return
        status = event.get("exec_status")
        # Invalid shot fields never get here: they are malformed at parse
        # (ocd.core.events.check_shot_fields).
        key = (event.get("shotid"), event.get("obs_number"))
        if key in self._own_keys:
            return
        for listener in list(self.crew_shot_listeners):
            try:
                listener(event)
            except Exception:
                self.log.failure("crew shot listener {listener!r} failed", listener=listener)
        if status == ExecStatus.START:
            exptimes = event.get("exptimes") or self.settings.exptimes
            try:
                budget = float(sum(float(t) for t in exptimes))
            except (TypeError, ValueError):
                budget = float(sum(self.settings.exptimes))
            if self.shots.start(key, self.reactor.seconds(), budget + self.settings.shot_grace):
                self._log_other_runner(key, event)
                self._sync_shot_machine(f"shot {key[0]} (observation {key[1]}) started by "
                                        "another runner")
            return
        if status != ExecStatus.FINISH or event.topic != Topic.RUN_SHOT_RUN:
            return
        if key in self.shots.lost:
            self.log.warn("FINISH of shot {shotid} (observation {obs}) arrived after it was "
                          "declared lost: ignored", shotid=key[0], obs=key[1])
            return
        if self.shots.finish(key) is None:
            # No START of it was seen: a forged or stray FINISH changes nothing.
            self.counters.increment("run_shot.refused")
            self._warn("run_shot.refused", "FINISH of shot {shotid} (observation {obs}) from "
                       "{url} matches no START that OCD saw: refused, nothing changes",
                       shotid=key[0], obs=key[1], url=event.url)
            return
        if event.get("error"):
            self._sync_shot_machine(f"shot {key[0]} finished with an error")
            self._shot_failed(str(key[0]), key[1], str(event.get("exc_value") or "error"))
        else:
            self._count_down(str(key[0]), key[1])
            self._sync_shot_machine(f"shot {key[0]} finished")

    def _log_other_runner(self, key: tuple[Any, Any], event: Event) -> None:
        """Say that a shot was started by someone else, louder when ours runs."""
        own = self.shots.own_running
        if own is not None or self.shots.starting:
            mine = own.key[0] if own is not None else self._starting
            self.log.error(
                "shot {shotid} (observation {obs}) started by another runner (ocd run_shot, "
                "from {url}) WHILE OCD's own shot {own} runs: the telescope is moved under it",
                shotid=key[0], obs=key[1], url=event.url, own=mine)
        else:
            self.log.warn("shot {shotid} (observation {obs}) started by another runner "
                          "(ocd run_shot, from {url}), not by this OCD",
                          shotid=key[0], obs=key[1], url=event.url)

    def shot_in_progress(self) -> str | None:
        """OCD's own shot that is running or being started, by shot id; None if none."""
        if self.runner is not None and self.runner.running is not None:
            return self.runner.running.shotid
        if self.own_shot is not None:
            return self.own_shot.shotid
        if self.shots.starting or self._reserving is not None:
            return self._starting
        return None

    def stop_after_shot(self) -> str | None:
        """Start no new shot (first Ctrl+C); returns the shot still running, if any."""
        self._draining = True
        return self.shot_in_progress()

    def running_shots(self) -> list[dict[str, Any]]:
        """Every running shot, OCD's own first (also one whose number is being reserved)."""
        shots = [{"shotid": shot.key[0], "obs_number": shot.key[1],
                  "by": "ocd" if shot.own else "another runner"}
                 for shot in sorted(self.shots.running.values(), key=lambda s: not s.own)]
        if self.shots.starting and self._starting is not None:
            shots.insert(0, {"shotid": self._starting, "obs_number": None, "by": "ocd"})
        return shots

    def _sync_shot_machine(self, msg: str, idle_by: ShotTransition = ShotTransition.FINISH) -> None:
        """Move ``run_shot`` to what the tracker says: running while any shot is."""
        if self.shots.busy and self.shot.can_fire(ShotTransition.START):
            self.publish_change(self.shot.fire(ShotTransition.START, msg))
        elif not self.shots.busy and self.shot.can_fire(idle_by):
            self.publish_change(self.shot.fire(idle_by, msg))

    # -- deciding -----------------------------------------------------------
    def schedule_decision(self) -> None:
        """Decide once after the current burst of events (one reactor turn)."""
        if self._pending is None or not self._pending.active():
            self._pending = self.reactor.callLater(0, self.evaluate)

    def on_tick(self) -> None:
        self.alerter.flush()
        self.reload_shots()
        self.check_programs()
        self._expire_shots()
        self._recheck_obsnum()
        self.evaluate()

    def _recheck_obsnum(self) -> None:
        """While the database is unavailable, try it again (one check at a time)."""
        if self.obsnum is None or self.obsnum.available or self._obsnum_check is not None:
            return
        d = self._obsnum_check = self.obsnum.check()

        def checked(ok: bool) -> None:
            self._obsnum_check = None
            if ok:
                self.schedule_decision()

        d.addCallback(checked)
        d.addErrback(lambda failure: self.log.failure("checking the database failed", failure))

    def evaluate(self) -> Decision | None:
        """Decide now; act on a ``run`` verdict. Never raises."""
        try:
            return self._evaluate()
        except Exception:
            self.counters.increment("decision.errors")
            self.log.failure("deciding failed")
            return None

    def _evaluate(self) -> Decision:
        now = self.now()
        monotonic = self.reactor.seconds()
        obsnum = self.obsnum
        armed = self.arming.state == ArmingState.ALLOWED
        inputs = DecisionInputs(
            telescope=self.telescope,
            allowed=armed or self.shadow,
            shot_running=self.shots.busy,
            failed_shot=self.failed_shot,
            obsnum_ok=obsnum is None or obsnum.available,
            obsnum_error=None if obsnum is None else obsnum.last_error,
            programs_missing=self._programs_missing,
            stand_ins=self._stand_ins,
        )
        decision = decide(inputs, self.scheduler, now, monotonic, self.settings)
        self.counters.increment("decisions")
        self._report(decision, now, monotonic)
        for blocker, message in self.alerts.update_named(decision.blockers, armed, monotonic,
                                                         self.config.get_float("general",
                                                                               "alert_after"),
                                                         decision.details):
            self.alert(message, kind=f"blocker.{blocker}")
        if decision.verdict is Verdict.RUN and not self.shadow:
            self._start_shot(decision)
        return decision

    def _report(self, decision: Decision, now: float, monotonic: float) -> None:
        previous = self.last_decision
        changed = previous is None or previous.key != decision.key or (
            previous.shot is not decision.shot and decision.verdict is Verdict.RUN)
        due = (self._last_report is None
               or monotonic - self._last_report >= self.settings.report_interval)
        self.last_decision = decision
        if changed:
            self.log.debug("{summary}", summary=decision.summary(), ocd_event="decision",
                          blockers=list(decision.blockers))
        if changed or due:
            self._last_report = monotonic
            fields = decision.to_fields(now)
            if self.shadow:
                fields["shadow"] = True
            self.publish(Topic.DECISION_MADE, fields)

    # -- acting -------------------------------------------------------------
    def _start_shot(self, decision: Decision) -> None:
        shot, track = decision.shot, decision.track
        if self.shadow or shot is None or track is None or self.obsnum is None \
                or self.shots.busy:
            return  # shadow mode never starts a shot (checked here too, as a last guard)
        if self.runner is None or self.runner.running is not None or self._stopping \
                or self._draining:
            return  # our previous shot is still ending, or OCD is stopping
        self.shots.starting = True
        self._starting = shot.shotid
        self._sync_shot_machine(f"OCD starts shot {shot.shotid}")
        self.counters.increment("shots.started")
        asked = self.reactor.seconds()
        d = self.obsnum.reserve(shot.shotid)
        d.addBoth(self._reserved_after, asked)
        d.addCallbacks(lambda obs: self._run(shot, track, obs),
                       lambda failure: self._no_obsnum(shot, failure))
        d.addErrback(lambda failure: self.log.failure("starting a shot failed", failure))
        self._reserving = d

        def reserved(result: Any) -> Any:
            self._reserving = None
            return result

        d.addBoth(reserved)

    def _reserved_after(self, result: Any, asked: float) -> Any:
        """Tell the reservation observers how long it took; passes ``result`` on."""
        seconds = self.reactor.seconds() - asked
        ok = not isinstance(result, Failure)
        for observe in list(self.reservation_observers):
            try:
                observe(seconds, ok)
            except Exception:
                self.log.failure("reservation observer {observe!r} failed", observe=observe)
        return result

    def _no_obsnum(self, shot: Shot, failure: Any) -> None:
        self.shots.starting = False
        reason = failure.getErrorMessage()
        if not failure.check(ObsnumUnavailable):
            self.log.failure("reserving an observation number failed", failure)
        self.counters.increment("obsnum.unavailable")
        self._sync_shot_machine(f"shot {shot.shotid} not started: no observation number ({reason})")
        self.schedule_decision()

    def _why_not_now(self) -> str | None:
        """What changed while the number was reserved that forbids the shot."""
        if self._stopping or self._draining or not self.running:
            return "OCD is stopping"
        if self.arming.state != ArmingState.ALLOWED:
            return "shots are no longer allowed"
        if self.failed_shot:
            return "a shot failed meanwhile"
        return None

    def _run(self, shot: Shot, track: int, obs_number: int) -> None:
        self.shots.starting = False
        why = self._why_not_now()
        if why is not None:
            self.log.warn("shot {shotid} not started: {why}; observation number {obs} stays "
                          "used", shotid=shot.shotid, why=why, obs=obs_number)
            self._sync_shot_machine(f"shot {shot.shotid} not started: {why}")
            self.schedule_decision()
            return
        azimuth = shot.forced_az if shot.forced_az != -1 else track_azimuth(shot.dec, track)
        request = ShotRequest(
            shotid=shot.shotid, obs_number=obs_number, ra=shot.ra, dec=shot.dec,
            azimuth=azimuth, track=track, exptimes=tuple(self.settings.exptimes),
            metadata=dict(shot.metadata), forced_az=shot.forced_az,
            qifu=shot.metadata.get("QIFU"),
        )
        key = (request.shotid, request.obs_number)
        self._own_keys.add(key)
        self.own_shot = request
        self.shots.start(key, self.reactor.seconds(),
                         float(sum(request.exptimes)) + self.settings.shot_grace, own=True)
        self.log.debug("starting shot {shotid} (observation {obs}) on the {track} track",
                      shotid=shot.shotid, obs=obs_number, track=request.track_name)
        assert self.runner is not None
        d = self.runner.run(request).addCallback(self._shot_done)
        d.addErrback(lambda failure: self.log.failure(
            "handling the outcome of shot {shotid} failed", failure, shotid=shot.shotid))
        self._shot_done_d = d

    def _shot_done(self, outcome: ShotOutcome) -> None:
        request = outcome.request
        key = (request.shotid, request.obs_number)
        self.own_shot = None
        self._shot_done_d = None
        self.shots.finish(key)
        lost = key in self.shots.lost
        verdict = "done" if outcome.ok else f"failed: {outcome.error}"
        self._sync_shot_machine("lost" if lost else f"shot {request.shotid} {verdict}",
                                idle_by=ShotTransition.LOST if lost else ShotTransition.FINISH)
        if outcome.ok and not lost:
            self._count_down(request.shotid, request.obs_number)
        elif self._stopping:
            self.counters.increment("shots.failed")
            self.log.error("shot {shotid} (observation {obs}) ended by OCD's stop: {error}",
                           shotid=request.shotid, obs=request.obs_number, error=outcome.error)
        else:
            error = "lost: no FINISH within the exposure times plus shot_grace" if lost else (
                outcome.error or "error")
            self._shot_failed(request.shotid, request.obs_number, error)
        self.schedule_decision()

    def _shot_failed(self, shotid: str, obs_number: Any, error: str) -> None:
        self.counters.increment("shots.failed")
        self.failed_shot = True
        self.alert(failed_shot_message(shotid, obs_number, error), kind="failed_shot")
        if self.arming.can_fire(ArmingTransition.SELF_DISARM):
            reason = f"shot {shotid} failed"
            self.publish_change(self.arming.fire(ArmingTransition.SELF_DISARM, reason))
            self.alert(disarm_message(reason), kind="disarm")

    # -- lost shots ---------------------------------------------------------
    def _expire_shots(self) -> None:
        """Declare lost every shot past ``sum(exptimes) + shot_grace`` (on the timer)."""
        for shot in self.shots.expire(self.reactor.seconds()):
            shotid, obs = shot.key
            self.log.error("shot {shotid} (observation {obs}): no FINISH after {s:.0f} s: lost",
                           shotid=shotid, obs=obs, s=shot.deadline - shot.started)
            if shot.own:
                # Its outcome (FINISH with the error) comes once its programs end.
                if self.runner is not None:
                    self.runner.stop()
                continue
            self._sync_shot_machine("lost", idle_by=ShotTransition.LOST)
            self._shot_failed(str(shotid), obs,
                              f"lost: no FINISH after {shot.deadline - shot.started:.0f} s")
