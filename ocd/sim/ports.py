"""Free TCP ports on 127.0.0.1 for the URLs of a simulated night (and the tests').

A port from ``bind(port 0)`` comes from the kernel's ephemeral range, the
range it also hands to outgoing connections: every ZeroMQ ``connect`` on the
machine (another test, another night) may take it between the check here
and OCD's ``bind``, which then fails with "address already in use". So the
port is drawn at random *below* the ephemeral range, where no outgoing
connection goes, and checked free by binding it once.
"""

from __future__ import annotations

import random
import socket

#: How many ports below the ephemeral range are drawn from.
SPAN = 12000


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the ephemeral range."""
    high = ephemeral_low()
    low = max(1024, high - SPAN)
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def free_url() -> str:
    """``tcp://127.0.0.1:PORT`` on a :func:`free_port`."""
    return f"tcp://127.0.0.1:{free_port()}"
