"""The docs site: it builds with no warning, its examples run, its links hold, it opens.

The site is built once per test session (``python -m sphinx -W -b html docs OUT``, nitpicky: every
cross-reference must resolve) and the tests share it. Each page's examples run in a process of
their own against a local server (``tests/docs_examples.py`` says how each kind of block is
run). The browser check serves the built site on loopback to the headless Chromium the web
view's tests drive.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import inspect
import shutil
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import flameup_pandas
import flameup_pandas.airflow
import flameup_pandas.exceptions
import flameup_pandas.spark
import flameup_pandas.testing
from tests.docs_examples import blocks
from tests.testing.test_ui_browser import CHROMIUM_FLAGS, _installed

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PUBLIC_MODULES = (
    flameup_pandas,
    flameup_pandas.exceptions,
    flameup_pandas.testing,
    flameup_pandas.spark,
    flameup_pandas.airflow,
)
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_" not in p.parts[0])
RUN = ("python", "console")


class Site:
    """A built site: where it is, what the build printed and how long it took."""

    def __init__(self, out: Path, output: str, seconds: float) -> None:
        self.out, self.output, self.seconds = out, output, seconds

    def pages(self) -> list[Path]:
        return sorted(p for p in self.out.rglob("*.html") if "_static" not in p.parts)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    out = tmp_path_factory.mktemp("docs") / "html"
    started = time.perf_counter()
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = build.stdout + build.stderr
    assert build.returncode == 0, output
    return Site(out, output, time.perf_counter() - started)


def test_the_site_builds_with_warnings_as_errors(site: Site) -> None:
    assert "WARNING" not in site.output and "ERROR" not in site.output, site.output
    assert (site.out / "index.html").exists() and (site.out / "searchindex.js").exists()
    for page in PAGES:
        assert (site.out / page.replace(".md", ".html")).exists(), page


def documented(site: Site) -> dict[str, object]:
    """Every Python object the reference has an entry for, by its documented name."""
    # objects.inv: four header lines, then zlib-compressed "name domain:role priority uri text"
    raw = (site.out / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    found: dict[str, object] = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        if role.startswith("py:") and role != "py:module":
            found[name] = _lookup(name)
    return found


def _lookup(name: str) -> object:
    module, _, attribute = name.rpartition(".")
    try:
        owner: object = sys.modules[module]
    except KeyError:
        parent, _, klass = module.rpartition(".")
        owner = getattr(sys.modules.get(parent), klass, None)
    return getattr(owner, attribute, None)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_name_has_a_reference_entry(site: Site, module: ModuleType) -> None:
    """Each name in each public module's ``__all__`` is documented: under that name, or (for a
    class or function exported from two modules, such as the exceptions) under the other."""
    entries = documented(site)
    same_object = {
        id(obj) for obj in entries.values() if inspect.isclass(obj) or inspect.isfunction(obj)
    }
    missing = [
        name
        for name in module.__all__
        if f"{module.__name__}.{name}" not in entries
        and (
            name in getattr(module, "_NEEDS_AIRFLOW", ())
            or id(getattr(module, name)) not in same_object
        )
    ]
    assert missing == [], f"no reference entry for {module.__name__}: {missing}"


def test_the_cli_reference_lists_every_command_and_option(site: Site) -> None:
    from flameup_pandas.cli import build_parser

    page = (site.out / "reference" / "cli.html").read_text()
    parsers = [build_parser()]
    for action in parsers[0]._actions:
        if isinstance(action.choices, dict):
            for command, parser in action.choices.items():
                assert f">{command}<" in page, command  # its section heading
                parsers.append(parser)
    for parser in parsers:
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or action.dest == "help":
                continue  # -h/--help: on every command, not listed
            for option in action.option_strings:
                assert option in page, option


class _Anchors(HTMLParser):
    """The ids a page defines and the local links and resources it points at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.remote: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(str(values[key]))
        for key in ("href", "src"):
            target = values.get(key)
            if not target:
                continue
            if urlsplit(target).scheme in ("http", "https"):
                if tag in ("script", "img", "link", "iframe"):
                    self.remote.append(target)  # a resource the offline site would miss
            elif not target.startswith(("mailto:", "javascript:", "data:")):
                self.links.append(target)


def test_internal_links_and_anchors_resolve(site: Site) -> None:
    parsed: dict[Path, _Anchors] = {}
    for page in site.pages():
        parsed[page] = _Anchors()
        parsed[page].feed(page.read_text())
    broken = []
    for page, anchors in parsed.items():
        assert anchors.remote == [], f"{page.name} loads from the network: {anchors.remote}"
        for link in anchors.links:
            parts = urlsplit(link)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site.out)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else set()
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site.out)}: {link} (no such anchor)")
    assert broken == [], "\n".join(broken)


def test_every_guide_has_an_example_that_runs() -> None:
    for page in PAGES:
        if page.startswith(("guides/", "behaviour/")) or page == "getting-started.md":
            kinds = {lang for lang, _, _ in blocks((DOCS / page).read_text())}
            assert kinds & set(RUN), f"{page} has no example"


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if {lang for lang, _, _ in blocks((DOCS / p).read_text())} & set(RUN)],
)
def test_the_examples_of_each_page_run(page: str, tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "customers.parquet", tmp_path / "examples")
    done = subprocess.run(
        [sys.executable, ROOT / "tests" / "docs_examples.py", DOCS / page],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]


@pytest.fixture(scope="module")
def served(site: Site) -> Iterator[str]:
    """The built site over loopback HTTP (as a docs host serves it; search needs no server)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site.out))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}/"
        server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _installed("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('docs-chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_installed("chromedriver")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[object]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_site_opens_in_a_browser(browser: WebDriver, served: str) -> None:
    """Home page, a guide with its screenshot, an API page, and a search that finds a function,
    with nothing in the console."""
    browser.get(served)
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("flameup-pandas")
    assert "flameup-pandas" in browser.title
    assert console_errors(browser) == []

    browser.get(served + "guides/testing.html")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Testing your own code")
    image = browser.find_element(By.CSS_SELECTOR, "img[src$='people-page.png']")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    assert console_errors(browser) == []

    browser.get(served + "reference/api.html")
    entry = browser.find_element(By.ID, "flameup_pandas.upsert_file")
    assert "upsert_file" in entry.text
    assert console_errors(browser) == []

    browser.get(served + "search.html?q=upsert_arrow")
    WebDriverWait(browser, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
    )
    found = browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")
    assert any("upsert_arrow" in a.text for a in found), [a.text for a in found]
    assert console_errors(browser) == []
