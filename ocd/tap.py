"""What ``twistd ocd`` loads: ``Options`` and ``makeService`` (not yet)."""

from __future__ import annotations

from twisted.python import usage


class Options(usage.Options):
    """Placeholder until the event bus lands."""


def makeService(options: Options):  # pragma: no cover - replaced by the bus issue
    raise SystemExit("twistd ocd: not available yet")
