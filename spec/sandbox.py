"""The Jinja environment templates from a spec run in: sandboxed, never evaluated ahead of
time, and bounded in time and size while rendering.

A spec file is untrusted input (it arrives in pull requests and runs in pre-commit hooks),
so three things hold here:

* Nothing is evaluated while a template is checked or compiled. Jinja folds constant
  expressions (``{{ 'x' * 10**10 }}``, ``'%0999999999d'|format(1)``) during analysis and
  compilation; the code generator below folds nothing and the arithmetic operators are
  intercepted, so ``validate`` and ``compile`` only parse.
* While rendering, every value a template builds is weighed before it can grow: repetition,
  concatenation, padding, ``%``/``format`` widths, filters and method calls are refused when
  their result would exceed ``MAX_CHARS`` characters (nested lists count their items, shared
  items each time they appear, as ``str()`` would print them), integers are capped at
  ``MAX_INT_BITS`` bits, and ``lipsum`` is not available.
* A render that runs longer than ``TIME_BUDGET_S`` stops at the next loop step, call,
  attribute access, operator or output chunk.

Over a budget a render raises ``TemplateBudgetError``; the dataset builder rejects that row
with the reason and counts it.
"""

from __future__ import annotations

import functools
import re
import string
import time
from typing import Any, Iterable, Iterator

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import Namespace
from jinja2.sandbox import SandboxedEnvironment

MAX_CHARS = 1 << 22  # 4 Mi characters: far above any training example, far below a machine's memory
MAX_INT_BITS = 1 << 16
TIME_BUDGET_S = 2.0
# Filters whose implementation is worse than linear in their input (regex backtracking, string
# rebuilding per tag); above this size they are refused rather than left to run unbounded in C.
SUPERLINEAR_FILTER_CHARS = 1 << 16
_SUPERLINEAR_FILTERS = frozenset({"striptags", "urlize", "wordwrap"})
_MAX_NESTING = 100
_ITER_FILTER = "llmspec_budget_iter"
# Jinja globals llmspec templates do not get: lipsum makes paragraphs of filler on demand, a
# size bomb (`lipsum(10**6)`) and never training data.
REMOVED_GLOBALS = ("lipsum",)

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


class TemplateBudgetError(RuntimeError):
    """A render went over its time or size budget (the row is rejected, not the run)."""


class TemplateTimeout(TemplateBudgetError):
    """A render went over its time budget."""


def weight(value: Any, limit: int = MAX_CHARS) -> int:
    """About how many characters ``str(value)`` would print, counted without printing it.

    Containers count their items recursively (a list holding one big string 1000 times weighs
    1000 strings); counting stops soon after ``limit`` is passed.
    """
    memo: dict[int, int] = {}

    def w(obj: Any, depth: int) -> int:
        if isinstance(obj, (str, bytes, bytearray)):
            return len(obj)
        if isinstance(obj, bool) or obj is None:
            return 1
        if isinstance(obj, int):
            return obj.bit_length() // 3 + 1
        if isinstance(obj, dict):
            items: Iterable = (x for kv in obj.items() for x in kv)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            items = obj
        else:
            if isinstance(obj, Namespace):  # namespace() prints the dict it keeps
                return w(getattr(obj, "_Namespace__attrs", {}), depth + 1)
            return 1
        key = id(obj)
        if key in memo:
            return memo[key]
        if isinstance(obj, (list, tuple)):
            kinds = set(map(type, obj))  # flat lists of strings or integers: summed at C speed
            if kinds <= {str}:
                memo[key] = len(obj) + 2 + sum(map(len, obj))
                return memo[key]
            if kinds <= {int}:
                memo[key] = 2 * len(obj) + 2 + sum(map(int.bit_length, obj)) // 3
                return memo[key]
        if depth > _MAX_NESTING:
            raise TemplateBudgetError(f"a value nests deeper than {_MAX_NESTING} levels")
        total = len(obj) + 2
        for item in items:
            total += w(item, depth + 1)
            if total > limit:
                break
        memo[key] = total
        return total

    return w(value, 0)


def _printf_problem(fmt: str, args: Any) -> str | None:
    """Why a ``%``-format would produce too much text, else None."""
    stars = False
    for m in _PRINTF_SPEC.finditer(fmt):
        for part in m.groups():
            if part == "*":
                stars = True
            elif part and int(part) > MAX_CHARS:
                return f"the format {m.group(0)!r} asks for {part} characters"
    values = args if isinstance(args, tuple) else (args,)
    if stars and any(isinstance(v, int) and abs(v) > MAX_CHARS for v in values):
        return "a `*` width or precision asks for more than the size budget"
    return None


