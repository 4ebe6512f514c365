"""The shot sequence: one implementation for ``ocd run`` and ``ocd run_shot``.

shots.md section 3, steps 2 to 6::

    run START
      setup_telescope START
        read the shuffle file, copy the ACAM image ([paths] acam_dest_file),
        one syscmd per command, each waiting for the previous to exit 0
      setup_telescope FINISH
      3 x (exp_hetdex START, hetdex-dither.py, exp_hetdex FINISH)
      optionally wait until the last exposure's data folder is quiet
    run FINISH (error false, or true with exc_type, exc_value, traceback)

Every child goes through :class:`ocd.protocols.process.ProcessRunner` (own process
group, timeout, TERM then KILL). Events go out through the ``emit(topic,
fields)`` callable the runner is given; the caller stamps the times and
picks the socket (or only the log). :meth:`ShotRunner.run` never fails: a
failure is a :class:`ShotOutcome` with ``ok`` False and a FINISH with
``error`` true. :meth:`ShotRunner.stop` (Ctrl+C, service stop) ends the
children and still lets that FINISH go out.

A sub-step's FINISH (``setup_telescope``, ``exp_hetdex``) also goes out when
the step failed, with an extra ``error`` field, so every START has its FINISH.
"""

from __future__ import annotations

import os
import shutil
import traceback as traceback_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ocd.config import Config
from ocd.core.topics import ExecStatus, Topic
from ocd.protocols.process import ProcessRunner, RunningProcess
from ocd.protocols.process_groups import GroupIdentity
from ocd.services.shot_store import StateDbError
from ocd.core.shuffle import TRACK_NAMES, read_shuffle, setup_commands, shuffle_path
from ocd.core.shuffle import syscmd_switch

log = Logger(namespace="ocd.run_shot")


Emit = Callable[[str, dict], None]


@dataclass(frozen=True)
class ShotRequest:
    """One shot to run. ``track`` 0 EAST, 1 WEST; ``forced_az`` -1 for none."""

    shotid: str
    obs_number: int
    ra: float
    dec: float
    azimuth: float
    track: int
    exptimes: tuple[float, float, float]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    forced_az: float = -1
    qifu: str | None = None

    def shot_fields(self) -> dict[str, Any]:
        """What every ``ocd.run_shot.*`` payload carries (events.md 3.4)."""
        return {
            "shotid": self.shotid,
            "obs_number": self.obs_number,
            "ra": self.ra,
            "dec": self.dec,
            "azimuth": self.azimuth,
            "track": self.track,
            "exptimes": [float(t) for t in self.exptimes],
        }

    @property
    def track_name(self) -> str:
        return TRACK_NAMES[self.track]

    def placeholders(self, dither_with_probes: bool) -> dict[str, Any]:
        """The placeholders of the command templates and of [paths] data_dir."""
        exp01, exp02, exp03 = self.exptimes
        return {
            "shotid": self.shotid, "obs_number": self.obs_number, "ra": self.ra,
            "dec": self.dec, "azimuth": self.azimuth, "track": self.track,
            "track_name": self.track_name, "exp01": exp01, "exp02": exp02, "exp03": exp03,
            "dither_with_probes": "yes" if dither_with_probes else "no",
        }


@dataclass(frozen=True)
class ShotOutcome:
    request: ShotRequest
    ok: bool
    error: str | None = None
    exc_type: str | None = None
    traceback: str | None = None


class ShotError(Exception):
    """A step of the shot could not be done (message says which and why)."""


class ShotStopped(Exception):
    """The shot was stopped from outside (Ctrl+C, service stop)."""


