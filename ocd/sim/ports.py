"""Free TCP ports on 127.0.0.1 for the URLs of a simulated night (and the tests').

A port from ``bind(port 0)`` comes from the kernel's ephemeral range, the
range it also hands to outgoing connections: every ZeroMQ ``connect`` on the
machine (another test, another night) may take it between the check here
and OCD's ``bind``, which then fails with "address already in use". So the
port is drawn at random *below* the ephemeral range, where no outgoing
connection goes, and checked free by binding it once.

Checked free is not held: the caller binds later (a child process a second
later). Two draws must therefore not meet. A process never hands out one
port twice, and processes that draw at the same time (pytest-xdist's
workers) each draw from a share of their own, ``OCD_PORT_RANGE=LOW-HIGH``
(:func:`share`). Before both, one worker's test once failed with "cannot
bind tcp://127.0.0.1:21860: address already in use".
"""

from __future__ import annotations

import os
import random
import socket

#: How many ports below the ephemeral range are drawn from.
SPAN = 12000
#: The environment variable that narrows the range to a share (``LOW-HIGH``, HIGH excluded).
RANGE_VARIABLE = "OCD_PORT_RANGE"
_handed_out: set[int] = set()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def default_range() -> tuple[int, int]:
    """SPAN ports right below the ephemeral range (HIGH excluded)."""
    high = ephemeral_low()
    return max(1024, high - SPAN), high


def port_range() -> tuple[int, int]:
    """Where ports are drawn: ``OCD_PORT_RANGE`` when set, else :func:`default_range`."""
    text = os.environ.get(RANGE_VARIABLE, "").strip()
    if not text:
        return default_range()
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"{RANGE_VARIABLE}={text!r}: expected LOW-HIGH, two port numbers") from None
    if not 1024 <= low < high <= 65536:
        raise ValueError(f"{RANGE_VARIABLE}={text!r}: expected 1024 <= LOW < HIGH <= 65536")
    return low, high


def share(index: int, count: int) -> str:
    """The ``OCD_PORT_RANGE`` of drawer ``index`` of ``count`` drawing at once: the
    default range cut into ``count`` parts that do not overlap."""
    low, high = default_range()
    width = (high - low) // count
    return f"{low + index * width}-{low + (index + 1) * width}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and this process has
    not handed out before (while half its range is left), from :func:`port_range`."""
    low, high = port_range()
    if len(_handed_out) * 2 >= high - low:
        _handed_out.clear()
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def free_url() -> str:
    """``tcp://127.0.0.1:PORT`` on a :func:`free_port`."""
    return f"tcp://127.0.0.1:{free_port()}"
