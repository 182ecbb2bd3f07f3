"""The files llmspec writes and later reads back, as versioned models checked on read.

Each file records its format version and the llmspec that wrote it. Reading one checks, in
order: that it can be read at all, that it is JSON, that its version is one this llmspec
knows (a newer one is refused, naming both versions: guessing at a newer format could corrupt
the project), and that its shape is the model's. Every failure is an `LlmspecError` naming the
file and what is wrong with it, never a traceback.

| file                           | model          | version key      |
|--------------------------------|----------------|------------------|
| `.llmspec/state.json`          | `StateFile`    | `version`        |
| `llmspec.lock`                 | `LockFile`     | `lock_version`   |
| `.llmspec/apply.lock`          | `ApplyLockInfo`| `version`        |
| `runs/<id>/manifest.json`      | `RunManifest`  | `version`        |
| `runs/<id>/report.json`        | `RunReport`    | `version`        |
| a saved plan (`plan -o FILE`)  | `SavedPlan`    | `format_version` |

The source hash cache (`.llmspec/hashes.json`) is versioned too, but safe to lose: a damaged
one is ignored with a warning (runtime/engine/file_hashes.py).
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError,
                      field_validator)

from llmspec.spec.errors import Diagnostic, Pos, StateError
from llmspec.spec.version import llmspec_version


class RunOutcome(str, enum.Enum):
    """How a run ended (or that it has not yet). A str, so JSON and comparisons see the value."""

    RUNNING = "running"
    PROMOTED = "promoted"            # every error gate passed; this run is the promoted one
    GATES_FAILED = "gates_failed"    # built and tested, not promoted; the earlier promotion stays
    BUILT = "built"                  # stages built, nothing to promote
    NOOP = "noop"                    # nothing was stale
    FAILED = "failed"                # stopped by an error
    INTERRUPTED = "interrupted"      # its process ended without recording an outcome (killed, disk full)

    def __str__(self) -> str:
        return self.value


class _Strict(BaseModel):
    # A field this llmspec does not know means the file is damaged or from another version.
    model_config = ConfigDict(extra="forbid")


class Artifact(_Strict):
    """A file with a format version. Subclasses set the class variables below."""

    WHAT: ClassVar[str]                          # "state file", named in messages
    VERSION_KEY: ClassVar[str] = "version"
    VERSION: ClassVar[int]
    # older formats still read: version (None: the key is absent) -> migration to the current shape
    LEGACY: ClassVar[dict[int | None, Callable[[dict], dict]]] = {}
    CORRUPT_CODE: ClassVar[str] = "state-corrupt"
    HINT: ClassVar[str]                          # what to do about a damaged file

    written_by: str | None = None                # the llmspec version that wrote it; None before 0.1.1

    def dump(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data[self.VERSION_KEY] = self.VERSION
        data["written_by"] = llmspec_version()
        return data


A = TypeVar("A", bound=Artifact)


def _error(code: str, path: Path | str, message: str, hint: str | None, line: int | None = None,
           col: int | None = None) -> StateError:
    return StateError(Diagnostic(code, message, Pos(str(path), line, col), hint=hint))


def read_json(path: Path | str, model: type[Artifact], *, text: str | None = None) -> Any:
    """The parsed JSON of `path` (or of `text`, read from where `path` names), or a located error."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except IsADirectoryError:
            raise _error(model.CORRUPT_CODE, path, f"a folder where the {model.WHAT} should be",
                         f"move it away; {model.HINT}") from None
        except UnicodeDecodeError as exc:
            raise _error(model.CORRUPT_CODE, path, f"not a valid {model.WHAT}: not UTF-8 text "
                         f"(byte {exc.start})", model.HINT) from None
        except OSError as exc:
            raise _error("file-unreadable", path, f"cannot read this {model.WHAT}: {exc.strerror or exc}",
                         "check its permissions") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(model.CORRUPT_CODE, path, f"not a valid {model.WHAT}: not JSON ({exc.msg})",
                     model.HINT, exc.lineno, exc.colno) from None
    except (ValueError, RecursionError) as exc:  # an integer too long to parse, nesting too deep
        raise _error(model.CORRUPT_CODE, path, f"not a valid {model.WHAT}: {exc}", model.HINT) from None


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def check_version(data: Any, path: Path | str, model: type[Artifact]) -> dict:
    """`data` migrated to the current format, or refused when its version is newer or unknown."""
    if not isinstance(data, dict):
        raise _error(model.CORRUPT_CODE, path, f"not a valid {model.WHAT}: expected a JSON object, "
                     f"found {_describe(data)}", model.HINT)
    key, current = model.VERSION_KEY, model.VERSION
    version = data.get(key)
    writer = data.get("written_by")
    by = f" by llmspec {writer}" if isinstance(writer, str) else ""
    this = f"this llmspec ({llmspec_version()})"
    if version is None and None in model.LEGACY:
        return model.LEGACY[None](data)
    if version is None:
        problem = f"has no {key}: not a {model.WHAT} that {this} can read"
    elif not isinstance(version, int) or isinstance(version, bool):
        problem = f"has {key} {json.dumps(version)}{by}: not a {model.WHAT} format {this} knows"
    elif version == current:
        return data
    elif version in model.LEGACY:
        return model.LEGACY[version](data)
    elif version > current:
        raise _error("unsupported-version", path,
                     f"this {model.WHAT} was written{by} in format {version}; {this} reads format "
                     f"{current} at most", "upgrade llmspec to the version that wrote it "
                     "(pip install -U llmspec-tune)")
    else:
        problem = f"is in {model.WHAT} format {version}{by}, older than {this} reads"
    raise _error("unsupported-version", path, f"this {model.WHAT} {problem}", model.HINT)


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shape_error(exc: ValidationError, path: Path | str, model: type[Artifact], prefix: tuple = ()) -> StateError:
    problems = []
    for err in exc.errors()[:3]:
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"][0].lower() + err["msg"][1:]
        problems.append(f"{_where(prefix + tuple(err['loc']))}: {msg}")
    more = exc.error_count() - len(problems)
    return _error(model.CORRUPT_CODE, path, f"not a valid {model.WHAT}: " + "; ".join(problems)
                  + (f" (and {more} more)" if more > 0 else ""), model.HINT)