@dataclass(frozen=True)
class _Settings:
    """The options a shot reads, once, when it starts."""

    syscmd_command: list[str]
    dither_command: list[str]
    syscmd_timeout: float
    dither_timeout: float
    kill_grace: float
    recipe: str
    dither_with_probes: bool
    wait_last_write: bool
    last_write_quiet: float
    last_write_timeout: float
    shuffle_shot: Path
    shuffle_template: str
    acam_dest_file: Path | None
    data_dir: str

    @classmethod
    def read(cls, config: Config) -> "_Settings":
        return cls(
            syscmd_command=config.get_command("run_shot", "syscmd_command"),
            dither_command=config.get_command("run_shot", "dither_command"),
            syscmd_timeout=config.get_float("run_shot", "syscmd_timeout"),
            dither_timeout=config.get_float("run_shot", "dither_timeout"),
            kill_grace=config.get_float("run_shot", "kill_grace"),
            recipe=config.get_str("run_shot", "recipe"),
            dither_with_probes=config.get_bool("run_shot", "dither_with_probes"),
            wait_last_write=config.get_bool("run_shot", "wait_last_write"),
            last_write_quiet=config.get_float("run_shot", "last_write_quiet"),
            last_write_timeout=config.get_float("run_shot", "last_write_timeout"),
            shuffle_shot=config.get_path("paths", "shuffle_shot") or Path("."),
            shuffle_template=config.get_str("paths", "shuffle_conf_template"),
            acam_dest_file=config.get_path("paths", "acam_dest_file"),
            data_dir=config.get_str("paths", "data_dir"),
        )


def fill_template(template: list[str], values: Mapping[str, Any], option: str) -> list[str]:
    """Format each word of a command template; a bad placeholder names the option."""
    try:
        return [word.format(**values) for word in template]
    except (KeyError, IndexError, ValueError) as exc:
        raise ShotError(
            f"{option}: bad placeholder {exc} in {' '.join(template)!r}; known: "
            + " ".join("{" + k + "}" for k in values)
        ) from None


def folder_signature(folder: Path) -> tuple | None:
    """(name, size, mtime) of every file below ``folder``; None if it is missing."""
    if not folder.is_dir():
        return None
    entries = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            entries.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


