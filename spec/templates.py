"""Jinja templates in `format.map`: what counts as a template, and the validate-time checks.

A bare identifier (`answer`) names a column; anything else is a template rendered in a
``SandboxedEnvironment``. The sandbox already blocks unsafe calls at render time; we refuse
private and dunder access when the spec is validated, so a reviewer never has to wonder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

# jinja2 is imported only when a spec holds a real template: most map fields are bare column
# names, and `llmspec validate` (the pre-commit hook) should not pay for what it does not use.

# Names every template gets from the renderer besides the row's columns.
RESERVED_VARIABLES = ("bos_token", "eos_token")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_column_ref(text: str) -> bool:
    return bool(_IDENTIFIER.match(text))


def sandbox() -> "SandboxedEnvironment":
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass
class TemplateCheck:
    variables: set[str]
    error_code: str | None = None
    error: str | None = None
    line_in_template: int | None = None


def check_template(text: str) -> TemplateCheck:
    """Parse (never render) a template; report syntax errors, unsafe access and its variables."""
    if is_column_ref(text):
        return TemplateCheck(variables={text})
    from jinja2 import TemplateSyntaxError, meta, nodes

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
    # Jinja's globals (range, dict, ...) are not columns, as the compiler's renderer sees it too.
    return TemplateCheck(set(meta.find_undeclared_variables(ast)) - set(env.globals))


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
