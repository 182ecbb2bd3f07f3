"""One registry of error codes (spec/errors.py CODES): every code the source can raise is in it,
and the troubleshooting guide names no code that does not exist.

The source is scanned with `ast`, not grepped, so a code passed through a helper (`data_error(...,
code="x")`, `self._fail(mark, "yaml-tag", ...)`, `TemplateCheck(set(), "bad-template")`) is found
as well as `Diagnostic("x", ...)`."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from llmspec.spec.errors import Diagnostic
try:
    from llmspec.spec.errors import CODES
except ImportError:
    CODES = {}

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("spec", "compiler", "runtime", "llmspec")
# Parameters (or dataclass fields) that carry a diagnostic code into a Diagnostic.
CODE_PARAMS = {"code", "error_code"}
# Codes that reach a Diagnostic through data flow a call-site scan cannot follow: each is
# checked to still be written, as a literal, in the file named here.
THROUGH_DATA = {"absolute-path": "spec/checks.py", "path-escape": "spec/checks.py"}
# Calls whose `code` is not a diagnostic: the serving API's error codes are OpenAI's protocol.
NOT_DIAGNOSTICS = {"ApiError"}


def _strings(node: ast.AST) -> list[str] | None:
    """The string values an expression can take, or None when it is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        a, b = _strings(node.body), _strings(node.orelse)
        return None if a is None or b is None else a + b
    return None


def _code_slots(tree: ast.Module) -> dict[str, int | None]:
    """name -> position of its code parameter, for every function and dataclass taking one."""
    slots: dict[str, int | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            if names and names[0] in ("self", "cls"):
                names = names[1:]
            kw = {a.arg for a in node.args.kwonlyargs}
            for i, name in enumerate(names):
                if name in CODE_PARAMS:
                    slots[node.name] = i
            if not (set(names) & CODE_PARAMS) and kw & CODE_PARAMS:
                slots[node.name] = None
        elif isinstance(node, ast.ClassDef):
            fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            for i, name in enumerate(fields):
                if name in CODE_PARAMS:
                    slots[node.name] = i
    return slots


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


@functools.lru_cache(maxsize=1)
def raised_codes() -> tuple[dict[str, list[str]], list[str]]:
    """({code: [where]}, [call sites whose code is not a literal])."""
    trees = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            trees[path] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    # A helper's own module knows which helper a name means (several modules have an `_error`
    # with the code in different places); other modules see the names that mean one thing.
    local = {path: _code_slots(tree) for path, tree in trees.items()}
    seen: dict[str, set] = {}
    for own in local.values():
        for name, slot in own.items():
            seen.setdefault(name, set()).add(slot)
    shared = {name: next(iter(s)) for name, s in seen.items() if len(s) == 1}
    shared.update({"Diagnostic": 0, "PydanticCustomError": 0})
    found: dict[str, list[str]] = {}
    dynamic: list[str] = []

    def note(values, where):
        for v in values:
            found.setdefault(v, []).append(where)

    for path, tree in trees.items():
        rel = path.relative_to(ROOT).as_posix()
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                  for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            # a constant named *CODE (CODE = "axolotl-config", CORRUPT_CODE: ClassVar[str] = "...") holds a code
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
                node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(target, ast.Name) and target.id.endswith("CODE") and node.value is not None \
                    and (s := _strings(node.value)):
                note(s, f"{rel}:{node.lineno}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                for arg, default in zip(args.args[len(args.args) - len(args.defaults):], args.defaults):
                    if arg.arg in CODE_PARAMS and (s := _strings(default)):
                        note(s, f"{rel}:{node.lineno}")
                for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                    if default is not None and arg.arg in CODE_PARAMS and (s := _strings(default)):
                        note(s, f"{rel}:{node.lineno}")
            if not isinstance(node, ast.Call):
                continue
            where = f"{rel}:{node.lineno}"
            if _callee(node) in NOT_DIAGNOSTICS:
                continue
            exprs = [k.value for k in node.keywords if k.arg in CODE_PARAMS]
            name = _callee(node)
            slot = local[path][name] if name in local[path] else shared.get(name)
            if slot is not None and len(node.args) > slot and not isinstance(node.args[slot], ast.Starred):
                exprs.append(node.args[slot])
            for expr in exprs:
                if isinstance(expr, ast.Name) and expr.id in consts:
                    note([consts[expr.id]], where)
                elif (s := _strings(expr)) is not None:
                    note(s, where)
                else:
                    dynamic.append(f"{where}: {ast.unparse(expr)}")
    return found, dynamic


def test_every_raised_code_is_registered():
    found, _ = raised_codes()
    assert len(found) > 60, "the scan found too few codes: is it still reading the source?"
    missing = {code: where[0] for code, where in found.items() if code not in CODES}
    assert not missing, ("codes raised but not in spec/errors.py CODES (add them, or reuse a registered "
                         f"code for the same problem): {missing}")


def test_codes_passed_through_data_are_still_there():
    for code, file in THROUGH_DATA.items():
        assert code in CODES
        assert f'"{code}"' in (ROOT / file).read_text(encoding="utf-8"), (code, file)


def test_registry_has_no_dead_or_duplicate_codes():
    found, _ = raised_codes()
    used = set(found) | set(THROUGH_DATA)
    dead = sorted(set(CODES) - used)
    assert not dead, f"registered but raised nowhere: {dead}"
    # the near-duplicates the registry was made to end
    for gone in ("unreadable-file", "missing-file", "source-missing", "unreadable"):
        assert gone not in found, (gone, found.get(gone))


def test_codes_are_kebab_case_and_described():
    for code, meaning in CODES.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code), code
        assert meaning and not meaning.endswith("."), (code, meaning)


def test_troubleshooting_names_only_registered_codes():
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"error\[([a-z0-9-]+)\]", text)) - {"code"}  # the format: error[code]
    headed = {c for line in text.splitlines() if line.startswith(("### ", "- `"))
              for c in re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", line.split(":")[0] if line.startswith("- ")
                                  else line)}
    unknown = sorted(c for c in shown | headed if c not in CODES)
    assert not unknown, unknown


def test_diagnostic_render_shows_the_code():
    assert "error[file-not-found]" in Diagnostic("file-not-found", "x").render()