class ShotRunner:
    """Runs one shot at a time, step by step, and says what it does."""

    def __init__(
        self,
        config: Config,
        emit: Emit,
        processes: ProcessRunner,
        reactor: IReactorTime,
        store: Any = None,
    ):
        self.config = config
        self.emit = emit
        self.processes = processes
        self.reactor = reactor
        self.store = store
        self.running: ShotRequest | None = None
        #: The running shot's current step (``exp_hetdex 2``), for the status page.
        self.step: str | None = None
        self._stopping = False
        self._child: RunningProcess | None = None
        self._waiting: defer.Deferred | None = None
        self._done: defer.Deferred | None = None

    # -- public -----------------------------------------------------------------
    def run(self, request: ShotRequest) -> defer.Deferred[ShotOutcome]:
        """Run the whole shot; fires with its :class:`ShotOutcome`, never fails."""
        if self.running is not None:
            return defer.succeed(ShotOutcome(
                request, ok=False, exc_type="ShotError",
                error=f"shot {self.running.shotid} is still running: {request.shotid} not started",
            ))
        self.running = request
        self._stopping = False
        self._done = defer.Deferred()
        result = defer.ensureDeferred(self._run(request))

        def finished(outcome: ShotOutcome) -> ShotOutcome:
            self.running = None
            self.step = None
            done, self._done = self._done, None
            if done is not None:
                done.callback(outcome)
            return outcome

        return result.addCallback(finished)

    def stop(self) -> defer.Deferred[Any]:
        """End the running shot's children; fires once its FINISH went out."""
        if self.running is None or self._done is None:
            return defer.succeed(None)
        log.warn("shot {shotid}: stopping it", shotid=self.running.shotid)
        self._stopping = True
        done = defer.Deferred()
        self._done.addBoth(lambda outcome: (done.callback(None), outcome)[1])
        if self._child is not None:
            self._child.terminate()
        if self._waiting is not None and not self._waiting.called:
            self._waiting.callback(None)
        return done

    # -- the sequence -------------------------------------------------------------
    async def _run(self, request: ShotRequest) -> ShotOutcome:
        step = "start"
        open_step: str | None = None
        exp_fields: dict[str, Any] = {}
        fields = request.shot_fields()
        try:
            self._record(request, "start", required=True)
            self._emit(Topic.RUN_SHOT_RUN, fields, exec_status=ExecStatus.START)
            settings = _Settings.read(self.config)
            values = request.placeholders(settings.dither_with_probes)

            step = open_step = "setup_telescope"
            self._emit(Topic.RUN_SHOT_SETUP, fields, exec_status=ExecStatus.START)
            self._record(request, step)
            commands = self._read_setup(request, settings)
            for index, command in enumerate(commands, 1):
                self._check_stop(step)
                step = f"setup_telescope {index}/{len(commands)}"
                argv = fill_template(settings.syscmd_command,
                                     dict(values, switch=syscmd_switch(command), command=command),
                                     "[run_shot] syscmd_command")
                name = f"syscmd {command.split('(', 1)[0]}"
                await self._run_child(request, step, argv, name, settings.syscmd_timeout,
                                      settings.kill_grace)
            open_step = None
            self._emit(Topic.RUN_SHOT_SETUP, fields, exec_status=ExecStatus.FINISH, error=False)

            for exposure, seconds in enumerate(request.exptimes, 1):
                self._check_stop(step)
                step = open_step = f"exp_hetdex {exposure}"
                exp_fields = dict(exposure=exposure, seconds=float(seconds),
                                  observation=request.obs_number, object=request.shotid,
                                  recipe=settings.recipe)
                self._emit(Topic.RUN_SHOT_EXPOSURE, fields, exec_status=ExecStatus.START, **exp_fields)
                argv = fill_template(settings.dither_command,
                                     dict(values, exposure=exposure, seconds=seconds),
                                     "[run_shot] dither_command")
                await self._run_child(request, step, argv, f"hetdex-dither.py exposure {exposure}",
                                      float(seconds) + settings.dither_timeout, settings.kill_grace)
                open_step = None
                self._emit(Topic.RUN_SHOT_EXPOSURE, fields, exec_status=ExecStatus.FINISH, error=False, **exp_fields)

            if settings.wait_last_write:
                self._check_stop(step)
                step = "wait_last_write"
                self._record(request, step)
                await self._wait_last_write(request, settings, dict(values, exposure=3,
                                                                    seconds=request.exptimes[2]))
            self._check_stop(step)
        except Exception as exc:
            if self._stopping and not isinstance(exc, ShotStopped):
                exc = ShotStopped(f"shot stopped (Ctrl+C or service stop) during {step}: {exc}")
            message = str(exc)
            trace = traceback_module.format_exc()
            log.error("shot {shotid} (obs {obs}) failed during {step}: {message}",
                      shotid=request.shotid, obs=request.obs_number, step=step, message=message)
            if open_step == "setup_telescope":
                self._emit(Topic.RUN_SHOT_SETUP, fields, exec_status=ExecStatus.FINISH, error=True)
            elif open_step is not None and open_step.startswith("exp_hetdex"):
                self._emit(Topic.RUN_SHOT_EXPOSURE, fields, exec_status=ExecStatus.FINISH, error=True, **exp_fields)
            outcome = ShotOutcome(request, ok=False, error=message,
                                  exc_type=type(exc).__name__, traceback=trace)
            self._emit(Topic.RUN_SHOT_RUN, fields, exec_status=ExecStatus.FINISH, error=True,
                       exc_type=outcome.exc_type, exc_value=message, traceback=trace)
        else:
            log.info("shot {shotid} (obs {obs}) done", shotid=request.shotid,
                     obs=request.obs_number)
            outcome = ShotOutcome(request, ok=True)
            self._emit(Topic.RUN_SHOT_RUN, fields, exec_status=ExecStatus.FINISH, error=False)
        self._clear()
        return outcome

    def _read_setup(self, request: ShotRequest, settings: _Settings) -> list[str]:
        qifu = request.qifu
        if qifu is None and "QIFU" in request.metadata:
            qifu = str(request.metadata["QIFU"])
        path = shuffle_path(settings.shuffle_shot, settings.shuffle_template, request.shotid,
                            qifu, request.track)
        shuffle = read_shuffle(path)
        log.info("shot {shotid}: shuffle file {path}", shotid=request.shotid, path=str(path))
        commands = setup_commands(shuffle, track=request.track, metadata=request.metadata,
                                  forced_az=request.forced_az)
        if settings.acam_dest_file is not None:
            source = settings.shuffle_shot / shuffle.acam_output
            if not source.is_file():
                raise ShotError(f"ACAM image {source} (from {path}) does not exist")
            try:
                settings.acam_dest_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, settings.acam_dest_file)
            except OSError as exc:
                raise ShotError(f"cannot copy ACAM image {source} to "
                                f"{settings.acam_dest_file}: {exc}") from None
            log.info("shot {shotid}: ACAM image {source} copied to {dest}",
                     shotid=request.shotid, source=str(source), dest=str(settings.acam_dest_file))
        return commands

    async def _run_child(self, request: ShotRequest, step: str, argv: list[str], name: str,
                         timeout: float, kill_grace: float) -> None:
        log.info("shot {shotid}: {step}: {name}", shotid=request.shotid, step=step, name=name)
        child = self.processes.start(argv, name=name, timeout=timeout, kill_grace=kill_grace)
        self._child = child
        if child.pid is not None:
            self._record(request, step, child.pid)
        try:
            await child.result
        finally:
            self._child = None

    async def _wait_last_write(self, request: ShotRequest, settings: _Settings,
                               values: Mapping[str, Any]) -> None:
        try:
            folder = Path(settings.data_dir.format(**values))
        except (KeyError, IndexError, ValueError) as exc:
            raise ShotError(f"[paths] data_dir {settings.data_dir!r}: bad placeholder {exc}") from None
        quiet, limit = settings.last_write_quiet, settings.last_write_timeout
        start = self.reactor.seconds()
        state = {"signature": folder_signature(folder), "changed": start}
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiting = waiting

        def poll() -> None:
            try:
                now = self.reactor.seconds()
                signature = folder_signature(folder)
                if signature != state["signature"]:
                    state.update(signature=signature, changed=now)
                elif signature is not None and now - state["changed"] >= quiet:
                    log.info("shot {shotid}: {folder} quiet for {quiet} s", shotid=request.shotid,
                             folder=str(folder), quiet=quiet)
                    waiting.callback(None)
                    return
                if now - start >= limit:
                    log.warn("shot {shotid}: {folder} still {what} after {limit} s: not waiting "
                             "any longer", shotid=request.shotid, folder=str(folder), limit=limit,
                             what="missing" if signature is None else "changing")
                    waiting.callback(None)
            except Exception:  # a periodic call logs its own errors
                log.failure("shot {shotid}: watching {folder}", shotid=request.shotid,
                            folder=str(folder))

        loop = task.LoopingCall(poll)
        loop.clock = self.reactor
        loop.start(max(min(quiet / 5.0, 0.5), 0.01), now=False)
        try:
            await waiting
        finally:
            self._waiting = None
            if loop.running:
                loop.stop()

    # -- helpers ---------------------------------------------------------------------
    def _check_stop(self, step: str) -> None:
        if self._stopping:
            raise ShotStopped(f"shot stopped (Ctrl+C or service stop) after {step}")

    def _emit(self, topic: str, shot: Mapping[str, Any], **extra: Any) -> None:
        fields = dict(shot)
        fields.update(extra)
        try:
            self.emit(topic, fields)
        except Exception:
            log.failure("cannot emit {topic}", topic=topic)

    def _record(self, request: ShotRequest, step: str, pgid: int | None = None,
                required: bool = False) -> None:
        """Write what crash recovery needs; ``required`` (before anything moves) fails the shot.

        A shot whose record cannot be written could not be recovered after a
        crash of OCD, so it does not start; a later step that cannot be
        written is logged and the shot goes on.
        """
        self.step = step
        if self.store is None:
            return
        try:
            if pgid is None:
                self.store.record_running(request.shotid, request.obs_number, step)
            else:
                # Leader start time and boot id: a restart signals this group
                # only if it is still this one (crash recovery).
                group = GroupIdentity.of_leader(pgid)
                self.store.record_running(request.shotid, request.obs_number, step, pgid,
                                          pgid_start=group.start_time, boot_id=group.boot_id)
        except StateDbError as exc:
            if required:
                raise ShotError(f"cannot record the shot for crash recovery: {exc}") from None
            log.error("shot {shotid}: cannot record step {step} for crash recovery: {error}",
                      shotid=request.shotid, step=step, error=str(exc))
        except Exception:
            if required:
                raise
            log.failure("cannot record the running shot {shotid}", shotid=request.shotid)

    def _clear(self) -> None:
        if self.store is None:
            return
        try:
            self.store.clear_running()
        except StateDbError as exc:
            log.error("cannot clear the running-shot record (a restart will count this shot "
                      "as failed): {error}", error=str(exc))
        except Exception:
            log.failure("cannot clear the running-shot record")

