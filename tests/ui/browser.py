"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Selenium through the system
``/usr/bin/chromedriver``, given explicitly so Selenium Manager never tries to download a browser or a driver.

Missing Chromium (or chromedriver) skips the tests with the reason; under ``CI=true`` it fails them (``.ci/run``
installs both). Helpers wait for conditions (WebDriverWait), never for fixed times.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
WAIT_SECONDS = 60.0


def require_chromium() -> None:
    """Skip (or, under CI=true, fail) when Chromium, chromedriver or Selenium is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = (f"{' and '.join(missing)} missing: the browser tests need Debian's chromium and chromium-driver "
                  "(apt-get install -y chromium chromium-driver) and selenium (requirements-test.txt)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": mandatory under CI=true")
        pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile (removed afterwards)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="zoho-ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT_SECONDS, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition, message=f"waited for {what}")


def element(driver: Any, css: str | None = None, *, xpath: str | None = None, clickable: bool = False,
            timeout: float = WAIT_SECONDS) -> Any:
    """The first element matching ``css`` or ``xpath``, once present (and clickable if asked)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    locator = (By.XPATH, xpath) if xpath else (By.CSS_SELECTOR, css)
    condition = EC.element_to_be_clickable(locator) if clickable else EC.presence_of_element_located(locator)
    return wait(driver, condition, timeout, what=xpath or css or "")


def click(driver: Any, target: Any) -> None:
    """Scroll ``target`` into the middle of the view, then click it."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    target.click()


def log_in(driver: Any, url: str, user: str = "admin", password: str = "admin") -> None:
    """Sign in on the simple auth manager's login page, as a person does."""
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    element(driver, "input[name=username]").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: "/auth/login" not in d.current_url and d.find_elements(By.CSS_SELECTOR, "nav, [aria-label=Admin]"),
         what="the UI after signing in")


def toast_ids(driver: Any) -> set[str]:
    """The ids of the notifications on screen now (to wait for a new one after them)."""
    from selenium.webdriver.common.by import By

    return {note.get_attribute("id") for note in driver.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-part=root]")}


def toast(
    driver: Any, title: str, timeout: float = WAIT_SECONDS, exclude: set[str] = frozenset(), also: str = ""
) -> tuple[str, str]:
    """Wait for a notification (not one of ``exclude``) whose text contains ``title`` (and ``also``: its
    description may render after its title); return its type (success/error) and its text."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def found(d: Any) -> tuple[str, str] | None:
        for note in d.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-part=root]"):
            try:
                if note.get_attribute("id") not in exclude and title in note.text and also in note.text:
                    return note.get_attribute("data-type"), note.text
            except StaleElementReferenceException:
                continue
        return None

    return wait(driver, found, timeout, what=f"a notification {title!r}")


PASTE_SCRIPT = """
const data = new DataTransfer();
data.setData('text/plain', arguments[0]);
document.activeElement.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
"""


def replace_editor_text(driver: Any, container_css: str, text: str) -> None:
    """Replace the text of the form's JSON (Monaco) editor in ``container_css``: select all, delete, then paste
    ``text`` as a person pasting would (typing it key by key would be re-indented and auto-closed by the editor)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    click(driver, element(driver, f"{container_css} .view-lines"))
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(Keys.DELETE).perform()
    driver.execute_script(PASTE_SCRIPT, text)


def screenshot(driver: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