def parse(model: type[A], data: Any, path: Path | str) -> A:
    """Check the version and shape of already parsed JSON."""
    data = check_version(data, path, model)
    try:
        return model.model_validate({k: v for k, v in data.items() if k != model.VERSION_KEY})
    except ValidationError as exc:
        raise shape_error(exc, path, model) from None


def load(model: type[A], path: Path) -> A:
    """Read and check one artifact."""
    return parse(model, read_json(path, model), path)


def save(artifact: Artifact, path: Path) -> None:
    """Write one artifact atomically, with its version and writer (e.g. the executor's
    `save(RunManifest(run=..., outcome=..., ...), partial / "manifest.json")`)."""
    from llmspec.runtime.engine.atomic import write_json_atomic

    write_json_atomic(path, artifact.dump())


# ----------------------------------------------------------------------------- state.json


class StageOutputs(BaseModel):
    """The figures of a stage's outputs that llmspec reads back (plan estimates, reuse, `test`),
    typed strictly so a damaged one is caught on read; the rest are carried as they are."""

    model_config = ConfigDict(extra="allow")
    dir: StrictStr | None = None                  # the stage folder, relative to .llmspec/
    rows_in: StrictInt | None = None
    rows: StrictInt | None = None
    rows_kept: StrictInt | None = None
    train: StrictInt | None = None                # dataset: examples to train on
    eval: StrictInt | None = None
    train_tokens: StrictInt | None = None
    model: StrictStr | None = None                # train: the model folder inside the stage folder
    adapter: StrictBool | None = None
    base_model_path: StrictStr | None = None


