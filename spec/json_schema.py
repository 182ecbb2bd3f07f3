"""What a ``json_schema`` assertion's schema may refer to, checked when the spec is validated.

Nothing is ever retrieved: a ``$ref`` (``$dynamicRef``, ``$recursiveRef``) is a fragment of the
schema itself (``#``, ``#/$defs/answer``, ``#name`` for an ``$anchor``), never an ``http:`` or
``file:`` address. Every reference must point at something, and no chain of references and
in-place keywords (``allOf``, ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else``,
``dependentSchemas``) may lead back to where it started without descending into the data
(``{$ref: "#"}`` would recurse for ever). Patterns are in the regex dialect llmspec runs them
in (``spec.regex``), linear in the text.
"""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import unquote

from .regex import RegexNotPortable, rust_syntax

_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_MISSING = object()


def _walk(node: Any, pointer: str = "") -> Iterator[tuple[str, dict]]:
    """(JSON pointer, schema object) for every object in the schema document."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            if key in ("enum", "const", "examples", "default"):
                continue  # data, not schemas
            yield from _walk(value, f"{pointer}/{_escape(str(key))}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{i}")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _resolve_pointer(root: Any, pointer: str) -> Any:
    node = root
    for raw in pointer.split("/")[1:]:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _target(root: dict, anchors: dict[str, dict], ref: str) -> Any:
    fragment = ref[1:]
    if fragment == "" or fragment.startswith("/"):
        return _resolve_pointer(root, fragment)
    return anchors.get(unquote(fragment), _MISSING)


def schema_problem(schema: dict) -> str | None:
    """Why the schema cannot be used as it is (a reference to retrieve, a reference to nothing,
    a reference loop, a pattern outside the dialect), or None."""
    objects = list(_walk(schema))
    anchors: dict[str, dict] = {}
    for _, node in objects:
        for key in ("$anchor", "$dynamicAnchor"):
            if isinstance(node.get(key), str):
                anchors.setdefault(node[key], node)
        if isinstance(node.get("$id"), str) and node["$id"].startswith("#") and node is not schema:
            anchors.setdefault(node["$id"][1:], node)  # draft 6/7 spelling of an anchor
    edges: dict[int, list[tuple[str, dict]]] = {}
    where: dict[int, str] = {id(node): "#" + pointer for pointer, node in objects}
    for pointer, node in objects:
        here = "#" + pointer
        out = edges.setdefault(id(node), [])
        for key in _REF_KEYS:
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                return (f"{key} {ref!r} at {here} refers outside the schema; nothing is ever retrieved (no http, "
                        "no files): put the schema under $defs and refer to it as #/$defs/name")
            target = _target(schema, anchors, ref)
            if target is _MISSING or not isinstance(target, (dict, bool)):
                return f"{key} {ref!r} at {here} points to nothing in the schema"
            if isinstance(target, dict):
                out.append((f"{key} {ref}", target))
        for key in _IN_PLACE_LISTS:
            if isinstance(node.get(key), list):
                out.extend((key, sub) for sub in node[key] if isinstance(sub, dict))
        for key in _IN_PLACE_ONE:
            if isinstance(node.get(key), dict):
                out.append((key, node[key]))
        if isinstance(node.get("dependentSchemas"), dict):
            out.extend(("dependentSchemas", sub) for sub in node["dependentSchemas"].values() if isinstance(sub, dict))
        problem = _pattern_problem(node, here)
        if problem:
            return problem
    return _loop({id(node): node for _, node in objects}, edges, where)


def _pattern_problem(node: dict, here: str) -> str | None:
    patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        patterns += [p for p in node["patternProperties"] if isinstance(p, str)]
        if "unevaluatedProperties" in node:
            return (f"patternProperties beside unevaluatedProperties at {here} is not supported (its property "
                    "names would be matched by a backtracking engine); list the properties instead")
    for pattern in patterns:
        try:
            rust_syntax(pattern)
        except RegexNotPortable as exc:
            return f"pattern {pattern!r} at {here} {exc.args[0]}"
    return None


def _loop(nodes: dict[int, dict], edges: dict[int, list[tuple[str, dict]]], where: dict[int, str]) -> str | None:
    """A cycle of in-place applications (validation of one value that never ends), described."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(node: dict, path: list[str]) -> str | None:
        state[id(node)] = 1
        for how, target in edges.get(id(node), []):
            step = path + [f"{how} -> {where.get(id(target), '?')}"]
            if state.get(id(target)) == 1:
                return (f"the schema refers back to itself without descending into the data "
                        f"({where.get(id(node), '#')}: {'; '.join(step[-4:])}): validation would never end")
            if id(target) not in state:
                found = visit(target, step)
                if found:
                    return found
        state[id(node)] = 2
        return None

    for node_id, node in nodes.items():
        if node_id not in state:
            found = visit(node, [])
            if found:
                return found
    return None


__all__ = ["schema_problem"]
