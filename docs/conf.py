"""Sphinx configuration of the flameup-pandas docs site.

Build it with ``python -m sphinx -W -b html docs OUT`` (the test suite does, warnings as
errors). Everything it needs is local: no intersphinx inventories are fetched, the theme loads
nothing from the network, and the performance figures come from ``benchmarks/results.json``.
Why Sphinx, MyST and furo: docs/contributing.md.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

# pandera imports pyspark.pandas when pyspark is installed, and pyspark 4 warns about pandas 3
# (the test suite ignores the same warning: pyproject.toml).
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)

import flameup_pandas  # noqa: E402

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "flameup-pandas"
author = "the flameup-pandas contributors"
copyright = f"2026, {author}"
release = version = flameup_pandas.__version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and the quickstart notebook, executed at build time
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",  # the summary tables of the reference's index pages
    "sphinxarg.ext",
    "api_pages",  # a page per public object and accessor method, and the keyword tables
    "benchmark_report",  # the performance page's figures, read from benchmarks/results.json
    "benchmark_plots",  # and its plots, drawn with matplotlib from the same file
    "public_names",  # references by any name an object has: linked to its public entry
    "module_map",  # the architecture page's module map, read from the package's tree
    "value_rules",  # the value rules page's table: the value registry, _people.values.RULES
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "reference/examples", "Thumbs.db", ".DS_Store"]
suppress_warnings: list[str] = []

# MyST: Markdown pages with directives; headings up to ### get anchors links can point at.
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "substitution"]
myst_substitutions = {"release": release}
myst_heading_anchors = 3

# myst-nb: the notebooks are stored without outputs and executed by every build, in a
# temporary folder (what they write stays out of the tree), each against the local server it
# starts itself; a cell that fails fails the build.
nb_execution_mode = "auto"
nb_execution_in_temp = True
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Progress bars are left out: as widgets they need ipywidgets' JavaScript from a CDN (the site
# loads nothing from the network); as text, without ipywidgets, tqdm warns on stderr first.
nb_output_stderr = "remove"
nb_ipywidgets_js: dict[str, dict[str, str]] = {}

# The notebooks' kernel is this interpreter (never a kernelspec of the user's that names another
# Python), and quiet: ipykernel warns on stderr that loopback TCP is unencrypted, which is
# nothing the site can act on.
_KERNELS = Path(tempfile.mkdtemp(prefix="flameup-docs-kernels-"))
atexit.register(shutil.rmtree, _KERNELS, ignore_errors=True)
(_KERNELS / "kernels" / "python3").mkdir(parents=True)
(_KERNELS / "kernels" / "python3" / "kernel.json").write_text(
    json.dumps(
        {
            "argv": [
                *(sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"),
                "--IPKernelApp.log_level=ERROR",
            ],
            "display_name": "Python 3",
            "language": "python",
        }
    )
)
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    filter(None, [str(_KERNELS), os.environ.get("JUPYTER_PATH")])
)

# autosummary: summary tables only; api_pages writes the pages they link to.
autosummary_generate = False

# autodoc: members in source order, with their types in the descriptions.
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

# Nitpicky: every cross-reference must resolve, so a renamed public name breaks the build. The
# docs link no external inventories (the build stays offline), so references into other
# libraries, the standard library and private modules are let through as text.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(pd|pa|pl|np|ds|pq|pandas|pyarrow|numpy|polars|pyspark|pandera|requests)\..*"),
    (r"py:.*", r"(datetime|pathlib|os|collections|typing|types|logging|enum|sqlite3|random)\..*"),
    (r"py:.*", r"(_io|io|threading|signal|decimal|argparse|contextlib|werkzeug)\..*"),
    (r"py:.*", r"(typing_extensions|pyarrow|pandas|polars|pyspark)"),
]
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "Any",
        "Callable",
        "Iterator",
        "Iterable",
        "Mapping",
        "Sequence",
        "Literal",
        "Unpack",
        "Self",
        "T",
        "PathLike",
        "Path",
        "DataFrame",
        "Table",
        "Timedelta",
        "Timestamp",
        "Decimal",
        "object",
        "float",
        "int",
        "str",
        "bytes",
        "bool",
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "type",
        "None",
        "NoneType",
        "Exception",
        "BaseException",
        "ValueError",
        "KeyboardInterrupt",
    )
]

html_theme = "furo"
html_title = f"flameup-pandas {release}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
pygments_style = "friendly"
pygments_dark_style = "monokai"
html_css_files = ["flameup.css"]  # wide tables and outputs scroll inside the page
# Text as written: option names (--quick), quotes in code-like figure names, "->" arrows.
smartquotes = False