class StageRecord(_Strict):
    """The last successful build of one stage."""

    fingerprint: str
    config: dict[str, Any]
    run: str                       # the run that built it
    outputs: dict[str, Any]        # paths (relative to the state dir) and figures; see StageOutputs
    built_at: str

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, value: dict[str, Any]) -> dict[str, Any]:
        StageOutputs.model_validate(value)
        return value


class SpecLabels(BaseModel):
    """compiler.plan.metadata_of: the labels of a spec (its description, test names) that a
    plan compares to call an edit "metadata only"; typed so a damaged one is caught on read."""

    model_config = ConfigDict(extra="allow")
    description: StrictStr | None = None
    tests: list[StrictStr] | None = None


def _check_labels(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        SpecLabels.model_validate(value)
    return value


class RunRecord(_Strict):
    run: str
    outcome: RunOutcome
    started_at: str | None = None
    finished_at: str | None = None
    built: list[str] = Field(default_factory=list)
    reused: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None     # labels of the spec it ran: SpecLabels

    _labels = field_validator("metadata")(_check_labels)


class Promotion(_Strict):
    run: str
    model_path: str | None = None
    adapter: bool = False
    base_model_path: str | None = None
    promoted_at: str
    fingerprint: str | None = None
    train_dir: str | None = None  # the train stage folder the model lives in (relative to .llmspec/)


def _state_v1(data: dict) -> dict:
    return {**data, "version": 2, "written_by": None}


class StateFile(Artifact):
    WHAT: ClassVar[str] = "state file"
    VERSION: ClassVar[int] = 2
    LEGACY = {1: _state_v1}        # 1: the same shape, before the writer's version was recorded
    HINT: ClassVar[str] = ("move it away: the next apply then rebuilds every stage (the built stages in "
                           ".llmspec/stages/ are kept)")

    stages: dict[str, StageRecord] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)
    promoted: Promotion | None = None


# ----------------------------------------------------------------------------- llmspec.lock


class LockedSource(_Strict):
    files: dict[str, str]          # file (relative to the spec) -> sha256; a database: "query-result"
    rows: int | None = None


def _lock_v1(data: dict) -> dict:
    return {**data, "lock_version": 2, "written_by": None}


