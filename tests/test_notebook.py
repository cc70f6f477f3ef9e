"""notebooks/quickstart.ipynb runs top to bottom and shows what its text claims."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def this_interpreters_kernel(tmp_path: Path) -> AsyncKernelManager:
    """A kernel running sys.executable, whatever kernelspecs the machine has (or lacks).

    The spec is written to a private directory and only that directory is searched, so a
    user-level ``python3`` kernelspec pointing at another Python cannot be picked up. The
    kernel talks over Unix sockets in ``tmp_path`` rather than unencrypted loopback TCP.
    """
    kernels = tmp_path / "kernels"
    write_kernel_spec(kernels / "flameup-quickstart")
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    return AsyncKernelManager(
        kernel_name="flameup-quickstart",
        kernel_spec_manager=specs,
        transport="ipc",
        ip=str(tmp_path / "kernel"),
    )


def tagged_result(nb: Any, tag: str, mimetype: str = "text/plain") -> str:
    """The displayed result of the one cell tagged ``tag``, as ``mimetype``."""
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return str(result.data[mimetype])


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp_path = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        km=this_interpreters_kernel(tmp_path),
        timeout=120,  # per cell; the whole notebook takes a few seconds
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # Raises CellExecutionError on the first cell that fails. nbclient leaves running a kernel
    # whose manager it was handed; cleanup_kc=True shuts it down and closes its sockets.
    client.execute(cleanup_kc=True)
    return nb


pytestmark = pytest.mark.slow  # starts a kernel subprocess


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_first_sync_sends_every_valid_row(executed: Any) -> None:
    table = tagged_result(executed, "first-sync", "text/html")  # Summary._repr_html_
    figures = dict(re.findall(r"<th[^>]*>(\w+)</th><td[^>]*>([^<]*)</td>", table))
    assert figures["created"] == "2,997"
    assert (figures["invalid"], figures["skipped"], figures["requests"]) == ("2", "1", "30")


def test_second_sync_sends_only_the_changed_rows(executed: Any) -> None:
    summary = ast.literal_eval(tagged_result(executed, "second-sync"))
    assert summary["updated"] + summary["created"] == 6
    assert summary["requests"] == 1
    assert summary["skipped"] == 2_993


def test_person_read_back_has_the_change(executed: Any) -> None:
    person = ast.literal_eval(tagged_result(executed, "read-back"))
    assert person["external_id"] == "cust-00043"
    assert person["attributes"]["plan"] == "enterprise"


def test_people_read_back_into_a_frame(executed: Any) -> None:
    table = tagged_result(executed, "read-people")
    assert "external_id" in table and "cust-00001" in table and "+00:00" in table


def test_rows_whose_traits_differ_are_found(executed: Any) -> None:
    table = tagged_result(executed, "differs")
    first_block = table.split("\n\n")[0]  # a wide frame wraps: its first columns come first
    rows = [line.split() for line in first_block.splitlines()[1:]]
    assert len(rows) == 3
    # row 256 never reached Flameup, row 1023 lost to the later row with its userId, and
    # cust-00100 was moved to the team plan in Flameup by hand
    assert [row[0] for row in rows] == ["99", "256", "1023"]
    assert rows[0][1:4] == ["cust-00100", rows[0][2], "team"]
