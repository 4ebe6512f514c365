"""ocd.core is pure: importing any of it pulls in no reactor, socket or database.

Each module is imported in a process of its own, so what another test (or
another core module) imported first cannot hide a dependency. The processes
are forks of one probe interpreter that has imported the heavy third-party
packages the core uses (numpy, astropy) and nothing forbidden: starting
astropy once rather than once per module is most of the cost, and since the
forbidden modules are absent from the probe before each fork, any of them
found in a fork after its import came with the module imported there.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import ocd.core

# One probe child answers for every module: its tests share a worker under xdist.
pytestmark = pytest.mark.xdist_group("core_purity")

FORBIDDEN = ("twisted.internet", "zmq", "txzmq", "sqlite3", "pymysql", "docker")

CORE_MODULES = sorted(
    f"ocd.core.{info.name}" for info in pkgutil.iter_modules(ocd.core.__path__)
)

#: Imported by the probe before it forks: the slow third-party imports of the core.
#: Only a saving; the probe refuses to fork if these pull in anything forbidden.
WARM = ("numpy", "erfa", "astropy.units", "astropy.time", "astropy.coordinates",
        "astropy.utils.iers")

#: Not a core module: imports the reactor, so the probe must name it.
KNOWN_BAD = "twisted.internet.task"

PROBE = """
import importlib, json, os, sys, traceback
forbidden = json.loads(sys.argv[1])

def found():
    return sorted(name for name in sys.modules
                  if any(name == f or name.startswith(f + ".") for f in forbidden))

for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
if found():
    print(json.dumps({"warm-up": found()}), flush=True)
    sys.exit(3)
for module in json.loads(sys.argv[3]):
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
            line = json.dumps({module: found()})
        except BaseException:
            line = json.dumps({module: "import failed: " + traceback.format_exc()})
        os.write(1, (line + "\\n").encode())
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        print(json.dumps({module: f"the probe's fork ended with status {status}"}), flush=True)
"""


@pytest.fixture(scope="module")
def imported():
    """module name -> the forbidden modules its import pulled in (or why it failed)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(FORBIDDEN), json.dumps(WARM),
         json.dumps([*CORE_MODULES, KNOWN_BAD])],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answers: dict[str, object] = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            answers.update(json.loads(line))
    return answers


def test_the_core_has_the_modules_of_the_layout():
    expected = {"events", "state", "decide", "scheduler", "shots", "clock", "machines",
                "alerts", "shot_tracker"}
    assert expected <= {name.rsplit(".", 1)[1] for name in CORE_MODULES}


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module, imported):
    assert imported[module] == [], f"{module} imports I/O modules: {imported[module]}"


def test_the_probe_sees_a_forbidden_import(imported):
    """The check can fail: a module that imports the reactor is caught, in the same probe run."""
    assert "twisted.internet" in imported[KNOWN_BAD]
