"""Diff a Plan against what was built before: the reviewable part of `llmspec plan`.

The baseline is whatever is known: `.llmspec/state.json` (fingerprints and configs, so
field-level changes can be shown), `llmspec.lock` (fingerprints only: enough for CI), or
another compiled Plan (`--against REV`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .plan import Plan, Stage

VERBS = {"sources": "rebuild", "clean": "rebuild", "dataset": "rebuild", "train": "retrain",
         "acceptance": "re-test", "promote": "promote"}
SYMBOLS = {"unchanged": "=", "change": "~", "new": "+", "removed": "-", "unknown": "?"}


@dataclass
class FieldChange:
    path: str
    old: Any
    new: Any

    def render(self) -> str:
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}"


@dataclass
class StageDiff:
    id: str
    kind: str
    action: str                 # unchanged | change | new | removed | unknown
    changes: list[FieldChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    @property
    def verb(self) -> str:
        return VERBS.get(self.kind, "rebuild")


@dataclass
class PlanDiff:
    baseline: str               # "state" | "lockfile" | "plan <ref>" | "none"
    stages: list[StageDiff]
    metadata: list[FieldChange] = field(default_factory=list)

    @property
    def to_run(self) -> list[StageDiff]:
        return [s for s in self.stages if s.action in ("change", "new", "unknown")]

    @property
    def has_changes(self) -> bool:
        return bool(self.to_run) or any(s.action == "removed" for s in self.stages)

    def counts(self) -> dict[str, int]:
        out = {"rebuild": 0, "retrain": 0, "re-test": 0, "promote": 0, "unchanged": 0, "remove": 0}
        for s in self.stages:
            if s.action == "unchanged":
                out["unchanged"] += 1
            elif s.action == "removed":
                out["remove"] += 1
            else:
                out[s.verb] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c[k]} to {k}" for k in ("rebuild", "retrain", "re-test", "promote") if c[k]]
        if c["remove"]:
            parts.append(f"{c['remove']} to remove")
        parts.append(f"{c['unchanged']} unchanged")
        return "Plan: " + ", ".join(parts) + "."

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "summary": self.summary(), "counts": self.counts(),
                "stages": [asdict(s) | {"symbol": s.symbol, "verb": s.verb} for s in self.stages],
                "metadata": [asdict(m) for m in self.metadata]}


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = obj


def display_fields(stage_id: str, kind: str, config: dict) -> dict[str, Any]:
    """A stage config flattened to spec-like dotted paths, for field-level diffs."""
    out: dict[str, Any] = {}
    if kind == "sources":
        _flatten(config, stage_id, out)
    elif kind == "clean":
        for rule in config.get("rules", []):
            _flatten(rule["args"], f"quality.rules[{rule['index']}].{rule['kind']}", out)
        out["quality.keep_rejects"] = config.get("keep_rejects")
        _flatten(config.get("gates") or {}, f"quality.source_gates.{stage_id.split('.', 1)[1]}", out)
    elif kind == "dataset":
        _flatten(config.get("format", {}), "format", out)
        _flatten(config.get("split", {}), "split", out)
        _flatten(config.get("quality_gates", {}), "quality.gates", out)
        out["base_model.chat_template"] = config.get("chat_template")
    elif kind == "train":
        _flatten(config.get("training", {}), "training", out)
        _flatten(config.get("base_model", {}), "base_model", out)
    elif kind == "acceptance":
        _flatten({k: v for k, v in config.items() if k not in ("base_model", "system", "style")}, "acceptance", out)
    return out


def field_changes(stage_id: str, kind: str, old: dict | None, new: dict) -> list[FieldChange]:
    if old is None:
        return []
    a, b = display_fields(stage_id, kind, old), display_fields(stage_id, kind, new)
    changes = []
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key, _MISSING) != b.get(key, _MISSING):
            changes.append(FieldChange(key, a.get(key), b.get(key)))
    return changes


_MISSING = object()


def diff_plan(plan: Plan, previous: dict[str, dict[str, Any]] | None, *, baseline: str,
              metadata_old: dict | None = None, metadata_new: dict | None = None) -> PlanDiff:
    """`previous`: stage id -> {"fingerprint": ..., "config": ... or None}; None means nothing was built."""
    previous = previous or {}
    diffs: dict[str, StageDiff] = {}
    for stage in plan.stages:
        diffs[stage.id] = _stage_diff(stage, previous.get(stage.id), diffs)
    result = [diffs[s.id] for s in plan.stages]
    for stage_id, rec in previous.items():
        if stage_id not in diffs:
            result.append(StageDiff(stage_id, stage_id.split(".")[0], "removed",
                                    reasons=["no longer in the spec"]))
    meta = []
    if metadata_old is not None and metadata_new is not None:
        a, b = {}, {}
        _flatten(metadata_old, "", a)
        _flatten(metadata_new, "", b)
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                meta.append(FieldChange(key, a.get(key), b.get(key)))
        if isinstance(metadata_old.get("tests"), list) and metadata_old.get("tests") != metadata_new.get("tests"):
            meta = [m for m in meta if not m.path.startswith("tests")]
            for i, (x, y) in enumerate(zip(metadata_old["tests"], metadata_new["tests"])):
                if x != y:
                    meta.append(FieldChange(f"acceptance.tests[{i}].name", x, y))
    return PlanDiff(baseline=baseline, stages=result, metadata=meta)


def _stage_diff(stage: Stage, prev: dict | None, done: dict[str, StageDiff]) -> StageDiff:
    upstream = [i for i in stage.inputs if done[i].action != "unchanged"]
    if prev is None:
        return StageDiff(stage.id, stage.kind, "new")
    if stage.volatile:
        return StageDiff(stage.id, stage.kind, "unknown",
                         reasons=["a database source: read at apply; later stages rebuild only if its data changed"])
    if prev.get("fingerprint") == stage.fingerprint:
        return StageDiff(stage.id, stage.kind, "unchanged")
    changes = field_changes(stage.id, stage.kind, prev.get("config"), stage.config)
    reasons = [f"upstream {i} {_past(done[i])}" for i in upstream]
    if not changes and not upstream:
        reasons.append("config changed" if prev.get("config") is None else
                       "llmspec or library versions changed")
    return StageDiff(stage.id, stage.kind, "change", changes=changes, reasons=reasons)


def _past(d: StageDiff) -> str:
    return {"new": "is new", "unknown": "may change", "removed": "was removed"}.get(d.action, "changed")
