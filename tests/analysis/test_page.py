"""GET / in a real headless Chromium: one live chart per product, the table equal to the API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.analysis import dataset
from tests.analysis.browser import ensure_chromium, headless_chromium
from tests.analysis.conftest import Analysis
from tests.conftest import ROOT, Services

VENDOR = ROOT / "analysis" / "static" / "vendor" / "lightweight-charts"
SCRIPT_SHA256 = "e21cc5caa0226ef30bd8549c50b9ef926615f2a4ee6b4e486353477a55f598cf"
SCREENSHOT = ROOT / ".run" / "analysis-page.png"

# What the charts hold, per product: [time, open, high, low, close] as drawn.
DRAWN = """
return Object.fromEntries(Object.entries(window.analysisPage.charts).map(([product, view]) =>
  [product, view.candles.data().map((b) => [b.time, b.open, b.high, b.low, b.close])]));
"""

TABLE = """
return [...document.querySelectorAll("#largest tbody tr")].map((row) =>
  [...row.querySelectorAll("td")].map((cell) => cell.textContent));
"""

# The bars each chart shows, as the time scale's logical range (bar indexes, fractional).
SHOWN = """
return Object.fromEntries(Object.entries(window.analysisPage.charts).map(([product, view]) =>
  [product, view.chart.timeScale().getVisibleLogicalRange()]));
"""

# The trade tape's line of each chart.
TAPE = """
return Object.fromEntries([...document.querySelectorAll("section.chart")].map((section) =>
  [section.dataset.product, section.querySelector(".tape").textContent]));
