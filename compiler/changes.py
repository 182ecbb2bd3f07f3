"""Field-level changes between two configs, for a person to review.

Two rules make such a diff trustworthy:

- list items that have an identity (a test's name, a rule's name or kind) are matched by it,
  never by position: inserting one test shows one added test, not every later test "changed";
- a value is never cut where it differs: long or multi-line text (a system prompt, a Jinja
  template, a SQL query) is shown as a unified line diff with a little context.
"""

from __future__ import annotations

import bisect
import difflib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Sequence

SHORT = 60             # a value longer than this is shown as a line diff, not inline
CONTEXT_LINES = 2      # unchanged lines shown around each changed one


class ChangeOp(StrEnum):
    CHANGED = "changed"
    ADDED = "added"        # a list item (a test, a rule) that was not there
    REMOVED = "removed"
    MOVED = "moved"        # the same item at another position (old and new are 1-based positions)
    RENAMED = "renamed"    # the same content under another name (old and new are the names)


_MISSING = object()


@dataclass
class FieldChange:
    path: str
    old: Any
    new: Any
    op: ChangeOp = ChangeOp.CHANGED
    position: int | None = None     # ADDED: where it is now; REMOVED: where it was (1-based)

    @property
    def is_long(self) -> bool:
        return self.op == ChangeOp.CHANGED and (_long(self.old) or _long(self.new))

    def render(self) -> str:
        """One line: the whole change when it is short, else what changed (see ``detail``)."""
        if self.op == ChangeOp.ADDED:
            return f"+ {self.path} (added at position {self.position})"
        if self.op == ChangeOp.REMOVED:
            return f"- {self.path} (removed from position {self.position})"
        if self.op == ChangeOp.MOVED:
            return f"{self.path}: moved from position {self.old} to {self.new}"
        if self.op == ChangeOp.RENAMED:
            return f"{self.path}: renamed to {self.new}"
        if self.is_long and _one_line(self.old) and _one_line(self.new):
            old, new = self.old.rstrip("\n"), self.new.rstrip("\n")
            a, b = changed_span(old, new) if old != new else changed_span(self.old, self.new)
            return f"{self.path}: {a} -> {b}"
        if self.is_long:
            diff = self.detail()
            plus = sum(1 for x in diff if x.startswith("+"))
            minus = sum(1 for x in diff if x.startswith("-"))
            return f"{self.path}: changed (+{plus} -{minus} lines)"
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}"

    def detail(self) -> list[str]:
        """The lines under ``render()``: a unified diff for long values, an added item's fields."""
        if self.op == ChangeOp.ADDED and isinstance(self.new, dict):
            leaves: dict[str, Any] = {}
            _leaves(self.new, "", leaves)
            # unset and off-by-default values say nothing about a new item
            return [f"{k}: {_full(v)}" for k, v in leaves.items() if not (v is None or v is False or v == [] or v == {})]
        if self.is_long:
            return text_diff(self.old, self.new)
        return []

    def lines(self) -> list[str]:
        return [self.render(), *("  " + x for x in self.detail())]

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "op": self.op, "old": self.old, "new": self.new}
        if self.position is not None:
            out["position"] = self.position
        if self.is_long:
            out["diff"] = self.detail()
        return out


def text_diff(old: Any, new: Any) -> list[str]:
    """A unified diff of two values, file headers left out; one line -> one line is just -/+."""
    a, b = _as_lines(old), _as_lines(new)
    out = list(difflib.unified_diff(a, b, lineterm="", n=CONTEXT_LINES))[2:]
    if len(a) <= 1 and len(b) <= 1:
        out = [x for x in out if not x.startswith("@@")]
    return out


def changed_span(old: str, new: str, context: int = 24) -> tuple[str, str]:
    """The part of two one-line texts that differs, with ``context`` characters either side
    (cut at a space) and `…` where text is left out: the edit in a long line, at a glance."""
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    q = 0
    while q < min(len(old), len(new)) - p and old[-1 - q] == new[-1 - q]:
        q += 1
    start = max(0, p - context)
    if start:
        space = old.find(" ", start, p)
        start = space + 1 if space >= 0 else start

    def cut(text: str) -> str:
        end = len(text) - q
        stop = min(len(text), end + context)
        if stop < len(text):
            space = text.find(" ", end)
            stop = space if 0 <= space <= stop else stop
        return ("…" if start else "") + repr(text[start:stop])[1:-1] + ("…" if stop < len(text) else "")

    return f'"{cut(old)}"', f'"{cut(new)}"'


def _one_line(value: Any) -> bool:
    return isinstance(value, str) and "\n" not in value.rstrip("\n")


def _as_lines(value: Any) -> list[str]:
    if value is None or value is _MISSING:
        return []
    if isinstance(value, str):
        return value.splitlines() or [""]
    if isinstance(value, list):
        return [_full(x) for x in value]
    return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()


def _long(value: Any) -> bool:
    if isinstance(value, str):
        return "\n" in value or (len(value) > SHORT and not _is_hash(value))
    return isinstance(value, (list, dict)) and len(_full(value)) > SHORT


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _short(value: Any) -> str:
    if _is_hash(value):
        return value[:12]
    return _full(value)


