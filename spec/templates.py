"""Jinja templates in `format.map`: what counts as a template, and the validate-time checks.

A bare identifier (`answer`) names a column; anything else is a template rendered in a
``SandboxedEnvironment``. The sandbox already blocks unsafe calls at render time; we refuse
private and dunder access when the spec is validated, so a reviewer never has to wonder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_column_ref(text: str) -> bool:
    return bool(_IDENTIFIER.match(text))


def sandbox() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined

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
    env = sandbox()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as exc:
        return TemplateCheck(set(), "bad-template", f"template does not parse: {exc.message}", exc.lineno)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        name = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Name):
            name = node.name
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            name = node.arg.value
        if name is not None and name.startswith("_"):
            return TemplateCheck(set(), "unsafe-template",
                                 f"template accesses '{name}': private and dunder attributes are refused",
                                 getattr(node, "lineno", None))
    return TemplateCheck(set(meta.find_undeclared_variables(ast)))
