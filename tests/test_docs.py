"""The docs site: it builds with no warning, its examples run, its links hold, it opens.

The site is built once per test session (``python -m sphinx -W -b html docs OUT``, nitpicky: every
cross-reference must resolve) and the tests share it. It is built in a venv holding only the
package's dependencies and the ``docs`` extra, so the extra is known to build the site alone:
the venv is made once per set of requirements and kept in ``FLAMEUP_DOCS_VENV_CACHE`` (default
``~/.cache/flameup-pandas``), the checkout on its path. Each page's examples run in a process of
their own against a local server (``tests/docs_examples.py`` says how each kind of block is
run), the reference's examples in this one. The browser check serves the built site on loopback
to the headless Chromium the web view's tests drive.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import inspect
import os
import runpy
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import typing
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
import flameup_pandas._run.options
import flameup_pandas.airflow
import flameup_pandas.exceptions
import flameup_pandas.spark
import flameup_pandas.testing
from flameup_pandas._accessor import FlameupAccessor
from flameup_pandas._polars import PolarsFlameup
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


def docs_python() -> Path:
    """The Python of a venv holding the package's dependencies and the docs extra, nothing else.

    Made once per set of requirements (and Python version), in a temporary folder renamed into
    place when complete, so parallel sessions never see a half-made venv.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = sorted(project["dependencies"] + project["optional-dependencies"]["docs"])
    key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("FLAMEUP_DOCS_VENV_CACHE", Path.home() / ".cache/flameup-pandas"))
    venv = cache / f"docs-venv-{key}"
    if not (venv / "bin" / "python").exists():
        cache.mkdir(parents=True, exist_ok=True)
        making = cache / f"docs-venv-{key}.{os.getpid()}"
        shutil.rmtree(making, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", making], check=True, timeout=300)
        install = [making / "bin" / "python", "-m", "pip", "install", "-q", *wanted]
        done = subprocess.run(install, capture_output=True, text=True, timeout=1800, check=False)
        assert done.returncode == 0, f"pip install of the docs extra failed:\n{done.stderr}"
        try:
            making.rename(venv)
        except OSError:  # another session finished first: its venv is the same
            shutil.rmtree(making, ignore_errors=True)
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    out = tmp_path_factory.mktemp("docs") / "html"
    python = docs_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLAMEUP_"))}
    env["PYTHONPATH"] = str(ROOT)  # the checkout, as an editable install would put it
    started = time.perf_counter()
    build = subprocess.run(
        [python, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=out.parent,
    )
    output = build.stdout + build.stderr
    assert build.returncode == 0, output
    return Site(out, output, time.perf_counter() - started)


def test_the_site_builds_with_warnings_as_errors(site: Site) -> None:
    assert "WARNING" not in site.output and "ERROR" not in site.output, site.output
    assert (site.out / "index.html").exists() and (site.out / "searchindex.js").exists()
    for page in PAGES:
        assert (site.out / page.replace(".md", ".html")).exists(), page


def inventory(site: Site) -> dict[str, str]:
    """Every Python entry of the reference: its documented name and its page (with anchor)."""
    # objects.inv: four header lines, then zlib-compressed "name domain:role priority uri text"
    raw = (site.out / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    found: dict[str, str] = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        name, role, _, uri = line.split(" ", 4)[:4]
        if role.startswith("py:") and role != "py:module":
            found[name] = uri.replace("$", name) if uri.endswith("$") else uri
    return found


def documented(site: Site) -> dict[str, object]:
    """Every Python object the reference has an entry for, by its documented name."""
    return {name: _lookup(name) for name in inventory(site)}


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


ACCESSORS = {"pandas.DataFrame.flameup": FlameupAccessor, "polars.DataFrame.flameup": PolarsFlameup}
OPTIONS = flameup_pandas._run.options


def public_methods(cls: type) -> list[str]:
    return [n for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)]


def test_every_accessor_method_has_a_page_of_its_own(site: Site) -> None:
    """``df.flameup.upsert`` is documented as ``pandas.DataFrame.flameup.upsert`` (never as an
    alias of a private class), on its own page, with an example."""
    entries = inventory(site)
    for prefix, cls in ACCESSORS.items():
        for method in public_methods(cls):
            name = f"{prefix}.{method}"
            assert name in entries, f"no reference entry for {name}"
            page = (site.out / entries[name].split("#")[0]).read_text()
            assert "Example" in page, f"{name} has no example"


def typed_keywords(function: typing.Callable[..., object]) -> tuple[list[str], str | None]:
    """The keyword-only parameters of ``function`` and the TypedDict its ``**options`` are."""
    names, options = [], None
    for param in inspect.signature(function).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            names.append(param.name)
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            text = str(param.annotation)
            options = text.removeprefix("Unpack[").removesuffix("]") if "Unpack[" in text else None
    return names, options


def test_every_keyword_has_an_entry_and_every_function_links_its_table(site: Site) -> None:
    """Each key of each TypedDict of the options module is an entry of its own (in its table:
    keyword, type, default, meaning); each public function, and each accessor method, names
    its keywords on its page and links the table of its ``**options``."""
    entries = inventory(site)
    for name, cls in vars(OPTIONS).items():
        if typing.is_typeddict(cls) and cls.__module__ == OPTIONS.__name__:
            for key in cls.__annotations__:
                assert f"{OPTIONS.__name__}.{name}.{key}" in entries, f"{name}.{key}"
    assert f"{OPTIONS.__name__}.Options.max_changes" in entries
    assert f"{OPTIONS.__name__}.Options.max_creates" in entries
    functions = {
        f"{module.__name__}.{n}": getattr(module, n)
        for module in PUBLIC_MODULES
        for n in module.__all__
        # the Airflow provider's classes need Airflow (not in the suite's venv): not functions
        if n not in getattr(module, "_NEEDS_AIRFLOW", ()) and inspect.isfunction(getattr(module, n))
    }
    for prefix, cls in ACCESSORS.items():
        for method in public_methods(cls):
            delegate = getattr(flameup_pandas, method, None)
            if inspect.isfunction(delegate):
                functions[f"{prefix}.{method}"] = delegate
    missing = []
    for name, function in functions.items():
        page = (site.out / entries[name].split("#")[0]).read_text()
        keywords, options = typed_keywords(function)
        missing += [f"{name}: {k}" for k in keywords if f">{k}<" not in page]
        if options and f"#{OPTIONS.__name__}.{options}" not in page:
            missing.append(f"{name}: no link to the {options} table")
    assert missing == []


@pytest.mark.parametrize(
    "example",
    sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "reference" / "examples").rglob("*.py")),
)
def test_the_reference_examples_run(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flameup_server: object
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)  # type: ignore[attr-defined]
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)  # type: ignore[attr-defined]
    runpy.run_path(str(DOCS / example), run_name="__main__")


