"""What ``twistd ocd`` loads: ``Options`` and ``makeService``.

``twistd ocd`` takes exactly ``ocd run``'s options: ``Options`` hands its
argv to the argparse parser of ``ocd run`` (one parser, one set of help
texts), and ``makeService`` calls the same builder as ``ocd run``
(:func:`ocd.app.makeService`). No reactor import here: ``twistd -r``
chooses it later.

As ``ocd run``: a ``--config FILE`` that does not exist, any other
configuration error, a file OCD writes that cannot be used
(:func:`ocd.start_files.check_start_files`), or a URL that OCD must bind
and cannot is one line on the terminal (and in ``--logfile``) and exit
status 2, no traceback. The files and URLs are tried before twistd forks,
so a daemon reports it too. Logging is
twistd's (``--logfile``, ``--syslog``), filtered by ``[general] log_level``
and copied to ``[general] json_log`` (:func:`ocd.logs.with_config`).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from twisted.python import usage

EXIT_USAGE = 2


class Options(usage.Options):
    """``ocd run``'s argparse options inside twistd's ``usage.Options``."""

    synopsis = "[ocd run options]"

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        from ocd.cli import overrides_from_args, subcommand_parser

        argv = list(sys.argv[1:] if options is None else options)
        parser = subcommand_parser(["run"])
        parser.prog = "twistd ocd"
        args = parser.parse_args(argv)  # -h and bad options exit like ``ocd run``
        self["args"] = args
        self["config"] = getattr(args, "config", None)
        self["overrides"] = overrides_from_args(parser, args)

    def getUsage(self, width: int | None = None) -> str:
        from ocd.cli import subcommand_parser

        parser = subcommand_parser(["run"])
        parser.prog = "twistd ocd"
        return parser.format_help()


def load_config(options: Any):
    """The configuration of ``options`` (master, ``--config`` file, overrides)."""
    from ocd.config import Config

    return Config.load(options["config"], options["overrides"], required=True)


def _twistd_options(options: Any) -> Any:
    """twistd's own options (``--logfile``...), when run by twistd."""
    return getattr(options, "parent", None)


def _fail(options: Any, message: str) -> None:
    """One line on the terminal and in ``--logfile``; exit 2 like ``ocd run``."""
    line = f"twistd ocd: {message}"
    print(line, file=sys.stderr, flush=True)
    parent = _twistd_options(options)
    logfile = parent.get("logfile") if parent is not None else None
    if logfile and logfile != "-":
        try:
            with open(logfile, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError:
            pass
    raise SystemExit(EXIT_USAGE)


def _log_observer(options: Any, config: Any) -> Any:
    """twistd's log observer, filtered and copied as ``ocd run`` does."""
    parent = _twistd_options(options)
    if parent is None or parent.get("logger"):
        return None  # not under twistd, or the user chose a --logger
    from twisted.logger import ILogObserver, LegacyLogObserverWrapper
    from twisted.scripts.twistd import _SomeApplicationRunner

    from ocd.logs import with_config

    # twistd's own choice of file, stdout or syslog (the one it would make).
    base = _SomeApplicationRunner.loggerFactory(parent)._getLogObserver()
    if not ILogObserver.providedBy(base):
        base = LegacyLogObserverWrapper(base)
    return with_config(config, base)


def probe_binds(config: Any) -> None:
    """Try the TCP URLs OCD binds before twistd forks; :class:`BindError` if taken.

    A plain socket, bound and closed at once (a ZeroMQ context must not be
    made before the fork); ZeroMQ binds the same address again at start.
    """
    import errno
    import socket

    from ocd.protocols.zmq import BindError

    for url in (config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop"),
                config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot")):
        if not url.startswith("tcp://"):
            continue
        host, _, port = url[len("tcp://"):].rpartition(":")
        host = "0.0.0.0" if host in ("*", "") else host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except (OSError, ValueError) as exc:
            reason = ("address already in use" if getattr(exc, "errno", None) == errno.EADDRINUSE
                      else str(exc))
            raise BindError(f"cannot bind {url}: {reason}") from None


def makeService(options: Options):
    """The service tree of ``ocd run``; a bad configuration stops twistd with why."""
    from twisted.internet import reactor  # twistd has installed its choice by now

    from ocd.start_files import check_start_files, json_log_error
    from ocd.config import ConfigError

    try:
        config = load_config(options)
        check_start_files(config)  # the files OCD writes, as ``ocd run`` does
    except ConfigError as exc:  # before the service tree is even imported
        _fail(options, f"configuration error: {exc}")

    from ocd.app import makeService as build
    from ocd.app import use_monotonic_clock
    from ocd.protocols.zmq import BindError

    try:
        use_monotonic_clock(reactor)  # before anything is scheduled
        service = build(config, reactor, daemon=True, program="twistd ocd")
        probe_binds(config)
    except (ConfigError, BindError) as exc:
        kind = "configuration error: " if isinstance(exc, ConfigError) else ""
        _fail(options, f"{kind}{exc}")
    try:
        service.log_observer = _log_observer(options, config)
    except OSError as exc:  # the JSON log: checked above, so this is what changed since
        _fail(options, f"configuration error: {json_log_error(config, exc)}")
    return service


__all__ = ["Options", "makeService"]
