"""Fault: ``ocd config send`` used to change programs and accept absurd values.

Issue 12, section 3: ``alert_command`` was applied live (one forged failed
shot then ran it as OCD's user), and ``exptimes`` ``nan nan nan``,
``-5 -5 -5``, ``1e300 1 1`` and ``report_interval 0`` were all applied. The
main loop runs on real sockets; the updates go through ``ocd config send``'s
own code.
"""

from __future__ import annotations

import io

import pytest
import pytest_twisted

from bus_helpers import make_config
from ocd.config import Config, ConfigError
from conftest import stopped_on_reactor

pytestmark = pytest.mark.integration

REFUSED = [
    ("general", "alert_command", "/bin/sh -c 'touch /tmp/owned'", "live: no"),
    ("run_shot", "syscmd_command", "/bin/sh -c id {command}", "live: no"),
    ("run_shot", "dither_command", "/bin/sh -c id", "live: no"),
    ("run_shot", "exptimes", "nan nan nan", "three finite numbers from 1 to 86400 s"),
    ("run_shot", "exptimes", "-5 -5 -5", "three finite numbers from 1 to 86400 s"),
    ("run_shot", "exptimes", "1e300 1 1", "three finite numbers from 1 to 86400 s"),
    # with overhead 0, every decision overflowed in the look-ahead
    ("run_shot", "exptimes", "1e-308 1e-308 1e-308", "three finite numbers from 1 to 86400 s"),
    ("decision", "report_interval", "0", "expected above 0 to 3600 s"),
]


ATTEMPTS = 3  # of ocd config send (its -n)


@pytest.fixture
def ocd(free_url):
    from twisted.internet import reactor

    from ocd.app import makeService

    config = make_config(free_url)
    service = makeService(config, reactor)
    service.startService()
    yield service, config
    stopped_on_reactor(service)


@pytest_twisted.inlineCallbacks
def test_program_options_and_bad_values_are_refused_live(ocd):
    from twisted.internet import reactor

    from ocd.commands.config_send import send

    service, config = ocd
    before = config.as_dict()
    for section, option, value, why in REFUSED:
        out = io.StringIO()
        code = yield send(config, section, option, value, ATTEMPTS, 1.0, reactor, out)
        assert code == 1, (option, value, out.getvalue())
        last = out.getvalue().splitlines()[-1]
        assert "refused" in last and option in last and why in last, last
    assert config.as_dict() == before
    # A sane value still goes through.
    out = io.StringIO()
    code = yield send(config, "run_shot", "exptimes", "300 300 300", ATTEMPTS, 1.0, reactor, out)
    assert code == 0, out.getvalue()
    loop = service.getServiceNamed("main_loop")
    assert loop.settings.exptimes == (300.0, 300.0, 300.0)
    # Each refused update counted; ``send`` sends again when no answer came
    # within its interval (a loaded machine), and a repeat is refused again.
    assert len(REFUSED) <= loop.counters.get("config.refused") <= ATTEMPTS * len(REFUSED)


@pytest.mark.parametrize("option, value", [
    ("exptimes", "nan nan nan"), ("exptimes", "-5 -5 -5"), ("exptimes", "1e300 1 1"),
    ("exptimes", "0 360 360"),
])
def test_the_same_rules_hold_at_start(option, value):
    with pytest.raises(ConfigError, match=r"\[run_shot\] exptimes"):
        Config.load(None, [("run_shot", option, value)])


def test_report_interval_zero_at_start():
    with pytest.raises(ConfigError, match=r"\[decision\] report_interval .*expected above 0"):
        Config.load(None, [("decision", "report_interval", "0")])


def test_program_options_are_not_live_in_the_master():
    config = Config()
    for option in (("general", "alert_command"), ("run_shot", "syscmd_command"),
                   ("run_shot", "dither_command")):
        assert not config.is_live(*option), option
