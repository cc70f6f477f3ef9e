"""The ``value-rules`` directive: what each input type is sent as, read from the code.

The table is the value registry itself, ``flameup_pandas._people.values.RULES``: each row is
one rule object, the same that encodes its values, so the page and the code cannot drift::

    ```{value-rules}
    ```
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class ValueRules(SphinxDirective):
    """Renders the registry's rules as a Markdown table, parsed as the page's own text."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from flameup_pandas._people.values import RULES

        table = ["| input | sent as |", "| --- | --- |"]
        table += [f"| {rule.input} | {rule.sent_as} |" for rule in RULES]
        return self.parse_text_to_nodes("\n".join(table))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("value-rules", ValueRules)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