def _brace_problem(fmt: str, args: tuple, kwargs: dict) -> str | None:
    """Why a ``str.format`` call would produce too much text, else None."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return None  # str.format raises the same error itself
    nested = False
    for _literal, _name, spec, _conv in fields:
        if not spec:
            continue
        nested = nested or "{" in spec
        for digits in _DIGITS.findall(spec):
            if int(digits) > MAX_CHARS:
                return f"the format spec {spec!r} asks for {digits} characters"
    if nested and any(isinstance(v, int) and abs(v) > MAX_CHARS for v in (*args, *kwargs.values())):
        return "a nested width or precision asks for more than the size budget"
    return None


def _int_arg(args: tuple, kwargs: dict, index: int, name: str, default: int = 0) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _str_method_problem(text: str, name: str, args: tuple, kwargs: dict) -> str | None:
    """Why calling ``text.<name>(*args)`` would produce too much text, else None."""
    if name in ("ljust", "rjust", "center", "zfill"):
        width = _int_arg(args, kwargs, 0, "width")
        if isinstance(width, int) and width > MAX_CHARS:
            return f"str.{name}({width}) pads to more than {MAX_CHARS:,} characters"
    elif name == "expandtabs":
        size = _int_arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(size, int) and size > 0 and text.count("\t") * size + len(text) > MAX_CHARS:
            return f"str.expandtabs({size}) grows the text past {MAX_CHARS:,} characters"
    elif name == "replace":
        return _replace_problem(text, args)
    elif name in ("format", "format_map"):
        return _brace_problem(text, args if name == "format" else (), kwargs if name == "format" else
                              (args[0] if args and isinstance(args[0], dict) else {}))
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)) and weight(items) + len(text) * len(items) > MAX_CHARS:
            return f"str.join would build more than {MAX_CHARS:,} characters"
    return None


def _replace_problem(text: str, args: tuple) -> str | None:
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return None
    old, new = args[0], args[1]
    count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else None
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None:
        hits = min(hits, count)
    if len(text) + hits * max(0, len(new) - len(old)) > MAX_CHARS:
        return f"replace would build more than {MAX_CHARS:,} characters"
    return None


class _NoFoldMixin:
    """Code generation that evaluates nothing: no optimizer, no constant output folding."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimizer = None

    def _output_child_to_const(self, node, frame, finalize):
        if isinstance(node, nodes.TemplateData):  # literal text between tags: nothing to evaluate
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()


class _BudgetCodeGenerator(_NoFoldMixin, CodeGenerator):
    """Routes loops, ``~`` and literals through the environment's budget checks."""

    def visit_Template(self, node, frame=None):
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _ITER_FILTER, [], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)

    def visit_Concat(self, node, frame):
        self.write("environment.join_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _checked(self, visit, node, frame):
        if getattr(node, "ctx", "load") != "load":
            return visit(node, frame)
        self.write("environment.check_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node, frame):
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node, frame):
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node, frame):
        self._checked(super().visit_Tuple, node, frame)


class _NoFoldTracking(_NoFoldMixin, TrackingCodeGenerator):
    pass


