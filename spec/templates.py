"""Jinja templates in `format.map`: what counts as a template, and the validate-time checks.

A value names a column when it is a bare identifier (`answer`) or a column's exact name
(`Agent Reply`); a value with Jinja syntax (`{{`, `{%`, `{#`) is a template; anything else is
an error (a constant is written on purpose: `{{ "text" }}`). Templates are rendered in
``sandbox.BudgetedEnvironment`` (a ``SandboxedEnvironment`` that folds no constants and bounds
every render in time and size). The sandbox already blocks unsafe calls at render time; we
refuse private and dunder access when the spec is validated, so a reviewer never has to
wonder. Checking a template parses it and never evaluates any part of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import nodes

    from .sandbox import BudgetedEnvironment

# jinja2 is imported only when a spec holds a real template: most map fields are bare column
# names, and `llmspec validate` (the pre-commit hook) should not pay for what it does not use.

# Names every template gets from the renderer besides the row's columns.
RESERVED_VARIABLES = ("bos_token", "eos_token")
# The whole row, so a column of any name can be read: {{ row["Agent Reply"] }}.
ROW_VARIABLE = "row"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_column_ref(text: str) -> bool:
    return bool(_IDENTIFIER.match(text))


def is_template(text: str) -> bool:
    """Whether a map value holds Jinja syntax (an expression, a statement or a comment).
    A value that is neither a column nor a template is an error, never a constant."""
    return any(mark in text for mark in ("{{", "{%", "{#"))


def row_keys(ast: "nodes.Template") -> set[str]:
    """Column names a parsed template reads through ``row`` with a constant key
    (``row["Agent Reply"]``, ``row.answer``)."""
    from jinja2 import nodes

    keys = set()
    for node in ast.find_all((nodes.Getitem, nodes.Getattr)):
        if isinstance(node.node, nodes.Name) and node.node.name == ROW_VARIABLE:
            if isinstance(node, nodes.Getattr):
                keys.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                keys.add(node.arg.value)
    return keys


def sandbox(*, keep_trailing_newline: bool = False) -> "BudgetedEnvironment":
    from .sandbox import BudgetedEnvironment

    return BudgetedEnvironment(keep_trailing_newline=keep_trailing_newline)


@dataclass
class TemplateCheck:
    variables: set[str]
    error_code: str | None = None
    error: str | None = None
    line_in_template: int | None = None
    literal: bool = False  # neither an identifier nor Jinja: valid only as a column's exact name


def check_template(text: str) -> TemplateCheck:
    """Parse (never render) a template; report syntax errors, unsafe access and its variables."""
    if is_column_ref(text):
        return TemplateCheck(variables={text})
    if not is_template(text):
        return TemplateCheck(variables={text}, literal=True)
    try:
        return _check_jinja(text)
    except RecursionError:  # Jinja's parser and analysis recurse once per level of nesting
        return TemplateCheck(set(), "bad-template", f"template nests too deeply to check ({NESTING_HINT})")


NESTING_HINT = "brackets, filters or blocks inside one another by the dozens"


def _check_jinja(text: str) -> TemplateCheck:
    from jinja2 import TemplateSyntaxError, nodes

    env = sandbox()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as exc:
        return TemplateCheck(set(), "bad-template", f"template does not parse: {exc.message}", exc.lineno)
    unsafe: dict[str, int | None] = {}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter)):
        for name in _accessed_names(node):
            if name.startswith("_"):
                unsafe.setdefault(name, getattr(node, "lineno", None))
    if unsafe:
        # find_all walks outside-in; the user reads left to right
        names = sorted(unsafe, key=lambda n: (text.find(n) if n in text else len(text), n))
        listed = ", ".join(f"'{n}'" for n in names)
        return TemplateCheck(set(), "unsafe-template",
                             f"template accesses {listed}: private and dunder attributes are refused",
                             unsafe[names[0]])
    from .sandbox import REMOVED_GLOBALS

    # Jinja's globals (range, dict, ...) are not columns, as the compiler's renderer sees it too.
    free = env.free_variables(ast)
    removed = [n for n in REMOVED_GLOBALS if n in free]
    if removed:
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == removed[0]), None)
        return TemplateCheck(set(), "unsafe-template",
                             f"template uses '{removed[0]}', a Jinja global llmspec templates do not provide",
                             line)
    return TemplateCheck((free - set(env.globals) - {ROW_VARIABLE}) | row_keys(ast))


def _accessed_names(node: "nodes.Node") -> list[str]:
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr):
        return [node.attr]
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getitem):
        return [node.arg.value] if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else []
    # `x | attr('__class__')` is attribute access spelt as a filter
    if isinstance(node, nodes.Filter) and node.name == "attr":
        return [a.value for a in node.args if isinstance(a, nodes.Const) and isinstance(a.value, str)]
    return []
