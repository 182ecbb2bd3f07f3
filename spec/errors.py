"""The one error family users see.

Every problem a user can cause becomes a ``Diagnostic`` pointing at where it came
from (``path:line:col`` for the spec, file and row for data) and travels inside an
``LlmspecError``. The CLI renders them; nothing else prints errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Pos:
    """A place in a file. ``line`` and ``col`` are 1-based, as editors count.

    ``content`` is set on the position of a literal block scalar (``key: |``): the (line, col)
    where its first line of text starts, so an error on line k of a multi-line value (a template)
    can point at that line in the file. It takes no part in equality.
    """

    path: str
    line: int | None = None
    col: int | None = None
    content: tuple[int, int] | None = field(default=None, compare=False, repr=False)

    def inside(self, k: int) -> "Pos":
        """The position of line k (1-based) of this literal block's text; else this position."""
        if self.content is None:
            return self
        return Pos(self.path, self.content[0] + k - 1, self.content[1])

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    code: str
    message: str
    pos: Pos | None = None
    hint: str | None = None
    severity: Severity = "error"

    def render(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        text = f"{where}{self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict:
        out = {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "path": self.pos.path if self.pos else None,
            "line": self.pos.line if self.pos else None,
            "col": self.pos.col if self.pos else None,
            "hint": self.hint,
        }
        return out


class LlmspecError(Exception):
    """Base of every error a user can cause. Carries one or more diagnostics."""

    exit_code = 1

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic] | str, *, code: str = "error",
                 pos: Pos | None = None, hint: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(code=code, message=diagnostics, pos=pos, hint=hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]


class SpecError(LlmspecError):
    """The spec file (or a recipe it extends) is malformed or invalid."""


class DataError(LlmspecError):
    """A data source broke its contract or a quality gate failed."""


class StateError(LlmspecError):
    """The project state, lock or a saved plan does not allow the requested action."""


class TrainingError(LlmspecError):
    """The training subprocess failed."""


class AcceptanceFailed(LlmspecError):
    """Acceptance gates with severity 'error' failed: the run is not promoted."""

    exit_code = 3


def diagnostics_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


__all__ = [
    "AcceptanceFailed", "DataError", "Diagnostic", "LlmspecError", "Pos", "SpecError",
    "StateError", "TrainingError", "diagnostics_json", "did_you_mean",
]