"""

pytestmark = pytest.mark.timeout(600)  # the first test may apt-get install Chromium


@pytest.fixture(scope="module")
def browser(services: Services) -> Iterator[webdriver.Chrome]:
    driver = headless_chromium(*ensure_chromium())
    try:
        yield driver
    finally:
        driver.quit()


def refreshes(browser: webdriver.Chrome) -> int:
    return int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-refreshes") or 0)


def wait(browser: webdriver.Chrome, condition: Any, timeout_s: float = 30) -> None:
    WebDriverWait(browser, timeout_s, poll_frequency=0.2).until(lambda _: condition())


def api_candles(analysis: Analysis, product: str, granularity: int) -> list[list[float]]:
    rows = analysis.get(f"/products/{product}/candles?granularity={granularity}").json()
    return [[time, open_, high, low, close] for time, low, high, open_, close, _ in reversed(rows)]


def test_vendored_chart_library_is_the_pinned_file_with_its_licence() -> None:
    script = VENDOR / "lightweight-charts.standalone.production.js"
    assert hashlib.sha256(script.read_bytes()).hexdigest() == SCRIPT_SHA256
    assert "Apache License" in (VENDOR / "LICENSE").read_text()


def test_page_draws_one_chart_per_product_and_the_largest_trades(
    analysis: Analysis, browser: webdriver.Chrome
) -> None:
    page = analysis.get("/")
    assert page.status == 200 and b"https://" not in page.body  # no CDN
    browser.get(analysis.url + "/?refresh=1")
    wait(browser, lambda: refreshes(browser) >= 1)

    products = [p["id"] for p in analysis.get("/products").json()]
    sections = browser.find_elements(By.CSS_SELECTOR, "section.chart")
    assert sorted(s.get_attribute("data-product") or "" for s in sections) == sorted(products)
    for section in sections:
        assert section.find_elements(By.TAG_NAME, "canvas"), "a chart draws on canvases"
        assert int(section.get_attribute("data-bars") or 0) > 0

    # The charts hold the API's candles (the page refreshes every second: compare with a
    # fresh answer, and after the page's next refresh again if a minute turned between the two).
    for _ in range(3):
        drawn = browser.execute_script(DRAWN)
        expected = {product: api_candles(analysis, product, 60) for product in products}
        if drawn == expected:
            break
        seen = refreshes(browser)
        wait(browser, lambda seen=seen: refreshes(browser) > seen)
    assert drawn == expected

    # A view shows every bar, and still does once the plot's width changes (autoSize learns
    # a plot's width after layout: a chart that kept its first bar spacing showed its last
    # few bars only).
    def every_bar_shown() -> bool:
        shown = browser.execute_script(SHOWN)
        return all(
            shown[p]["from"] < 0.5 and shown[p]["to"] > len(b) - 1.5 for p, b in drawn.items()
        )

    assert every_bar_shown(), browser.execute_script(SHOWN)
    width, height = browser.get_window_size().values()
    browser.set_window_size(width - 60, height)  # three charts a row still, each narrower
    try:
        wait(browser, every_bar_shown, timeout_s=10)
    finally:
        browser.set_window_size(width, height)

    trades = analysis.get("/trades/largest?hours=24&limit=10").json()
    cells = browser.execute_script(TABLE)  # in one go: the page redraws it every second
    assert cells == [
        [t["product_id"], t["time"], t["side"], t["price"], t["size"], t["notional"]]
        for t in trades
    ]
    assert len(cells) == 10

    # Completeness of each product's tape, in the page's words, from the API's answer.
    lines = {product: tape_line(analysis, product) for product in products}
    assert lines == {
        "BTC-USD": "trade tape: complete, repaired from REST: 20",
        "ETH-BTC": "trade tape: 5 missing, repaired from REST: 0",
        "BTC-EUR": lines["BTC-EUR"],  # the gap since its September tape: the oracle's count
    }
    missing = dataset.completeness(
        analysis.trades, "BTC-EUR", analysis.now - timedelta(hours=24), analysis.now
    )["missing"]
    assert lines["BTC-EUR"] == f"trade tape: {missing} missing, repaired from REST: 0"
    assert browser.execute_script(TAPE) == lines

    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert not console_errors(browser)


def test_granularity_selector_and_auto_refresh(
    analysis: Analysis, browser: webdriver.Chrome, services: Services
) -> None:
    browser.get(analysis.url + "/?refresh=1")
    wait(browser, lambda: refreshes(browser) >= 1)
    Select(browser.find_element(By.ID, "granularity")).select_by_value("300")
    wait(
        browser,
        lambda: all(
            s.get_attribute("data-granularity") == "300"
            for s in browser.find_elements(By.CSS_SELECTOR, "section.chart")
        ),
    )
    for product in dataset.PRODUCTS:
        assert browser.execute_script(DRAWN)[product] == api_candles(analysis, product, 300)

    # A product that appears while the page is open gets its chart at the next refresh.
    now = datetime.now(UTC).replace(tzinfo=None)
    tick = dataset.Tick("BTC-EUR", 10**8, now, "1", "1")
    with services.admin() as connection:
        dataset.insert(connection, analysis.database, [tick])
    wait(
        browser,
        lambda: (
            browser.execute_script(
                "return window.analysisPage.charts['BTC-EUR'].candles.data().at(-1).close"
            )
            == 1
        ),
    )
    assert not console_errors(browser)


def tape_line(analysis: Analysis, product: str) -> str:
    """What the page should say, from /completeness (last 24 h)."""
    found = analysis.get(f"/products/{product}/completeness").json()
    if found["first_trade_id"] is None:
        return "trade tape: no trades in the last 24 h"
    repaired = f"repaired from REST: {found['repaired']}"
    if found["missing"]:
        return f"trade tape: {found['missing']} missing, {repaired}"
    return "trade tape: complete" + (f", {repaired}" if found["repaired"] else "")


def console_errors(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """Errors the page logged (console.error, failed loads, uncaught exceptions)."""
    entries: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry["level"] in ("SEVERE", "ERROR")]


def test_screenshot_is_kept(analysis: Analysis) -> None:
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_size > 10_000
    assert Path(SCREENSHOT).read_bytes()[:4] == b"\x89PNG"
