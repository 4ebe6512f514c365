"""What ``twistd ocd`` loads: ``Options`` and ``makeService``.

``twistd ocd`` takes exactly ``ocd run``'s options: ``Options`` hands its
argv to the argparse parser of ``ocd run`` (one parser, one set of help
texts), and ``makeService`` calls the same builder as ``ocd run``
(:func:`ocd.app.makeService`). Logging is twistd's (``--logfile``,
``--syslog``). No reactor import here: ``twistd -r`` chooses it later.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.python import usage


class Options(usage.Options):
    """``ocd run``'s argparse options inside twistd's ``usage.Options``."""

    synopsis = "[ocd run options]"

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        import sys

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

    return Config.load(options["config"], options["overrides"])


def makeService(options: Options):
    """The service tree of ``ocd run``; a bad configuration stops twistd with why."""
    from ocd.config import ConfigError
    from twisted.internet import reactor  # twistd has installed its choice by now

    from ocd.app import makeService as build

    try:
        return build(load_config(options), reactor, program="twistd ocd")
    except ConfigError as exc:
        raise SystemExit(f"twistd ocd: configuration error: {exc}") from None


__all__ = ["Options", "makeService"]