def _full(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, (dict, list)) else repr(value)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _leaves(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _leaves(v, _join(prefix, k), out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, v in enumerate(obj):
            _leaves(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = obj


def walk(path: str, old: Any, new: Any, out: list[FieldChange]) -> None:
    """Append the leaf changes from ``old`` to ``new`` under ``path`` (dicts by key; lists of
    dicts, such as a test's assertions, by position)."""
    if old == new:
        return
    if isinstance(old, dict) or isinstance(new, dict):
        a = old if isinstance(old, dict) else {} if old in (None, _MISSING) else None
        b = new if isinstance(new, dict) else {} if new in (None, _MISSING) else None
        if a is not None and b is not None and (a or b):
            for key in [*a, *(k for k in b if k not in a)]:
                walk(_join(path, key), a.get(key, _MISSING), b.get(key, _MISSING), out)
            return
    if _dict_list(old) and _dict_list(new):
        for i in range(max(len(old), len(new))):
            walk(f"{path}[{i}]", old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING, out)
        return
    out.append(FieldChange(path, None if old is _MISSING else old, None if new is _MISSING else new))


def _dict_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)


# ----------------------------------------------------------------------------- lists by identity


@dataclass
class Item:
    """One entry of a list diffed by identity."""

    label: str                 # how it is shown: tests[<label>]; also its identity when named
    content: Any               # what is compared: no name, no position
    named: bool = True         # unnamed items pair by kind and content, then by position
    kind: str = ""
    _canon: str = field(default="", repr=False)

    def canon(self) -> str:
        if not self._canon:
            self._canon = json.dumps([self.kind, self.content], sort_keys=True, default=str)
        return self._canon


def diff_items(prefix: str, old: Sequence[Item], new: Sequence[Item], *,
               renames: list[FieldChange] | None = None, know_content: bool = True,
               labels_are_output: bool = False) -> list[FieldChange]:
    """Changes between two lists matched by identity: named items by name, unnamed ones by kind
    (equal content first, then in order within a kind), then any leftover pair with equal
    content as a rename. Reorders are shown as the fewest moves (the items outside a longest
    run kept in order). Renames go to ``renames`` when given (names that are only labels).
    ``know_content=False``: items are names alone, so no two of them can be told to be one.
    ``labels_are_output``: a matched unnamed item whose label moved (a rule's `kind#N` reject
    reason) is shown as renamed too."""
    pairs, renamed = _match(old, new, know_content)
    out: list[FieldChange] = []
    for i, item in enumerate(old):
        if i not in pairs:
            out.append(FieldChange(f"{prefix}[{item.label}]", item.content, None, ChangeOp.REMOVED, position=i + 1))
    by_new = {j: i for i, j in pairs.items()}
    in_order = sorted(pairs)                       # old positions of matched items, in old order
    kept = _longest_increasing([pairs[i] for i in in_order])
    moved = {in_order[k] for k in range(len(in_order)) if k not in kept}
    for j, item in enumerate(new):
        if j not in by_new:
            out.append(FieldChange(f"{prefix}[{item.label}]", None, item.content, ChangeOp.ADDED, position=j + 1))
            continue
        i = by_new[j]
        if i in renamed or (labels_are_output and old[i].label != item.label):
            (renames if renames is not None else out).append(
                FieldChange(f"{prefix}[{old[i].label}]", old[i].label, item.label, ChangeOp.RENAMED))
        if i in moved:
            out.append(FieldChange(f"{prefix}[{item.label}]", i + 1, j + 1, ChangeOp.MOVED))
        walk(f"{prefix}[{item.label}]", old[i].content, item.content, out)
    return out


def _match(old: Sequence[Item], new: Sequence[Item], know_content: bool) -> tuple[dict[int, int], set[int]]:
    pairs: dict[int, int] = {}
    free_new: dict[str, list[int]] = {}
    for j, item in enumerate(new):
        if item.named:
            free_new.setdefault(item.label, []).append(j)
    for i, item in enumerate(old):
        if item.named and free_new.get(item.label):
            pairs[i] = free_new[item.label].pop(0)
    # unnamed: per kind, equal content lines up first, a changed one pairs with its counterpart
    taken = set(pairs.values())
    for kind in dict.fromkeys(x.kind for x in [*old, *new] if not x.named):
        a = [i for i, x in enumerate(old) if not x.named and x.kind == kind and i not in pairs]
        b = [j for j, x in enumerate(new) if not x.named and x.kind == kind and j not in taken]
        sm = difflib.SequenceMatcher(None, [old[i].canon() for i in a], [new[j].canon() for j in b], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag in ("equal", "replace"):
                for x, y in zip(range(i1, i2), range(j1, j2)):
                    pairs[a[x]] = b[y]
                    taken.add(b[y])
    # leftovers with equal content: the same item under another name
    renamed: set[int] = set()
    if not know_content:
        return pairs, renamed
    spare: dict[str, list[int]] = {}
    for j, item in enumerate(new):
        if j not in taken:
            spare.setdefault(item.canon(), []).append(j)
    for i, item in enumerate(old):
        if i not in pairs and spare.get(item.canon()):
            pairs[i] = spare[item.canon()].pop(0)
            renamed.add(i)
    return pairs, renamed


def _longest_increasing(values: list[int]) -> set[int]:
    """Indexes into ``values`` of one longest strictly increasing subsequence (patience sort)."""
    tails: list[int] = []
    tail_at: list[int] = []
    back = [-1] * len(values)
    for k, v in enumerate(values):
        p = bisect.bisect_left(tails, v)
        if p == len(tails):
            tails.append(v)
            tail_at.append(k)
        else:
            tails[p] = v
            tail_at[p] = k
        back[k] = tail_at[p - 1] if p else -1
    keep: set[int] = set()
    k = tail_at[-1] if tail_at else -1
    while k != -1:
        keep.add(k)
        k = back[k]
    return keep