def test_the_performance_page_draws_every_plot(site: Site) -> None:
    page = (site.out / "performance.html").read_text()
    main = page[page.index('id="furo-main-content"') :]
    assert main.count("<svg") >= 4  # resync, throughput, memory, pacing
    assert "(commit " in main


def test_the_quickstart_notebook_is_on_the_site_with_its_outputs(site: Site) -> None:
    page = (site.out / "examples" / "quickstart.html").read_text()
    assert page.count("cell_output") >= 10
    assert "2,997" in page  # the first sync's summary, as executed by the build
    assert "Traceback" not in page


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
    """Home page, a guide with its screenshot, a function's page, an accessor method's page
    linking its keyword table, and a search that finds a function, with nothing in the
    console."""
    browser.get(served)
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("flameup-pandas")
    assert "flameup-pandas" in browser.title
    assert console_errors(browser) == []

    browser.get(served + "guides/testing.html")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Testing your own code")
    image = browser.find_element(By.CSS_SELECTOR, "img[src$='people-page.png']")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    assert console_errors(browser) == []

    browser.get(served + "reference/api/flameup_pandas/upsert_file.html")
    entry = browser.find_element(By.ID, "flameup_pandas.upsert_file")
    assert "upsert_file" in entry.text
    assert console_errors(browser) == []

    browser.get(served + "reference/api/pandas.DataFrame.flameup/upsert.html")
    entry = browser.find_element(By.ID, "pandas.DataFrame.flameup.upsert")
    assert "upsert" in entry.text
    browser.find_element(By.CSS_SELECTOR, "a[href$='#flameup_pandas._run.options.Options']")
    assert console_errors(browser) == []

    browser.get(served + "search.html?q=upsert_arrow")
    WebDriverWait(browser, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
    )
    found = browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")
    assert any("upsert_arrow" in a.text for a in found), [a.text for a in found]
    assert console_errors(browser) == []


def test_the_sample_file_is_the_packages_sample_customers() -> None:
    """examples/customers.parquet (the README's) is sample_customers() (the quickstart's, which
    a wheel has too): the docs and the README show the same table."""
    import pandas as pd

    from flameup_pandas.testing import sample_customers

    shipped = pd.read_parquet(ROOT / "examples" / "customers.parquet")
    pd.testing.assert_frame_equal(sample_customers(), shipped)
