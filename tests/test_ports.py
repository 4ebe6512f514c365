"""Free ports of a simulated night: never from the kernel's ephemeral range.

A golden night failed with "ocd allow_hetdex: cannot bind
tcp://127.0.0.1:49437: address already in use": ``prepare()`` took its URLs
from ``bind(port 0)``, that is from the ephemeral range (32768-60999 here),
which outgoing connections of the other test workers also draw from.
"""

from __future__ import annotations

from ocd.sim.ports import SPAN, ephemeral_low, free_port, free_url


def test_free_ports_lie_below_the_ephemeral_range():
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