class LockFile(Artifact):
    WHAT: ClassVar[str] = "lock file"
    VERSION_KEY: ClassVar[str] = "lock_version"
    VERSION: ClassVar[int] = 2
    LEGACY = {1: _lock_v1}
    CORRUPT_CODE: ClassVar[str] = "lockfile-corrupt"
    HINT: ClassVar[str] = "restore it from git (git checkout -- llmspec.lock), or delete it and run apply"

    project: str
    base_model: dict[str, Any]
    sources: dict[str, LockedSource] = Field(default_factory=dict)
    stages: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None     # SpecLabels

    _labels = field_validator("metadata")(_check_labels)

    def text(self) -> str:
        # Sorted, indented JSON: a lock file is reviewed in diffs.
        return json.dumps(self.dump(), indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------- apply.lock


class ApplyLockInfo(Artifact):
    """Who holds the apply lock, written into it while held (the lock itself is an OS file lock)."""

    WHAT: ClassVar[str] = "apply lock"
    VERSION: ClassVar[int] = 1
    HINT: ClassVar[str] = "if no apply is running on this project, delete it"

    pid: int
    host: str
    since: str

    def holder(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since}"


# ----------------------------------------------------------------------------- runs/<id>/


def _unversioned(version_key: str, current: int) -> Callable[[dict], dict]:
    def migrate(data: dict) -> dict:
        return {**data, version_key: current, "written_by": None}
    return migrate


class RunManifest(Artifact):
    """`runs/<id>/manifest.json`: what one run used and built."""

    WHAT: ClassVar[str] = "run manifest"
    VERSION: ClassVar[int] = 1
    LEGACY = {None: _unversioned("version", 1)}   # runs written before manifests carried a version
    HINT: ClassVar[str] = "the run folder is damaged; `llmspec test --run` another run, or apply again"

    run: str
    outcome: RunOutcome
    finished_at: str
    spec_path: str
    fingerprints: dict[str, str]
    stages: dict[str, str]         # stage id -> its folder, relative to .llmspec/
    built: list[str] = Field(default_factory=list)
    reused: list[str] = Field(default_factory=list)


class RunReport(Artifact):
    """`runs/<id>/report.json`. The envelope is checked; the sections (sources, dataset, training,
    acceptance) belong to the report writers and are carried as they are."""

    model_config = ConfigDict(extra="allow")
    WHAT: ClassVar[str] = "run report"
    VERSION: ClassVar[int] = 1
    LEGACY = {None: _unversioned("version", 1)}
    HINT: ClassVar[str] = "the run folder is damaged; apply again to write a new report"

    project: str
    run: str
    created_at: str
    spec_path: str
    outcome: RunOutcome | None = None
    sources: dict[str, Any] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- saved plans

PLAN_FILE_KIND = "llmspec-plan"


class SavedStageDiff(BaseModel):
    model_config = ConfigDict(extra="allow")   # the rendering fields (changes, reasons) are the diff's
    id: str
    action: str


class SavedDiff(BaseModel):
    model_config = ConfigDict(extra="allow")
    baseline: str
    stages: list[SavedStageDiff]


class SavedPlan(Artifact):
    """A plan saved by `plan -o FILE`, applied by `apply FILE`. `body_sha256` covers every other
    field, so a hand edit (a stage config, the diff, the format version) is refused: this guards
    against edits and damage, it is not a signature."""

    WHAT: ClassVar[str] = "saved plan"
    VERSION_KEY: ClassVar[str] = "format_version"
    VERSION: ClassVar[int] = 2      # 1: before the checksum; such files are refused (make the plan again)
    CORRUPT_CODE: ClassVar[str] = "plan-file"
    HINT: ClassVar[str] = "make the plan again: llmspec plan SPEC -o FILE"

    kind: Literal["llmspec-plan"] = PLAN_FILE_KIND
    spec_path: str
    plan: dict[str, Any]            # compiler.plan.Plan.to_dict(); checked by api.saved_plan_of
    state_fingerprints: dict[str, str] = Field(default_factory=dict)
    diff: SavedDiff
    body_sha256: str = ""

    def dump(self) -> dict[str, Any]:
        data = super().dump()
        data["body_sha256"] = plan_body_sha256(data)
        return data


def plan_body_sha256(data: dict) -> str:
    from llmspec.compiler.fingerprint import digest

    return digest({k: v for k, v in data.items() if k != "body_sha256"})


def load_saved_plan(path: Path, data: Any) -> SavedPlan:
    """`data` (the parsed JSON of `path`) as a saved plan: its kind, version, checksum and shape."""
    if not isinstance(data, dict) or data.get("kind") != PLAN_FILE_KIND:
        raise _error("plan-file", path, f"JSON, but not an llmspec plan file (no \"kind\": "
                     f"\"{PLAN_FILE_KIND}\")", "give apply a spec, or a plan saved by `llmspec plan SPEC -o FILE`")
    data = check_version(data, path, SavedPlan)
    if data.get("body_sha256") != plan_body_sha256(data):
        raise _error("plan-edited", path, "this saved plan was changed after it was saved (its checksum does not match)",
                     "a saved plan is applied exactly as reviewed; make it again: llmspec plan SPEC -o FILE")
    try:
        return SavedPlan.model_validate({k: v for k, v in data.items() if k != SavedPlan.VERSION_KEY})
    except ValidationError as exc:
        raise shape_error(exc, path, SavedPlan) from None
