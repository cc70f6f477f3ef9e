"""The web view in a real browser: headless Chromium driven through its WebDriver.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver`` packages (the
README's test command installs them when missing); Selenium is pointed at that driver, so it
never looks for one on the network. A screenshot of each page is written to
``artifacts/screenshots/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pandas as pd
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import RetryPolicy
from flameup_pandas.testing import FlameupServer

# Python 3.13 calls 422 "Unprocessable Content" (RFC 9110); 3.11 and 3.12 "Unprocessable Entity".
UNPROCESSABLE = f"422 {HTTPStatus(422).phrase}"

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # Chromium runs as root on this project's machines and in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
HOSTILE_NAME = "<script>document.title='pwned'</script>"
HOSTILE_PLAN = "<img src=x onerror=\"document.title='pwned'\">"
FAST = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)


def _installed(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y chromium chromium-driver "
            "(the README's test command does it when missing)"
        )
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, through the installed chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = _installed("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_installed("chromedriver")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


LONG_LOCAL = "x" * 62


def customers() -> pd.DataFrame:
    """150 customers: two invalid (never sent), two that only the server refuses."""
    n = 150
    frame = pd.DataFrame(
        {
            "userId": [f"c{i:03}" for i in range(n)],
            "email": [f"c{i:03}@example.com" for i in range(n)],
            "first_name": [f"Name{i}" for i in range(n)],
            "plan": ["pro" if i % 3 else "free" for i in range(n)],
        }
    )
    frame.loc[3, ["first_name", "plan"]] = [HOSTILE_NAME, HOSTILE_PLAN]
    frame.loc[5, "email"] = "not-an-email"  # invalid: our validation
    frame.loc[8, "userId"] = "x" * 300  # invalid: too long
    for i in (10, 120):  # rejected: a local part over 64 characters, left to the server
        frame.loc[i, "email"] = f"c{i:03}{LONG_LOCAL}@example.com"
    return frame


@pytest.fixture(scope="module")
def filled() -> Iterator[tuple[FlameupServer, pd.DataFrame]]:
    """A server that a frame with invalid and rejected rows was upserted into."""
    with FlameupServer(rate_limit=1000) as server:
        result = customers().flameup.upsert(
            api_key=server.api_key, base_url=server.base_url, rate_limit=None, progress=False
        )
        yield server, result


def shoot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def open_page(driver: WebDriver, url: str, title: str) -> None:
    driver.get(url)
    assert driver.find_element(By.TAG_NAME, "h1").text == title
    assert driver.title == f"{title} - Flameup local server"
    assert_clean(driver)


def assert_clean(driver: WebDriver) -> None:
    """No script ran (no alert, title untouched) and the console has no error."""
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.accept()
    assert "pwned" not in driver.title
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def rows(driver: WebDriver, table_id: str) -> list[list[str]]:
    table = driver.find_element(By.ID, table_id)
    return [
        [
            str(cell.get_attribute("textContent"))
            for cell in row.find_elements(By.CSS_SELECTOR, "th, td")
        ]
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def by_label(driver: WebDriver, label: str) -> WebElement:
    """The control a visible <label> names (what a screen reader would announce)."""
    element = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return driver.find_element(By.ID, str(element.get_attribute("for")))


def test_people_table_shows_the_people_stored(browser, filled) -> None:
    server, result = filled
    stored = int(result["flameup_status"].isin(["created", "updated"]).sum())
    assert stored == 146
    open_page(browser, server.ui_url, "People")
    table = rows(browser, "people")
    assert len(table) == 50
    assert [r[0] for r in table[:4]] == ["c000", "c001", "c002", "c003"]
    caption = browser.find_element(By.CSS_SELECTOR, "#people caption").text
    assert caption == "146 people, oldest first"
    assert table[3][3] == HOSTILE_NAME  # first_name, shown as text
    assert HOSTILE_PLAN in table[3]
    for missing in ("c005", "c008", "c010"):
        assert missing not in [r[0] for r in table]
    shoot(browser, "people")


def test_search_finds_one_person_by_keyboard(browser, filled) -> None:
    server, _ = filled
    open_page(browser, server.ui_url, "People")
    search = by_label(browser, "Search by userId, email or name")
    search.send_keys("C042@EXAMPLE", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: "search=" in d.current_url)
    table = rows(browser, "people")
    assert [r[0] for r in table] == ["c042"]
    shoot(browser, "people-search")
    link = browser.find_element(By.LINK_TEXT, "c042")
    link.send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: "/people/" in d.current_url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Person c042"


def test_person_page_shows_traits_and_the_requests_that_touched_them(browser, filled) -> None:
    server, _ = filled
    person = server.person("c003")
    assert person is not None
    open_page(browser, f"{server.ui_url}people/{person['id']}", "Person c003")
    fields = browser.find_element(By.ID, "fields").text
    assert f"first_name\n{HOSTILE_NAME}" in fields
    assert "email\nc003@example.com" in fields
    assert f"created_at\n{person['created_at']}" in fields
    traits = browser.find_element(By.XPATH, "//table[caption='Custom traits']")
    assert traits.find_element(By.CSS_SELECTOR, "tbody tr").text == f"plan {HOSTILE_PLAN}"
    touched = rows(browser, "requests")
    assert [r[3] for r in touched] == ["200 OK", UNPROCESSABLE]
    shoot(browser, "person")


def test_request_log_shows_each_batch_and_a_422s_field_errors(browser, filled) -> None:
    server, _ = filled
    open_page(browser, f"{server.ui_url}requests", "Requests")
    log = rows(browser, "requests")
    assert [(r[2], r[3], r[4]) for r in log] == [
        ("/api/v1/people/batch", "200 OK", "47"),
        ("/api/v1/people/batch", UNPROCESSABLE, "48"),
        ("/api/v1/people/batch", "200 OK", "99"),
        ("/api/v1/people/batch", UNPROCESSABLE, "100"),
    ]
    shoot(browser, "requests")
    browser.find_elements(By.CSS_SELECTOR, "#requests tbody a")[3].click()
    WebDriverWait(browser, 10).until(lambda d: "/requests/req_" in d.current_url)
    assert_clean(browser)
    errors = rows(browser, "field-errors")
    assert errors == [
        ["people[8]", "c010", f"c010{LONG_LOCAL}@example.com", "email", "Invalid email format"]
    ]
    body = browser.find_element(By.CSS_SELECTOR, "pre[aria-label='Request body']").text
    assert body.startswith('{\n  "people": [\n    {\n      "userId": "c000"')
    shoot(browser, "request-422")


def test_rate_limit_page_shows_the_window_of_the_key(browser, filled) -> None:
    server, _ = filled
    open_page(browser, f"{server.ui_url}rate-limit", "Rate limit")
    (window,) = rows(browser, "windows")
    assert window[0].startswith("key 1 · ") and window[2:4] == ["4", "996"]
    assert server.api_key not in browser.page_source
    shoot(browser, "rate-limit")


def test_a_fault_switched_on_from_the_page_makes_the_next_upsert_retry(browser) -> None:
    with FlameupServer(rate_limit=None) as server:
        open_page(browser, f"{server.ui_url}faults", "Faults")
        for label, value in (("error_rate", "0.5"), ("seed", "1")):
            field = by_label(browser, label)
            field.clear()
            field.send_keys(value)
        shoot(browser, "faults")
        browser.find_element(By.XPATH, "//button[normalize-space()='Save faults']").click()
        WebDriverWait(browser, 10).until(lambda d: "done=saved" in d.current_url)
        assert browser.find_element(By.CSS_SELECTOR, "[role=status]").text == "Faults saved."
        result = pd.DataFrame({"userId": ["r1", "r2"]}).flameup.upsert(
            api_key=server.api_key, base_url=server.base_url, retry=FAST, progress=False
        )
        assert list(result["flameup_status"]) == ["created", "created"]
        log = server.requests
        assert log[0].fault == "error" and log[0].status in (500, 503)
        assert log[-1].status == 200 and len(log) >= 2
        open_page(browser, f"{server.ui_url}requests", "Requests")
        assert [r[6] for r in rows(browser, "requests")][-1] == "error"
        shoot(browser, "requests-with-fault")


def test_clear_data_from_the_page(browser) -> None:
    with FlameupServer(rate_limit=None) as server:
        pd.DataFrame({"userId": ["a", "b"]}).flameup.upsert(
            api_key=server.api_key, base_url=server.base_url, progress=False
        )
        open_page(browser, f"{server.ui_url}faults", "Faults")
        browser.find_element(By.XPATH, "//button[normalize-space()='Clear data']").click()
        WebDriverWait(browser, 10).until(lambda d: "cleared=" in d.current_url)
        notice = browser.find_element(By.CSS_SELECTOR, "[role=status]").text
        assert notice == "Data cleared: 2 people deleted, request log emptied."
        assert len(server.people()) == 0 and server.requests == []


def test_keyboard_reaches_the_content_first(browser, filled) -> None:
    server, _ = filled
    open_page(browser, server.ui_url, "People")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "search"


def test_events_page_lists_tracked_events_and_each_persons_own(browser) -> None:
    with FlameupServer(rate_limit=1000) as server:
        target = {"api_key": server.api_key, "base_url": server.base_url, "rate_limit": None}
        pd.DataFrame({"userId": ["e1"]}).flameup.upsert(progress=False, **target)
        events = pd.DataFrame(
            {
                "userId": ["e1", "e2", "e1"],
                "name": ["signed_up", HOSTILE_NAME, "purchase"],
                "timestamp": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
                "amount": [None, 2.5, 10.0],
            }
        )
        result = events.flameup.track(event_column="name", **target)
        assert result["flameup_status"].tolist() == ["sent"] * 3
        open_page(browser, f"{server.ui_url}events", "Events")
        # events are sent several at a time, so they arrive (and are listed) in any order
        assert sorted(r[:2] for r in rows(browser, "events")) == sorted(
            [["signed_up", "e1"], [HOSTILE_NAME, "e2"], ["purchase", "e1"]]
        )
        shoot(browser, "events")
        person = server.person("e1")
        assert person is not None
        open_page(browser, f"{server.ui_url}people/{person['id']}", "Person e1")
        browser.find_element(By.LINK_TEXT, "Events of this person").click()
        WebDriverWait(browser, 10).until(lambda d: "/events?user=e1" in d.current_url)
        assert_clean(browser)
        assert sorted(r[0] for r in rows(browser, "events")) == ["purchase", "signed_up"]
