"""Shared fixtures. No reactor (or txZMQ) import at module level here."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_url():
    """A factory of fresh ``tcp://127.0.0.1:PORT`` URLs."""
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def ocd_command():
    """The argv prefix that runs this tree's ``ocd`` in a child process."""
    return [sys.executable, "-m", "ocd"]


@pytest.fixture
def child_env():
    """Environment for child processes: this tree first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# Property tests (hypothesis) stay fast: a modest number of examples, no
# deadline (the machine is shared), no example database in the work tree.
# HYPOTHESIS_PROFILE=thorough runs many more.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass
else:
    settings.register_profile("ocd", max_examples=40, deadline=None, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", max_examples=2000, deadline=None, database=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ocd"))
