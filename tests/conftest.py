"""Shared fixtures. No reactor (or txZMQ) import at module level here."""

from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Drawn at random *below* the kernel's ephemeral range: a port from
    ``bind(port 0)`` is one the kernel also hands to outgoing connections
    (every ZeroMQ ``connect`` of the 8 test runs sharing this machine), so
    it could be taken between this check and OCD's ``bind``. Sockets a test
    binds itself use ``tcp://127.0.0.1:*`` and read the endpoint instead.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``@pytest.mark.xdist_group`` work under ``--dist loadgroup`` with pytest 9.2.

    pytest-xdist (3.8) names a test's group by appending ``@group`` to the
    test's id in each worker, through ``item._nodeid``; pytest 9.2 keeps the
    id in ``item._id`` and no longer reads ``_nodeid``, so the scheduler saw
    no group and spread a group's tests over the workers (each running the
    module fixture they were grouped to share). This puts the suffix where
    pytest reads it; it does nothing where xdist's own suffix took.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                 for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture
def free_url():
    """A factory of fresh ``tcp://127.0.0.1:PORT`` URLs."""
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def night_cache_dir(tmp_path_factory):
    """One ``OCD_CACHE_DIR`` for the whole run: a generated night (seconds, tens
    under load) is made once and shared by the modules that replay the same one.

    Under pytest-xdist every worker has its own base folder; the cache sits in
    their common parent so that the workers share it too. A night is written
    to a partial file and renamed (:func:`ocd.sim.night.generate_night`), so
    two workers that generate the same night at once both read a whole file.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "ocd-cache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def ocd_command():
    """The argv prefix that runs this tree's ``ocd`` in a child process."""
    return [sys.executable, "-m", "ocd"]


def child_environment() -> dict[str, str]:
    """Environment for child processes: this tree first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def child_env():
    """:func:`child_environment`, for one test."""
    return child_environment()


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


@pytest.fixture
def logged():
    """Every twisted.logger event emitted during the test, in order."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)
