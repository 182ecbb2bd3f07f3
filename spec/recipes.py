"""`extends`: built-in recipes and shared base files, deep-merged before validation.

Merge rules (documented in the README):
- mappings merge key by key, the extending file winning;
- `quality.rules` and `acceptance.tests` append (the recipe's first), because a recipe adds
  rules and tests rather than replacing yours;
- any other list, and any scalar, is replaced by the extending file's value.

Every value keeps the position of the file it came from, so an error in a value that came
from a recipe names the recipe file and line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import Diagnostic, Pos, SpecError, did_you_mean
from .yamlload import Loaded, Positions, load_yaml_file, load_yaml_text

APPEND_LISTS = {("quality", "rules"), ("acceptance", "tests")}
RECIPE_PREFIX = "recipe:"
MAX_EXTENDS_DEPTH = 8


def builtin_recipes() -> dict[str, str]:
    """name -> YAML text of every built-in recipe."""
    out = {}
    for entry in resources.files("llmspec.recipes").iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


def recipe_description(text: str) -> str:
    """The comment block at the top of a recipe, as one paragraph."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x).strip()


def _load_reference(ref: str, *, from_dir: Path, pos: Pos | None) -> tuple[Loaded, Path | None]:
    if ref.startswith(RECIPE_PREFIX):
        name = ref[len(RECIPE_PREFIX):]
        recipes = builtin_recipes()
        if name not in recipes:
            raise SpecError(Diagnostic(
                "unknown-recipe", f"there is no built-in recipe '{name}'", pos,
                hint=did_you_mean(name, recipes) or f"built-in recipes: {', '.join(recipes)}",
            ))
        return load_yaml_text(recipes[name], f"recipes/{name}.yaml"), None
    full = _reference_path(ref, from_dir, pos)
    if not full.is_file():
        raise SpecError(Diagnostic("file-not-found", f"extends file '{ref}' does not exist", pos))
    return load_yaml_file(full, _display(full)), full.parent


def _reference_path(ref: str, from_dir: Path, pos: Pos | None) -> Path:
    path = Path(ref)
    if path.is_absolute():
        raise SpecError(Diagnostic("absolute-path", f"extends path '{ref}' is absolute", pos,
                                   hint="give a path relative to the spec's folder"))
    return from_dir / path


def _display(full: Path) -> str:
    cwd = Path.cwd()
    return str(full.relative_to(cwd)) if full.is_relative_to(cwd) else str(full)


def _identity(ref: str, from_dir: Path, pos: Pos | None) -> str:
    """What a reference names, however it is spelt (`base.yaml` and `./base.yaml` are one file)."""
    if ref.startswith(RECIPE_PREFIX):
        return ref
    try:
        return str(_reference_path(ref, from_dir, pos).resolve())
    except OSError:
        return ref


def _chain(idents: tuple[str, ...]) -> str:
    return " -> ".join(x if x.startswith(RECIPE_PREFIX) else Path(x).name for x in idents)


def _extends_list(loaded: Loaded) -> list[tuple[str, Pos | None]]:
    raw = loaded.data.get("extends", [])
    if isinstance(raw, str):
        return [(raw, loaded.positions.at(("extends",)))]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise SpecError(Diagnostic("wrong-type", "extends must be a list of `recipe:NAME` or relative paths",
                                   loaded.positions.at(("extends",)),
                                   hint="e.g. `extends: [recipe:lora-small, shared/base.yaml]`"))
    return [(x, loaded.positions.at(("extends", i))) for i, x in enumerate(raw)]


def resolve_extends(loaded: Loaded, base_dir: Path, _seen: tuple[str, ...] = ()) -> tuple[dict, Positions]:
    """The file's data with everything it extends merged underneath, and merged positions.

    `_seen` holds what the chain so far resolved to (the spec itself first, when the caller knows
    its path), so a cycle is found whatever spelling each file uses for the next.
    """
    if len(_seen) > MAX_EXTENDS_DEPTH:
        raise SpecError(Diagnostic("extends-cycle", "extends chain is deeper than "
                                   f"{MAX_EXTENDS_DEPTH}: {_chain(_seen)}", loaded.positions.at(("extends",))))
    data, positions = {}, Positions(key={}, value={})
    for ref, pos in _extends_list(loaded):
        ident = _identity(ref, base_dir, pos)
        if ident in _seen or ref in _seen:
            raise SpecError(Diagnostic("extends-cycle", f"extends cycle: {_chain(_seen + (ident,))}", pos,
                                       hint="a file may not extend itself, directly or through others"))
        parent, parent_dir = _load_reference(ref, from_dir=base_dir, pos=pos)
        pdata, ppos = resolve_extends(parent, parent_dir or base_dir, _seen + (ident,))
        pdata.pop("extends", None)
        data, positions = merge(data, positions, pdata, ppos)
    data, positions = merge(data, positions, loaded.data, loaded.positions)
    if isinstance(data.get("extends"), str):
        # one reference may be written without brackets; the models see the list it means
        data["extends"] = [data["extends"]]
        if ("extends",) in positions.value:
            positions.value[("extends", 0)] = positions.value[("extends",)]
    return data, positions


def _copy_positions(src: Positions, src_prefix: tuple, dst: Positions, dst_prefix: tuple) -> None:
    n = len(src_prefix)
    for table_name in ("key", "value"):
        src_table, dst_table = getattr(src, table_name), getattr(dst, table_name)
        for path, pos in src_table.items():
            if path[:n] == src_prefix:
                dst_table[dst_prefix + path[n:]] = pos


def merge(base: dict, base_pos: Positions, over: dict, over_pos: Positions) -> tuple[dict, Positions]:
    out_pos = Positions(key={}, value={})
    out = _merge_node(base, base_pos, over, over_pos, (), out_pos)
    return out, out_pos


def _merge_node(base, base_pos, over, over_pos, path, out_pos):
    if isinstance(base, dict) and isinstance(over, dict):
        _copy_own(over_pos, path, out_pos)
        result = {}
        for key in list(base) + [k for k in over if k not in base]:
            child = path + (key,)
            if key in over and key in base:
                result[key] = _merge_node(base[key], base_pos, over[key], over_pos, child, out_pos)
            elif key in over:
                result[key] = over[key]
                _copy_positions(over_pos, child, out_pos, child)
            else:
                result[key] = base[key]
                _copy_positions(base_pos, child, out_pos, child)
        return result
    if path in APPEND_LISTS and isinstance(base, list) and isinstance(over, list):
        _copy_own(over_pos, path, out_pos)
        for i in range(len(base)):
            _copy_positions(base_pos, path + (i,), out_pos, path + (i,))
        for j in range(len(over)):
            _copy_positions(over_pos, path + (j,), out_pos, path + (len(base) + j,))
        return list(base) + list(over)
    _copy_positions(over_pos, path, out_pos, path)
    return over


def _copy_own(src: Positions, path: tuple, dst: Positions) -> None:
    for table_name in ("key", "value"):
        pos = getattr(src, table_name).get(path)
        if pos is not None:
            getattr(dst, table_name)[path] = pos
