"""Debian's headless Chromium and its chromedriver, installed with apt-get when missing.

No browser is ever downloaded by a test tool: selenium gets both paths explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from selenium import webdriver

PACKAGES = ("chromium", "chromium-driver")


def ensure_chromium() -> tuple[str, str]:
    """(browser, driver) paths; installs Debian's packages when missing (needs root)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if os.geteuid() != 0:
        pytest.fail("chromium and chromium-driver are missing: apt-get install them (root)")
    print("[tests] installing Debian's chromium and chromium-driver", flush=True)
    apt_env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt_env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=apt_env)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "apt-get installed chromium but it is not on PATH"
    return browser, driver


def headless_chromium(browser: str, driver: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        "--disable-gpu",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
