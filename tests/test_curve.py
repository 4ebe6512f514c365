"""CurveZMQ on the control URLs (events.md 3.7): keys, configuration, refusals."""

from __future__ import annotations

import io
import os
import stat

import pytest
import pytest_twisted
import zmq

from bus_helpers import make_config
from ocd.config import Config, ConfigError


def _pair():
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def _esc(key: str) -> str:
    return key.replace("$", "$$")


def test_ocd_keys_prints_a_pair_that_the_configuration_reads_back(tmp_path, capsys):
    from ocd.cli import main
    from ocd.protocols.curve import check_key

    for _ in range(5):  # some keys hold a '$', written '$$'
        assert main(["keys", "--for", "ocd"]) == 0
        text = capsys.readouterr().out
        site = tmp_path / "site.cfg"
        site.write_text(text.replace("[security]", "[security]\ncurve = yes\n"
                                     "allowed_client_keys = " + _esc(_pair()[0])))
        config = Config.load(str(site))
        public = check_key(config.get_str("security", "ocd_public_key"), "public")
        secret = check_key(config.get_str("security", "ocd_secret_key"), "secret")
        assert zmq.curve_public(secret) == public
        from ocd.protocols.curve import server_settings

        assert server_settings(config).public == public


def test_ocd_keys_writes_an_owner_only_file_and_never_overwrites(tmp_path, capsys):
    from ocd.cli import main

    out = tmp_path / "client.keys"
    assert main(["keys", "-o", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert "client_public_key = " in text and "client_secret_key = " in text
    assert main(["keys", "-o", str(out)]) == 2  # a person's mistake: exit 2, as elsewhere
    assert "never overwritten" in capsys.readouterr().err
    assert out.read_text() == text
    assert main(["keys", "-o", str(tmp_path)]) == 2
    assert "it exists (a folder)" in capsys.readouterr().err
    assert main(["keys", "-o", str(tmp_path / "no-such" / "k")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    assert main(["keys", "-o", ""]) == 2
    assert "-o needs a file name" in capsys.readouterr().err


def _secure(free_url, ocd_pair, allowed, client_pair, **extra):
    return make_config(
        free_url, security__curve="yes", security__ocd_public_key=_esc(ocd_pair[0]),
        security__ocd_secret_key=_esc(ocd_pair[1]),
        security__allowed_client_keys=" ".join(_esc(k) for k in allowed),
        security__client_public_key=_esc(client_pair[0]),
        security__client_secret_key=_esc(client_pair[1]), **extra)


def test_curve_is_off_by_default_and_incomplete_settings_name_the_option(free_url):
    from ocd.protocols.curve import client_settings, server_settings

    assert server_settings(make_config(free_url)) is None
    assert client_settings(make_config(free_url)) is None
    ocd, client, other = _pair(), _pair(), _pair()
    mixed = _secure(free_url, (ocd[0], other[1]), [client[0]], client)
    with pytest.raises(ConfigError, match=r"\[security\] ocd_public_key is not the public key"):
        server_settings(mixed)
    with pytest.raises(ConfigError, match="allowed_client_keys is empty"):
        server_settings(_secure(free_url, ocd, [], client))
    with pytest.raises(ConfigError, match=r"\[security\] client_secret_key: a CurveZMQ key is 40"):
        client_settings(_secure(free_url, ocd, [client[0]], (client[0], "short")))
    with pytest.raises(ConfigError, match=r"allowed_client_keys: .* is not a Z85 key"):
        server_settings(_secure(free_url, ocd, ["x" * 39 + "~"], client))


def test_ocd_run_refuses_an_incomplete_curve_configuration(free_url):
    from twisted.internet import reactor

    from ocd.app import makeService

    config = _secure(free_url, _pair(), [], _pair())
    with pytest.raises(ConfigError, match="allowed_client_keys is empty"):
        makeService(config, reactor)


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_an_allowed_key_arms_ocd_and_another_key_is_refused_and_counted(free_url):
    """A real main loop on free ports: the stranger never reaches it."""
    from twisted.internet import reactor

    from ocd.app import makeService
    from ocd.commands.allow_hetdex import allow

    ocd_pair, friend, stranger = _pair(), _pair(), _pair()
    config = _secure(free_url, ocd_pair, [friend[0]], friend)
    urls = {option: config.as_dict()["urls"][option] for option in config.options("urls")}
    as_stranger = _secure(free_url, ocd_pair, [friend[0]], stranger,
                          **{f"urls__{k}": v for k, v in urls.items()})
    service = makeService(config, reactor)
    service.startService()
    loop = service.getServiceNamed("main_loop")
    seen = []
    loop.listeners.append(seen.append)
    try:
        out = io.StringIO()
        code = yield allow(as_stranger, "start", 4, 0.25, reactor, out)
        assert code == 3, out.getvalue()
        assert loop.counters.get("refused.curve.allow_hetdex") > 0
        assert loop.arming.state == "not_allowed"
        assert not [e for e in seen if e.topic.startswith("ocd.states.hetdex_allowed")]
        assert loop.counters.get("received.allow_hetdex") == 0
        code = yield allow(config, "start", 20, 0.25, reactor, out)
        assert code == 0, out.getvalue()
        assert loop.arming.state == "allowed"
    finally:
        yield service.stopService()


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_a_replay_shakes_hands_with_its_key_and_a_stranger_is_refused(free_url):
    """db_replay's URL is ours on both ends: protected like the control URLs."""
    from twisted.internet import reactor

    from ocd.app import makeService
    from ocd.protocols.control import reach_main_loop

    ocd_pair, friend, stranger = _pair(), _pair(), _pair()
    replay_url = free_url()
    config = _secure(free_url, ocd_pair, [friend[0]], friend, urls__event_urls="",
                     urls__ocd_db_replay=replay_url)
    urls = {option: config.as_dict()["urls"][option] for option in config.options("urls")}
    as_stranger = _secure(free_url, ocd_pair, [friend[0]], stranger,
                          **{f"urls__{k}": v for k, v in urls.items()})
    service = makeService(config, reactor)
    service.startService()
    loop = service.getServiceNamed("main_loop")
    try:
        out = io.StringIO()
        bus, client = yield reach_main_loop(as_stranger, replay_url, 4, 0.25, reactor, out,
                                            "ocd db_replay")
        assert client is None, out.getvalue()
        assert loop.counters.get("refused.curve.replay") > 0
        bus, client = yield reach_main_loop(config, replay_url, 20, 0.25, reactor, out,
                                            "ocd db_replay")
        assert client is not None, out.getvalue()
        client.close()
        bus.close()
    finally:
        yield service.stopService()