class BudgetedEnvironment(SandboxedEnvironment):
    """``SandboxedEnvironment`` with StrictUndefined, no constant folding and render budgets."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, *, keep_trailing_newline: bool = False, time_budget_s: float | None = None) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=keep_trailing_newline,
                         optimized=False, finalize=self.check_value)
        self.time_budget_s = TIME_BUDGET_S if time_budget_s is None else time_budget_s
        self._deadline: float | None = None
        for name in REMOVED_GLOBALS:
            self.globals.pop(name, None)
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_ITER_FILTER] = self._iterate
        self.tests = {name: self._guard_test(t) for name, t in self.tests.items()}

    # -- analysis (validate, compile): parse only

    def free_variables(self, ast: nodes.Template) -> set[str]:
        """The names a parsed template reads from its context, found without evaluating anything."""
        gen = _NoFoldTracking(self)
        gen.visit(ast)
        return set(gen.undeclared_identifiers)

    # -- rendering under a budget

    def render(self, template, context: dict) -> str:
        """``template.render(context)`` that stops past the time budget."""
        self._deadline = time.perf_counter() + self.time_budget_s
        try:
            return template.render(context)
        finally:
            self._deadline = None

    def tick(self) -> None:
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise TemplateTimeout(f"rendering took longer than {self.time_budget_s:g} s")

    def check_value(self, value: Any) -> Any:
        self.tick()
        if not isinstance(value, (int, float, str)) or isinstance(value, str) and len(value) > MAX_CHARS:
            size = weight(value)
            if size > MAX_CHARS:
                raise TemplateBudgetError(f"a value of about {size:,}+ characters is over the "
                                          f"{MAX_CHARS:,}-character budget")
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise TemplateBudgetError(f"an integer of more than {MAX_INT_BITS:,} bits")
        return value

    def concat(self, parts: Iterable[str]) -> str:  # type: ignore[override]
        # Jinja joins every output stream (the whole render, blocks, macros, `set` blocks) with this.
        out, total = [], 0
        for part in parts:
            total += len(part)
            if total > MAX_CHARS:
                raise TemplateBudgetError(f"the output is longer than {MAX_CHARS:,} characters")
            self.tick()
            out.append(part)
        return "".join(out)

    def join_parts(self, parts: tuple) -> str:
        return self.concat(str(self.check_value(p)) for p in parts)

    def _iterate(self, value: Any) -> Iterator[Any]:
        for item in value:
            self.tick()
            yield item

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        problem = self._binop_problem(operator, left, right)
        if problem:
            raise TemplateBudgetError(problem)
        return self.check_value(self.binop_table[operator](left, right))

    def _binop_problem(self, operator: str, left: Any, right: Any) -> str | None:
        sized = (str, list, tuple, bytes)
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, sized) and isinstance(n, int) and n > 0 and weight(seq) * n > MAX_CHARS:
                    return f"repeating a value {n:,} times builds more than {MAX_CHARS:,} characters"
            if isinstance(left, int) and isinstance(right, int) and \
                    left.bit_length() + right.bit_length() > MAX_INT_BITS:
                return f"the product is an integer of more than {MAX_INT_BITS:,} bits"
        elif operator == "**":
            # (bits - 1) * exponent: a lower bound on the power's size, within a factor of two
            if isinstance(left, int) and isinstance(right, int) and right > 0 and \
                    (left.bit_length() - 1) * right > MAX_INT_BITS:
                return f"the power is an integer of more than {MAX_INT_BITS:,} bits"
        elif operator == "+":
            if isinstance(left, sized) and isinstance(right, sized):
                size = weight(left)
                if size + (size if right is left else weight(right, MAX_CHARS - size)) > MAX_CHARS:
                    return f"the sum is more than {MAX_CHARS:,} characters"
        elif operator == "%" and isinstance(left, str):
            return _printf_problem(left, right)
        return None

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja's signature)
        __self.tick()
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            problem = _str_method_problem(owner, getattr(target, "__name__", ""), args, kwargs)
            if problem:
                raise TemplateBudgetError(problem)
        elif isinstance(owner, list) and getattr(target, "__name__", "") in ("extend", "append", "insert") and \
                weight(owner) + sum(weight(a) for a in args) > MAX_CHARS:
            raise TemplateBudgetError(f"the list would hold more than {MAX_CHARS:,} characters")
        return __self.check_value(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)

    def _guard_filter(self, name: str, func):
        env = self

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            env.tick()
            args = tuple(list(env._iterate(a)) if isinstance(a, Iterator) else a for a in args)
            for value in (*args, *kwargs.values()):
                env.check_value(value)
            problem = _filter_problem(name, _filter_args(func, args), kwargs)
            if problem:
                raise TemplateBudgetError(f"filter {name}: {problem}")
            return env.check_value(func(*args, **kwargs))

        return guarded

    def _guard_test(self, func):
        env = self

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            env.tick()
            return func(*args, **kwargs)

        return guarded


def _filter_args(func, args: tuple) -> tuple:
    """The filter's own arguments (value first), without what Jinja passes before them."""
    return args[1:] if getattr(func, "jinja_pass_arg", None) is not None else args


def _filter_problem(name: str, args: tuple, kwargs: dict) -> str | None:
    if not args:
        return None
    value, rest = args[0], args[1:]
    text = value if isinstance(value, str) else None
    if name in _SUPERLINEAR_FILTERS and weight(value) > SUPERLINEAR_FILTER_CHARS:
        return f"refused on input over {SUPERLINEAR_FILTER_CHARS:,} characters (its cost grows faster than its input)"
    if name == "center":
        width = _int_arg(rest, kwargs, 0, "width", 80)
        if isinstance(width, int) and width > MAX_CHARS:
            return f"width {width:,} is over the {MAX_CHARS:,}-character budget"
    elif name == "indent":
        width = _int_arg(rest, kwargs, 0, "width", 4)
        size = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
        lines = str(value).count("\n") + 1 if text is not None else 1
        if size * lines + weight(value) > MAX_CHARS:
            return f"indenting builds more than {MAX_CHARS:,} characters"
    elif name == "format" and text is not None:
        return _printf_problem(text, kwargs if kwargs else tuple(rest))
    elif name == "replace" and text is not None:
        names = ("old", "new", "count")
        return _replace_problem(text, tuple(rest[i] if len(rest) > i else kwargs.get(n) for i, n in enumerate(names)))
    elif name == "join":
        sep = _int_arg(rest, kwargs, 0, "d", "")
        count = len(value) if hasattr(value, "__len__") else 0
        if weight(value) + (len(sep) if isinstance(sep, str) else 0) * count > MAX_CHARS:
            return f"joining builds more than {MAX_CHARS:,} characters"
    elif name in ("batch", "slice"):
        n = _int_arg(rest, kwargs, 0, "linecount" if name == "batch" else "slices", 0)
        if isinstance(n, int) and n > MAX_CHARS:
            return f"{n:,} is over the {MAX_CHARS:,} budget"
    elif name == "sum":
        start = _int_arg(rest, kwargs, 1, "start", 0)
        if not isinstance(start, (int, float)):
            return "sums of lists or strings are refused (their cost grows with the square of the input)"
    return None


__all__ = ["BudgetedEnvironment", "MAX_CHARS", "MAX_INT_BITS", "REMOVED_GLOBALS", "TIME_BUDGET_S", "TemplateBudgetError", "TemplateTimeout", "weight"]
