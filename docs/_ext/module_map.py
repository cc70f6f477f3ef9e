"""The ``module-map`` directive: the package's modules, read from the tree at build time.

Each module is listed by its file, folder by folder, with the first sentence of its docstring
(read with :mod:`ast`, nothing is imported). The architecture page shows it, so the map is the
tree the docs were built from, never a list someone forgot to update.

    ```{module-map}
    ```
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

import flameup_pandas

PACKAGE = Path(flameup_pandas.__file__).resolve().parent
_SENTENCE = re.compile(r"(.+?\.)(\s|$)", re.S)
_LITERAL = re.compile(r"(?::\w+:)?``?~?(.+?)``?")


def summary(path: Path) -> str:
    """The first sentence of the module's docstring, on one line ("" when there is none)."""
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=True) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    found = _SENTENCE.match(first)
    text = found.group(1) if found else first
    return "" if text.strip("_ ") == path.parent.name.strip("_") else text.rstrip(":.")


def inline(text: str) -> list[nodes.Node]:
    """``text`` as nodes, its literals and roles (``x``, `x`, :mod:`x`) as code."""
    found: list[nodes.Node] = []
    last = 0
    for match in _LITERAL.finditer(text):
        found.append(nodes.Text(text[last : match.start()]))
        found.append(nodes.literal(text=match.group(1)))
        last = match.end()
    found.append(nodes.Text(text[last:]))
    return found


def modules(folder: Path) -> list[Path]:
    """The folder's modules (no ``__main__``), ``__init__`` first, then by name."""
    found = [p for p in folder.glob("*.py") if p.name != "__main__.py"]
    return sorted(found, key=lambda p: (p.name != "__init__.py", p.name))


def folders() -> list[Path]:
    """The package and its sub-packages, the package first."""
    inner = sorted(p.parent for p in PACKAGE.rglob("*/__init__.py") if "__pycache__" not in p.parts)
    return [PACKAGE, *inner]


def module_list(folder: Path) -> nodes.bullet_list:
    items = nodes.bullet_list()
    for path in modules(folder):
        item = nodes.paragraph()
        item += nodes.literal(text=path.relative_to(PACKAGE.parent).as_posix())
        text = summary(path)
        if text:
            item += nodes.Text(": ")
            item.extend(inline(text))
        items += nodes.list_item("", item)
    return items


class ModuleMap(SphinxDirective):
    """A list per folder of the package: each module's file and what it holds."""

    def run(self) -> list[nodes.Node]:
        result: list[nodes.Node] = []
        for folder in folders():
            for path in modules(folder):
                self.env.note_dependency(str(path))
            title = nodes.paragraph()
            title += nodes.strong(text=folder.relative_to(PACKAGE.parent).as_posix() + "/")
            result += [title, module_list(folder)]
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("module-map", ModuleMap)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
