"""From a spec file on disk to a validated ``ProjectSpec``, or every problem with its position."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .checks import run_checks
from .errors import Diagnostic, LlmspecError, Pos, SpecError
from .models import ProjectSpec
from .pydantic_errors import translate
from .recipes import resolve_extends
from .yamlload import Positions, load_yaml_file, load_yaml_text


@dataclass
class LoadedSpec:
    """A spec as validated, with where each value came from."""

    path: Path
    display_path: str
    spec: ProjectSpec | None
    data: dict = field(default_factory=dict)
    positions: Positions = field(default_factory=lambda: Positions(key={}, value={}))
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def locate(self, path: tuple) -> Pos:
        return self.positions.at(path) or Pos(self.display_path, 1, 1)

    def locate_key(self, path: tuple) -> Pos:
        return self.positions.key_at(path) or self.locate(path)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def check_spec(path: Path, *, text: bytes | str | None = None, display: str | None = None) -> LoadedSpec:
    """Validate a spec and collect every diagnostic; never raises for problems in the file."""
    display = display or display_path(path)
    result = LoadedSpec(path=path, display_path=display, spec=None)
    try:
        loaded = load_yaml_text(text, display) if text is not None else load_yaml_file(path, display)
        data, positions = resolve_extends(loaded, path.resolve().parent, (str(path.resolve()),))
    except LlmspecError as exc:
        result.diagnostics = exc.diagnostics
        return result
    result.data, result.positions = data, positions
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as exc:
        diags = translate(exc, data, positions, ProjectSpec, Pos(display, 1, 1))
        result.diagnostics = _in_file_order(diags + _checks_beside_shape_errors(exc, data, result), display)
        return result
    result.spec = spec
    result.diagnostics = _in_file_order(run_checks(spec, data, result.locate, result.locate_key), display)
    if result.errors:
        result.spec = None
    return result


def _in_file_order(diags: list[Diagnostic], display: str) -> list[Diagnostic]:
    """The spec's own problems top to bottom, then those in the files it extends."""
    def key(d: Diagnostic):
        pos = d.pos or Pos(display)
        return (pos.path != display, pos.path, pos.line or 0, pos.col or 0)

    return sorted(diags, key=key)


# Sections the cross-field checks read from; a shape error in one of them leaves nothing to check
# against. Any other section with a shape error is set aside (its defaults take its place), so that
# a typo in `training` does not hide an unknown column in `format.map`.
_CHECKED_AGAINST = {"sources", "format"}
_STAND_INS = {"llmspec": 1, "project": "x", "base_model": {"id": "builtin:tiny"}}


def _checks_beside_shape_errors(exc: ValidationError, data: dict, result: LoadedSpec) -> list[Diagnostic]:
    broken = {err["loc"][0] for err in exc.errors(include_url=False) if err["loc"]}
    if broken & _CHECKED_AGAINST or not broken <= set(data) | set(_STAND_INS):
        return []
    rest = {k: v for k, v in data.items() if k not in broken}
    rest.update({k: v for k, v in _STAND_INS.items() if k in broken})
    try:
        spec = ProjectSpec.model_validate(rest)
    except ValidationError:
        return []
    return run_checks(spec, rest, result.locate, result.locate_key)


def load_spec(path: Path | str) -> LoadedSpec:
    """A valid spec, or a SpecError carrying every problem found."""
    result = check_spec(Path(path))
    if result.errors:
        raise SpecError(result.diagnostics)
    return result
