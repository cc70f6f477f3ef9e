"""Cross-references to the package's objects by any name they can be reached by.

Docstrings and type hints name objects where they are defined (``flameup_pandas._result.
Summary``, or just ``Summary``) or by the name users import (``flameup_pandas.
UpsertInterrupted``), while the reference documents each object once, under a public name.
For a Python reference Sphinx could not resolve, this finds the object it names and links it
to the entry that documents the same object. A name that is real but not public (a private
helper a docstring mentions) is shown as text; a name that is nothing at all stays a warning,
so the nitpicky build still catches a broken reference.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.nodes import make_refnode

PACKAGE = "flameup_pandas"
MISSING = object()


def lookup(dotted: str) -> Any:
    """The object ``dotted`` names (the longest importable module, then attributes), or
    ``MISSING``; the reference's pages (``api_pages``) find what they document by it too."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute, MISSING)
            if found is MISSING:
                break
        return found
    return MISSING


def documented(env: BuildEnvironment) -> dict[int, str]:
    """id(object) -> the name the reference documents it under (the first one, if several)."""
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    names: dict[int, str] = {}
    for name, entry in objects.items():
        if entry.aliased or entry.objtype == "module":
            continue
        found = lookup(name)
        if found is not MISSING and not isinstance(found, int | str | tuple | frozenset):
            names.setdefault(id(found), name)
    return names


def candidates(target: str, node: pending_xref) -> list[Any]:
    """What ``target`` may name: as written, in the current module or class, or anywhere in
    the package's loaded modules (for an unqualified name)."""
    found = [lookup(target)]
    for context in (node.get("py:class"), node.get("py:module")):
        if context:
            found.append(lookup(f"{node.get('py:module')}.{context}.{target}"))
            found.append(lookup(f"{context}.{target}"))
    if "." not in target:
        for name, module in list(sys.modules.items()):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found.append(getattr(module, target, MISSING))
    return [f for f in found if f is not MISSING]


def resolve(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Node | None:
    if node.get("refdomain") != "py":
        return None
    found = candidates(node["reftarget"], node)
    if not found:
        return None  # not a name of anything: Sphinx warns (nitpicky)
    names = documented(env)
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    for obj in found:
        name = names.get(id(obj))
        if name is not None:
            entry = objects[name]
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name
            )
    return contnode  # real but not documented (private): plain text, no link


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", resolve)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
