"""The status page in a real headless Chromium (Debian's chromium + chromium-driver).

The page is served by the real status service of a main loop on a Clock;
Selenium (blocking) runs in a thread so the reactor keeps serving while the
browser polls. The page must load, show the verdict, and change when OCD is
armed during the test.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
import pytest_twisted

from test_status_service import NIGHT, arm, good_sky  # noqa: F401 (fixtures below)
from test_status_service import make_loop, serve  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed "
                              "(apt-get install chromium chromium-driver; .ci/run does it)"),
]


def start_browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_text(driver, element_id: str, wanted, timeout: float = 30.0) -> str:
    """Wait (in the browser thread) until the element's text satisfies ``wanted``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        text = d.find_element(By.ID, element_id).text
        return text if wanted(text) else False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(ready)


@pytest.mark.slow(4.5)
@pytest_twisted.inlineCallbacks
def test_page_shows_the_verdict_and_follows_arming(serve):
    from twisted.internet import threads

    loop, clock, provider, service = serve()
    port = (yield service._waitingForPort).getHost().port
    good_sky(loop, clock, NIGHT)
    profile = tempfile.mkdtemp(prefix="ocd-chromium-")
    driver = yield threads.deferToThread(start_browser, profile)
    try:
        yield threads.deferToThread(driver.get, f"http://127.0.0.1:{port}/")
        verdict = yield threads.deferToThread(wait_text, driver, "verdict",
                                              lambda t: t in ("WAIT", "RUN"))
        assert verdict == "WAIT"
        blockers = yield threads.deferToThread(wait_text, driver, "blockers", bool)
        assert "HETDEX shots are not allowed" in blockers
        arming = yield threads.deferToThread(wait_text, driver, "arming", bool)
        assert arming == "HETDEX shots NOT allowed"
        heartbeat = yield threads.deferToThread(wait_text, driver, "heartbeat", bool)
        assert heartbeat.endswith("ago")

        arm(loop)  # in the reactor thread, as the main loop's handler runs
        clock.advance(0)
        verdict = yield threads.deferToThread(wait_text, driver, "verdict",
                                              lambda t: t == "RUN")
        assert verdict == "RUN"
        arming = yield threads.deferToThread(wait_text, driver, "arming",
                                             lambda t: t == "HETDEX shots allowed")
        blockers = yield threads.deferToThread(driver.find_element, "id", "blockers")
        assert (yield threads.deferToThread(lambda: blockers.text)) == ""
        next_shot = yield threads.deferToThread(wait_text, driver, "next", bool)
        assert "window open now" in next_shot
    finally:
        yield threads.deferToThread(driver.quit)
        shutil.rmtree(profile, ignore_errors=True)
