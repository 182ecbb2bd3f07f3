"""Regular expressions in the one dialect llmspec runs them in: Rust's ``regex`` crate, as
Polars uses it for cleaning rules and acceptance assertions alike.

Rust's engine runs in time linear in the text, so no pattern (``(\\w+\\s?)+$``) can hang a run
on a hostile or unlucky string. ``rust_syntax`` is pure Python so ``llmspec validate`` can refuse
the Python-only constructs without importing Polars; the runtime compiles the result with
Polars itself.
"""

from __future__ import annotations

import re


class RegexNotPortable(ValueError):
    """A Python regex construct Rust's regex engine (which Polars uses) does not have."""


_PY_ONLY = [
    (re.compile(r"\(\?<?[=!]"), "look-around ((?=...), (?!...), (?<=...), (?<!...))",
     "Rust regex has no look-around; match the context explicitly or use keep_matching/reject_matching "
     "with a second pattern"),
    (re.compile(r"\\[1-9]|\(\?P=\w+\)"), "a back-reference (\\1, (?P=name))",
     "Rust regex has no back-references"),
    (re.compile(r"\(\?\("), "a conditional group ((?(1)...))", "Rust regex has no conditionals"),
    (re.compile(r"\(\?>"), "an atomic group ((?>...))", "write the group without ?>"),
    (re.compile(r"(?<!\\)[*+?}]\+"), "a possessive quantifier (*+, ++, ?+)", "use the greedy form (*, +, ?)"),
    (re.compile(r"\(\?[imsx]*[aL]"), "the ASCII/LOCALE flag ((?a), (?L))",
     "spell the class out, e.g. [A-Za-z0-9_] instead of (?a)\\w"),
    (re.compile(r"\\N\{"), "a named character (\\N{...})", "use \\u{XXXX} or the character itself"),
]


def rust_syntax(pattern: str, ignore_case: bool = False) -> str:
    """The pattern in Rust regex syntax, or RegexNotPortable saying why not (syntax only).

    Translated: ``\\Z`` (Python's end of string) -> ``\\z``. Refused: what Rust cannot express.
    Known remaining difference: Python's ``$`` also matches before a final newline; Rust's only at
    the very end (irrelevant after `normalize`, which strips).
    """
    masked = _mask_classes(pattern)
    for rx, what, hint in _PY_ONLY:
        if rx.search(masked):
            raise RegexNotPortable(f"uses {what}, which Polars' Rust regex engine does not support", hint)
    out = re.sub(r"(?<!\\)((?:\\\\)*)\\Z", r"\1\\z", pattern)
    return "(?i)" + out if ignore_case else out


def _mask_classes(pattern: str) -> str:
    """Blank out escaped characters' partners inside [...] so '(?=' inside a class is not a look-ahead."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            # an escaped backslash is a literal: it must not pair with what follows it
            out.append(pattern[i:i + 2] if not in_class and pattern[i + 1] != "\\" else "__")
            i += 2
            continue
        if in_class:
            out.append("_")
            if ch == "]":
                in_class = False
        else:
            if ch == "[":
                in_class = True
                out.append("_")
                if pattern[i + 1:i + 2] == "]":  # a leading ] is literal
                    out.append("_")
                    i += 1
            else:
                out.append(ch)
        i += 1
    return "".join(out)


__all__ = ["RegexNotPortable", "rust_syntax"]
