"""Run the code examples of one docs page: ``python tests/docs_examples.py PAGE.md``.

``tests/test_docs.py`` runs this once per page, in a fresh folder holding the sample file, in a
process of its own (a page may start Spark, send itself SIGTERM or configure logging). The page's
fenced blocks run in document order:

- ``python``: executed in one namespace per page, with ``FLAMEUP_API_KEY`` and
  ``FLAMEUP_BASE_URL`` pointing at a local server. A block that imports Airflow is only
  compiled (``.ci/airflow`` runs the DAG under Airflow itself). Afterwards each ``test_*``
  function the page defined is called, with a fresh ``flameup_server`` when it asks for one.
- ``console``: one command a line. ``flameup-pandas ...`` runs against the same server and must
  not fail with a usage error (exit code 2); ``flameup-pandas serve ...`` must start and print
  its URL, then is stopped. ``pip install`` parts must name this package and extras it has;
  ``.venv/bin/TOOL`` parts a tool one of the extras installs; the README's two commands must
  be the README's. ``eval "$(flameup-pandas serve --env &)"`` starts and stops the server,
  ``python -c`` runs, ``git clone`` and ``cd`` are shown but not run (they need the repository's
  host).
- anything else (``text``: output and usage synopses) is not run.

It exits 0 when every example ran; otherwise it prints which block of the page failed and why.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
SERVE_TIMEOUT = 60


def blocks(text: str) -> list[tuple[str, str, int]]:
    """Each fenced block of a page: its language, its body and the line it starts on."""
    return [
        (match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1)
        for match in FENCE.finditer(text)
    ]


def commands(body: str) -> list[str]:
    """The commands of a console block: one a line, backslash continuations joined."""
    return [line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [c for lang, body, _ in blocks(text) if lang == "console" for c in commands(body)]


def extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def check_install(part: str) -> None:
    """A pip install of this package (or the checkout): every extra it names exists."""
    words = shlex.split(part)
    targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    assert targets, f"nothing to install in {part!r}"
    for target in targets:
        if re.fullmatch(r"dist/flameup_pandas-\*\.whl", target):
            continue  # the wheel python -m build writes
        name, _, wanted = target.partition("[")
        assert name in ("flameup-pandas", "."), f"installs another package: {part!r}"
        unknown = set(filter(None, wanted.rstrip("]").split(","))) - extras()
        assert not unknown, f"no such extra {sorted(unknown)} in {part!r}"


def check_tool(tool: str, part: str) -> None:
    """A tool the project's extras install (``dev`` holds ruff and mypy, which the test
    environment CI runs the suite in does not have yet)."""
    if tool in ("python", "pip"):
        return
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    assert any(re.match(rf"{re.escape(tool)}\b", r) for r in wanted), f"no extra installs {part!r}"


def run_cli(command: str) -> None:
    """``flameup-pandas ...`` against the page's server; ``serve`` is started and stopped."""
    args = shlex.split(command)[1:]
    cli = [sys.executable, "-m", "flameup_pandas.cli", *args]
    if args[:1] == ["serve"]:
        serve(cli)
        return
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
    print(done.stdout + done.stderr)
    assert done.returncode != 2, f"{command!r} exited 2 (a usage or configuration error)"


def serve(cli: list[str]) -> None:
    with subprocess.Popen(cli, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        try:
            lines = [server.stdout.readline().removeprefix("export ") for _ in range(3)]
            assert any(line.startswith("FLAMEUP_BASE_URL=http://127.0.0.1:") for line in lines)
        finally:
            server.terminate()
        assert server.wait(timeout=SERVE_TIMEOUT) == 0


def run_console(body: str) -> None:
    readme = readme_commands()
    for command in commands(body):
        if command.startswith(("python3 -m venv .venv && ", "command -v chromedriver")) and (
            "pytest" in command or "flameup-pandas upsert" in command
        ):
            assert command in readme, f"not the README's command: {command!r}"
            continue
        for part in (p.strip() for p in command.split("&&")):
            background = re.fullmatch(r'eval "\$\((flameup-pandas serve[^&]*)&\)"', part)
            if background:  # the server's export lines evaluated: started, then stopped
                run_cli(background.group(1).strip())
            elif part.startswith("flameup-pandas "):
                run_cli(part)
            elif part.startswith(("git clone ", "cd ")):
                print(f"not run (needs the repository's host): {part}")
            elif part.startswith("python -c "):
                done = subprocess.run(
                    [sys.executable, *shlex.split(part)[1:]], timeout=300, check=False
                )
                assert done.returncode == 0, f"{part!r} exited {done.returncode}"
            elif re.match(r"(\S*/)?pip install ", part):
                check_install(part)
            elif part.startswith("python3 -m venv "):
                continue
            elif part.startswith(".venv/bin/"):
                check_tool(shlex.split(part)[0].split("/")[-1], part)
            else:
                raise AssertionError(f"a command the docs tests cannot check: {part!r}")


def run_python(body: str, namespace: dict[str, Any], where: str) -> None:
    code = compile(body, where, "exec")
    if re.search(r"^\s*from airflow", body, re.M):
        return  # needs Airflow: compiled only
    exec(code, namespace)


def call_tests(namespace: dict[str, Any]) -> None:
    """Call each ``test_*`` function the page defined, as pytest would with its fixtures."""
    from flameup_pandas.testing import FlameupServer

    for name, function in list(namespace.items()):
        if not (name.startswith("test_") and inspect.isfunction(function)):
            continue
        wanted = set(inspect.signature(function).parameters)
        assert wanted <= {"flameup_server"}, f"{name} wants fixtures this runner lacks"
        with FlameupServer(rate_limit=1_000_000) as server:
            function(**({"flameup_server": server} if wanted else {}))
        print(f"{name}: passed")


def main(page: Path) -> int:
    from flameup_pandas.testing import FlameupServer

    namespace: dict[str, Any] = {"__name__": "docs"}
    found = blocks(page.read_text())
    # A server that announces its budget as Flameup does (one that announces none is held to
    # the documented 120 a minute, and a page's examples together may send more).
    with FlameupServer(rate_limit=1_000_000) as server:
        os.environ["FLAMEUP_API_KEY"] = server.api_key
        os.environ["FLAMEUP_BASE_URL"] = server.base_url
        for lang, body, line in found:
            where = f"{page.name}, the {lang} block at line {line}"
            print(f"--- {where}", flush=True)
            if lang == "python":
                run_python(body, namespace, where)
            elif lang == "console":
                run_console(body)
        call_tests(namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
