"""Free ports of a simulated night: never from the kernel's ephemeral range.

A golden night failed with "ocd allow_hetdex: cannot bind
tcp://127.0.0.1:49437: address already in use": ``prepare()`` took its URLs
from ``bind(port 0)``, that is from the ephemeral range (32768-60999 here),
which outgoing connections of the other test workers also draw from.
"""

from __future__ import annotations

import pytest

from ocd.sim import ports
from ocd.sim.ports import RANGE_VARIABLE, SPAN, ephemeral_low, free_port, free_url, share


def test_free_ports_lie_below_the_ephemeral_range(monkeypatch):
    monkeypatch.delenv(RANGE_VARIABLE, raising=False)
    high = ephemeral_low()
    ports = [free_port() for _ in range(200)]
    assert all(max(1024, high - SPAN) <= port < high for port in ports)
    assert len(set(ports)) > 100  # drawn at random, not one port handed out again and again
    assert free_url().startswith("tcp://127.0.0.1:")


def test_a_simulated_night_binds_below_the_ephemeral_range(tmp_path, monkeypatch):
    from ocd.sim.simulate import prepare

    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "1")
    monkeypatch.setenv("OCD_STANDIN_LOG", "")
    plan = prepare(tmp_path / "night", shots=2, hours=0.1, bad_weather_minutes=0)
    urls = [url for option in ("ocd_db_replay", "ocd_main_loop", "ocd_allow_hetdex",
                               "ocd_config", "ocd_run_shot")
            for url in plan.config.get_urls("urls", option)]
    assert len(urls) == 6
    assert all(int(url.rsplit(":", 1)[1]) < ephemeral_low() for url in urls), urls


def test_a_process_never_hands_out_one_port_twice(monkeypatch):
    """Checked free is not held: a test that drew two URLs once got one port twice
    ("cannot bind tcp://127.0.0.1:21860: address already in use")."""
    monkeypatch.setenv(RANGE_VARIABLE, "40000-40040")
    monkeypatch.setattr(ports, "_handed_out", set())
    drawn = [free_port() for _ in range(20)]
    assert len(set(drawn)) == 20
    assert all(40000 <= port < 40040 for port in drawn)


def test_workers_that_draw_at_once_have_shares_that_do_not_overlap():
    shares = [tuple(int(p) for p in share(i, 4).split("-")) for i in range(4)]
    assert all(a[1] <= b[0] for a, b in zip(shares, shares[1:]))
    assert all(high - low >= 1000 for low, high in shares)
    assert shares[-1][1] <= ephemeral_low()


@pytest.mark.parametrize("text", ["20000", "a-b", "30000-20000", "80-90"])
def test_a_bad_port_range_names_the_variable(monkeypatch, text):
    monkeypatch.setenv(RANGE_VARIABLE, text)
    with pytest.raises(ValueError, match=RANGE_VARIABLE):
        free_port()
