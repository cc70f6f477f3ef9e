"""The reference's pages, one per public object, generated from the code at build time.

Three things, so that no name, method or keyword is listed by hand:

- **A page per function and class** of every public module's ``__all__`` (exceptions stay on
  their module's page, under its drawing of the tree), written before the build reads
  anything into ``reference/api/<module>/<name>.rst`` (generated, not kept in git; rewritten
  only when its text changes, stale ones removed).
- **A page per accessor method**, named as users call it: ``pandas.DataFrame.flameup.upsert``.
  pandas registers the accessor as a class attribute, so autodoc takes it for an alias; these
  pages document each public method of the accessor's class under that name instead, with the
  signature of the function it hands off to (``df.flameup.upsert(...)`` is
  ``flameup_pandas.upsert(df, ...)``), its keywords as a table, and the example in
  ``reference/examples/<library>/<method>.py`` (a missing one is a build warning).
- **The keyword tables**: ``.. keyword-tables:: flameup_pandas._run.options`` renders every
  TypedDict of that module (``Options``, ``TrackOptions``...) as a table of keyword, type,
  default and meaning, each keyword an entry of its own (``Options.max_changes``). The type is
  the TypedDict's annotation; the meaning is the docstring under the key, or else the
  docstring of the field of the same name of the dataclass the keywords build (``Run``,
  ``Delivery``...), where its default comes from too. A keyword with no meaning anywhere is a
  build warning, so the site cannot show a keyword it does not explain.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import textwrap
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from public_names import MISSING, lookup
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PUBLIC_MODULES = (
    "flameup_pandas",
    "flameup_pandas.testing",
    "flameup_pandas.spark",
    "flameup_pandas.airflow",
)
ACCESSORS = {"pandas": "pandas.DataFrame.flameup", "polars": "polars.DataFrame.flameup"}
"""The accessors documented, by the library whose frames they are on."""
FUNCTIONS = "flameup_pandas"
"""Where the function an accessor method hands off to lives (``upsert`` -> ``upsert``)."""
OUT = "reference/api"


# the pages


def title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}\n"


def object_page(module: str, name: str, obj: Any) -> str | None:
    """The page of a public function or class (None for exceptions and data)."""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return None
    if inspect.isclass(obj):
        directive = f".. autoclass:: {name}\n   :members:\n"
    elif callable(obj):
        directive = f".. autofunction:: {name}\n"
    else:
        return None
    return f"{title(f'{module}.{name}')}\n.. currentmodule:: {module}\n\n{directive}"


def public_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    ]


def delegate_of(method: str) -> Callable[..., Any] | None:
    """The plain function an accessor method hands off to: the one of the same name."""
    found = getattr(importlib.import_module(FUNCTIONS), method, None)
    return found if inspect.isfunction(found) else None


def method_signature(method: Callable[..., Any], delegate: Callable[..., Any] | None) -> str:
    """The method's signature; when it only passes ``**options`` on, the delegate's, less the
    frame it is called with."""
    own = inspect.signature(method)
    params = [p for p in own.parameters.values() if p.name != "self"]
    passes_on = [p.kind for p in params] == [inspect.Parameter.VAR_KEYWORD]
    if delegate is not None and passes_on:
        params = list(inspect.signature(delegate).parameters.values())[1:]
        own = own.replace(return_annotation=inspect.signature(delegate).return_annotation)
    empty = inspect.Parameter.empty
    params = [
        p if p.annotation is empty else p.replace(annotation=_Shown(p.annotation)) for p in params
    ]
    returns = own.return_annotation
    returns = returns if returns is empty else _Shown(returns)
    return str(own.replace(parameters=params, return_annotation=returns))


class _Shown:
    """An annotation as written in the source (a string under ``from __future__ import
    annotations``), shown without quotes in a signature."""

    def __init__(self, annotation: Any) -> None:
        self.text = annotation_text(annotation)

    def __repr__(self) -> str:
        return self.text


def keyword_rows(function: Callable[..., Any]) -> Iterator[tuple[str, str, str, str]]:
    """keyword, type, default and meaning of each keyword-only parameter of ``function``; its
    ``**options`` as one row pointing at the keyword table of their TypedDict."""
    doc_of = field_docs_of_all()
    for param in list(inspect.signature(function).parameters.values())[1:]:
        annotation = annotation_text(param.annotation)
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            typed = annotation.removeprefix("Unpack[").removesuffix("]")
            owner = options_owner(typed)
            meaning = (
                f"every keyword of :class:`{typed} <{owner}.{typed}>`"
                if owner
                else "keyword arguments"
            )
            yield f"``**{param.name}``", f"``{annotation}``", "", meaning
            continue
        default = "" if param.default is inspect.Parameter.empty else f"``{param.default!r}``"
        meaning = doc_of.get(param.name) or f"see :func:`{FUNCTIONS}.{function.__name__}`"
        yield f"``{param.name}``", f"``{annotation}``", default, meaning


def options_owner(name: str) -> str | None:
    """The module whose TypedDict ``name`` is (the keyword tables' module)."""
    module = importlib.import_module(OPTIONS_MODULE)
    return OPTIONS_MODULE if typing.is_typeddict(getattr(module, name, None)) else None


def field_docs_of_all() -> dict[str, str]:
    """Every documented field of the dataclasses the options module builds, by name."""
    found: dict[str, str] = {}
    for cls in dataclasses_of(importlib.import_module(OPTIONS_MODULE)):
        for name, doc in attribute_docs(cls).items():
            found.setdefault(name, doc)
    return found


def list_table(header: tuple[str, ...], rows: list[tuple[str, ...]], css: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :class: {css}", ""]
    for row in [header, *rows]:
        for i, cell in enumerate(row):
            text = " ".join(cell.split()) or "\\-"
            lines.append(f"   {'*' if i == 0 else ' '} - {text}")
    return lines


def accessor_page(library: str, prefix: str, method: str, cls: type, srcdir: Path) -> str:
    function = vars(cls)[method]
    delegate = delegate_of(method)
    doc = inspect.getdoc(function) or ""
    lines = [title(f"{prefix}.{method}"), ""]
    lines.append(f".. py:method:: {prefix}.{method}{method_signature(function, delegate)}")
    lines.append("")
    lines += ["   " + line if line else "" for line in doc.splitlines()]
    if delegate is not None:
        lines += [
            "",
            f"   ``df.flameup.{method}(...)`` is :func:`{FUNCTIONS}.{method}` with ``df`` as its",
            "   first argument; the keywords:",
            "",
        ]
        table = list_table(
            ("keyword", "type", "default", "meaning"),
            list(keyword_rows(delegate)),
            "keyword-table",
        )
        lines += ["   " + line if line else "" for line in table]
    example = Path("reference", "examples", library, f"{method}.py")
    if (srcdir / example).is_file():
        lines += ["", "   .. rubric:: Example", "", f"   .. literalinclude:: /{example.as_posix()}"]
        lines += ["      :language: python"]
    else:
        logger.warning(f"{prefix}.{method} has no example: write docs/{example.as_posix()}")
    return "\n".join(lines) + "\n"


def pages(srcdir: Path) -> dict[Path, str]:
    """Every generated page: its path under the source folder and its text."""
    found: dict[Path, str] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            try:
                obj = getattr(module, name)
            except AttributeError:  # needs an extra the docs lack (the Airflow provider's
                continue  # classes): its page describes them by hand
            text = object_page(module_name, name, obj)
            if text is not None:
                found[Path(OUT, module_name, f"{name}.rst")] = text
    for library, prefix in ACCESSORS.items():
        cls = lookup(prefix)
        if cls is MISSING:
            logger.warning(f"{prefix} cannot be documented: {library} is not installed")
            continue
        for method in public_methods(cls):
            text = accessor_page(library, prefix, method, cls, srcdir)
            found[Path(OUT, prefix, f"{method}.rst")] = text
    return found


def write_pages(app: Sphinx) -> None:
    """Write the pages that changed, remove the ones no object has any more."""
    srcdir = Path(app.srcdir)
    wanted = pages(srcdir)
    for path, text in wanted.items():
        target = srcdir / path
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    for old in (srcdir / OUT).rglob("*.rst"):
        if old.relative_to(srcdir) not in wanted:
            old.unlink(missing_ok=True)


# the keyword tables

OPTIONS_MODULE = "flameup_pandas._run.options"


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each annotated name of a class body (a string after ``x: int``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for first, second in itertools.pairwise(body):
        if (
            isinstance(first, ast.AnnAssign)
            and isinstance(first.target, ast.Name)
            and isinstance(second, ast.Expr)
            and isinstance(second.value, ast.Constant)
            and isinstance(second.value.value, str)
        ):
            found[first.target.id] = inspect.cleandoc(second.value.value)
    return found


def typed_dicts(module: Any) -> list[tuple[str, type]]:
    """The module's TypedDicts, the largest first (the sets users meet: ``Options``...)."""
    found = [(n, v) for n, v in vars(module).items() if typing.is_typeddict(v)]
    found = [(n, cls) for n, cls in found if cls.__module__ == module.__name__]
    return sorted(found, key=lambda item: (-len(item[1].__annotations__), item[0]))


def dataclasses_of(module: Any) -> list[type]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and dataclasses.is_dataclass(value)
    ]


def builders(keys: set[str], candidates: list[type]) -> list[type]:
    """The dataclasses that the keywords build, found as a cover: the one holding most of
    the keywords left first (fewest other fields breaking a tie)."""
    chosen: list[type] = []
    left = set(keys)

    def score(cls: type, left: set[str]) -> tuple[int, int]:
        fields = {f.name for f in dataclasses.fields(cls)}
        return len(fields & left), -len(fields - keys)

    while left:
        best = max(candidates, key=lambda cls: score(cls, left), default=None)
        if best is None or score(best, left)[0] == 0:
            break
        chosen.append(best)
        left -= {f.name for f in dataclasses.fields(best)}
    return chosen


def annotation_text(annotation: Any) -> str:
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def default_text(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"``{field.default!r}``"
    if field.default_factory is not dataclasses.MISSING:
        return f"``{field.default_factory()!r}``"
    return "required"


class KeywordTables(SphinxDirective):
    """Every TypedDict of a module as a class entry holding its table of keywords."""

    required_arguments = 1
    option_spec = {"only": directives.unchanged}  # noqa: RUF012  (docutils' own shape)

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        only = set(self.options.get("only", "").split())
        candidates = dataclasses_of(module)
        own = {name: attribute_docs(cls) for name, cls in typed_dicts(module)}
        lines: list[str] = []
        for name, cls in typed_dicts(module):
            if only and name not in only:
                continue
            lines += self.table_of(module.__name__, name, cls, own, candidates)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children

    def table_of(
        self,
        module: str,
        name: str,
        cls: type,
        own: dict[str, dict[str, str]],
        candidates: list[type],
    ) -> list[str]:
        keys = list(cls.__annotations__)
        parts = [docs for other, docs in own.items() if set(docs) <= set(keys) or other == name]
        fields: dict[str, dataclasses.Field[Any]] = {}
        field_docs: dict[str, str] = {}
        for built in builders(set(keys), candidates):
            docs = attribute_docs(built)
            for field in dataclasses.fields(built):
                if field.name in keys and field.name not in fields:
                    fields[field.name] = field
                    field_docs[field.name] = docs.get(field.name, "")
        rows = []
        for key in keys:
            meaning = next((p[key] for p in parts if p.get(key)), "") or field_docs.get(key, "")
            if not meaning:
                logger.warning(
                    f"{module}.{name}: keyword {key!r} has no meaning: give it a docstring",
                    location=self.get_location(),
                )
            default = default_text(fields[key]) if key in fields else "\\-"
            typ = annotation_text(cls.__annotations__[key])
            rows.append((f":options-key:`{module}.{name}.{key}`", f"``{typ}``", default, meaning))
        doc = inspect.getdoc(cls) or ""
        lines = [f".. py:class:: {name}", f"   :module: {module}", ""]
        lines += ["   " + line if line else "" for line in doc.splitlines()]
        lines.append("")
        table = list_table(("keyword", "type", "default", "meaning"), rows, "keyword-table")
        lines += ["   " + line if line else "" for line in table]
        return [*lines, ""]


def keyword_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``:options-key:`module.TypedDict.key``` -- the key as a Python entry of its own, here."""
    env = inliner.document.settings.env
    entry = nodes.literal(text=text.rsplit(".", 1)[1], ids=[text])
    inliner.document.ids[text] = entry
    env.get_domain("py").note_object(text, "attribute", text, location=(env.docname, lineno))
    return [entry], []


class AccessorSummary(SphinxDirective):
    """The summary table of an accessor's methods: ``.. accessor-summary:: pandas``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        prefix = ACCESSORS[self.arguments[0]]
        lines = [".. autosummary::", ""]
        lines += [f"   {prefix}.{method}" for method in public_methods(lookup(prefix))]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("accessor-summary", AccessorSummary)
    app.connect("builder-inited", write_pages)
    app.add_directive("keyword-tables", KeywordTables)
    app.add_role("options-key", keyword_role)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
