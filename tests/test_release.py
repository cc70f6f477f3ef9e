"""The package as it would be released: one version, a clean sdist and wheel, and a wheel that
works installed on its own, outside this tree.

The wheel test installs the built wheel (not editable) into a fresh venv in a temporary folder,
with ``--no-deps``: its dependencies come from this test environment's site-packages through a
``.pth`` line (a path line only: the editable install's finder there is never run), so the test
needs no network and no second copy of pandas. It then checks that ``flameup_pandas`` is
imported from the venv, not from this tree, and runs the main job there against ``--local``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import flameup_pandas

ROOT = Path(__file__).resolve().parent.parent


def test_one_version_for_the_package_the_metadata_and_the_command() -> None:
    assert flameup_pandas.__version__ == importlib.metadata.version("flameup-pandas")
    done = subprocess.run(
        [sys.executable, "-m", "flameup_pandas.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == f"flameup-pandas {flameup_pandas.__version__}"


def test_the_changelog_keeps_a_changelog_and_the_license_is_mit() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n")
    assert "keepachangelog.com" in changelog
    sections = re.split(r"^## ", changelog, flags=re.M)[1:]
    assert sections[0].startswith("[Unreleased]\n")  # on top, where the next changes go
    releases = [re.match(r"\[([\d.]+)\] - (\d{4}-\d{2}-\d{2})\n", s) for s in sections[1:]]
    assert releases and all(releases), "every section after [Unreleased] is a dated release"
    assert releases[0] is not None and releases[0].group(1) == flameup_pandas.__version__
    for section in sections:
        headings = re.findall(r"^### (.+)$", section, flags=re.M)
        assert len(headings) == len(set(headings)), f"repeated headings in ## {section[:20]}"
        assert set(headings) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for name in ["Unreleased"] + [m.group(1) for m in releases if m]:
        assert re.search(rf"^\[{re.escape(name)}\]: https://", changelog, flags=re.M), name
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    metadata = importlib.metadata.metadata("flameup-pandas")
    assert metadata["License-Expression"] == "MIT"


def test_the_project_metadata_names_its_authors_and_urls() -> None:
    """What a package index shows: authors, and where the docs, the changelog and the source
    are. The version is written once (flameup_pandas/_version.py), the metadata reads it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["authors"] and "version" in project["dynamic"] and "version" not in project
    assert {"Documentation", "Changelog", "Source", "Issues"} <= set(project["urls"])
    versions = [
        path
        for path in (ROOT / "flameup_pandas").rglob("*.py")
        if re.search(r"__version__\s*=", path.read_text())
    ]
    assert [p.name for p in versions] == ["_version.py"]


def run(command: list[str | Path], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"[-6000:]
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built by ``python -m build`` (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=out)
    return out


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_check_and_hold_what_they_should(dist: Path) -> None:
    (sdist,) = dist.glob("flameup_pandas-*.tar.gz")
    (wheel,) = dist.glob("flameup_pandas-*.whl")
    run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], cwd=dist)
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        held = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "docs/conf.py",
        "docs/index.md",
        "docs/people-page.png",
        "tests/test_docs.py",
        "tests/conftest.py",
        "examples/customers.parquet",
        "notebooks/quickstart.ipynb",
        "docs/examples/quickstart.ipynb",
        "docs/_ext/api_pages.py",
        "docs/reference/examples/pandas/upsert.py",
        "benchmarks/results.json",
    ):
        assert needed in held, needed
    assert not [name for name in held if "__pycache__" in name or name.startswith(".venv")]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "flameup_pandas/py.typed" in names
    assert "flameup_pandas/testing/pytest_plugin.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]


@pytest.mark.slow
def test_the_wheel_runs_the_main_job_outside_the_tree(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("flameup_pandas-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    python, command = venv / "bin" / "python", venv / "bin" / "flameup-pandas"
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path)
    here = sysconfig.get_path("purelib")
    (Path(site.strip()) / "test-environment.pth").write_text(here + "\n")

    where = run([python, "-c", "import flameup_pandas; print(flameup_pandas.__file__)"], tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where
    assert not Path(where.strip()).is_relative_to(ROOT)
    version = run([command, "--version"], tmp_path)
    assert version.strip() == f"flameup-pandas {flameup_pandas.__version__}"

    # the quickstart's first example, as a newcomer with only the wheel runs it
    page = (ROOT / "docs" / "getting-started.md").read_text()
    first = re.search(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    assert first is not None
    shown = run([python, "-c", first.group(1)], tmp_path)
    assert "created            1,996" in shown and "invalid                3" in shown

    work = tmp_path / "job"
    work.mkdir()
    pd.DataFrame(
        {
            "user_id": [f"w{i}" for i in range(250)] + ["bad"],
            "email": [f"w{i}@example.com" for i in range(250)] + ["broken"],
            "plan": ["pro", "free"] * 125 + ["pro"],
        }
    ).to_parquet(work / "sample.parquet")
    job = [command, "upsert", "sample.parquet", "--local", "--state", ".flameup/state.parquet"]
    job += ["--results", ".flameup/results.parquet", "--max-failed", "1", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAMEUP_", "PYTHON"))}
    for expected in ({"created": 250, "invalid": 1}, {"skipped": 250, "invalid": 1}):
        done = subprocess.run(job, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        results = pd.read_parquet(work / ".flameup" / "results.parquet")
        assert results["flameup_status"].value_counts().to_dict() == expected

    with subprocess.Popen(
        [command, "serve"], cwd=work, env=env, stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        try:
            lines = [server.stdout.readline() for _ in range(3)]
        finally:
            server.terminate()
        assert server.wait(timeout=60) == 0
    assert lines[0].startswith("FLAMEUP_BASE_URL=http://127.0.0.1:")
    assert lines[2].startswith("FLAMEUP_UI_URL=http://127.0.0.1:")
