"""Diff a Plan against what was built before: the reviewable part of `llmspec plan`.

The baseline is whatever is known: `.llmspec/state.json` (fingerprints and configs, so
field-level changes can be shown), `llmspec.lock` (fingerprints only: enough for CI), or
another compiled Plan (`--against REV`).

Each stage gets an action (a `PlanAction`) and the reasons for it: a stable code
(`ReasonCode`, for `--format json` consumers) with prose beside it (for people), like
Terraform's action reasons. Lists are diffed by identity (`changes.diff_items`): acceptance
tests by name, quality rules by name (by kind and position when unnamed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .changes import ChangeOp, FieldChange, Item, diff_items, walk
from .kinds import StageKind
from .plan import Plan, Stage

__all__ = ["ChangeOp", "FieldChange", "PlanAction", "PlanDiff", "Reason", "ReasonCode", "StageDiff",
           "StageKind", "diff_plan"]


class PlanAction(StrEnum):
    UNCHANGED = "unchanged"
    CHANGE = "change"
    NEW = "new"
    REMOVED = "removed"
    UNKNOWN = "unknown"      # depends on data read at apply (a database source)


class ReasonCode(StrEnum):
    NEW = "new"                                  # no build of it in the baseline
    REMOVED = "removed"                          # no longer in the spec
    CONFIG_CHANGED = "config-changed"            # its own settings changed (the changes list them)
    DATA_CHANGED = "data-changed"                # a source's file contents changed
    BASE_MODEL_CHANGED = "base-model-changed"    # base model id, revision or fingerprint changed
    INPUT_CHANGED = "input-changed"              # an upstream stage rebuilds (`stage` names it)
    TOOLS_CHANGED = "tools-changed"              # same settings and inputs: llmspec or a library moved
    FINGERPRINT_CHANGED = "fingerprint-changed"  # the baseline keeps fingerprints only (llmspec.lock)
    READ_AT_APPLY = "read-at-apply"              # a database source: known only once queried


# Reasons the stage line or its change lines already say; the text rendering leaves them out.
SHOWN_BY_CHANGES = {ReasonCode.CONFIG_CHANGED, ReasonCode.DATA_CHANGED, ReasonCode.BASE_MODEL_CHANGED}

VERBS = {StageKind.SOURCES: "rebuild", StageKind.MODEL: "rebuild", StageKind.REPLAY: "rebuild",
         StageKind.CLEAN: "rebuild", StageKind.DATASET: "rebuild",
         StageKind.TRAIN: "retrain", StageKind.ACCEPTANCE: "re-test", StageKind.PROMOTE: "promote"}
SYMBOLS = {PlanAction.UNCHANGED: "=", PlanAction.CHANGE: "~", PlanAction.NEW: "+", PlanAction.REMOVED: "-",
           PlanAction.UNKNOWN: "?"}

# Where each stage's config keys come from in the spec, for change paths. A key not listed is
# shown as `<kind>.<key>`, so a key added to a stage config is never silently left out.
_SPEC_PATHS = {
    StageKind.CLEAN: {"keep_rejects": "quality.keep_rejects"},
    StageKind.DATASET: {"format": "format", "split": "split", "quality_gates": "quality.gates",
                        "chat_template": "base_model.chat_template"},
    StageKind.TRAIN: {"training": "training", "base_model": "base_model"},
}
# Keys a stage repeats from upstream (shown there): they change no line here.
_SHOWN_UPSTREAM = {StageKind.ACCEPTANCE: {"base_model": "base_model", "system": "format.system",
                                          "style": "format.style"}}


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    stage: str | None = None          # INPUT_CHANGED: the upstream stage

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **({"stage": self.stage} if self.stage else {})}


@dataclass
class StageDiff:
    id: str
    kind: StageKind
    action: PlanAction
    changes: list[FieldChange] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    @property
    def verb(self) -> str:
        return VERBS.get(self.kind, "rebuild")

    @property
    def codes(self) -> list[ReasonCode]:
        return [r.code for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "action": self.action, "symbol": self.symbol, "verb": self.verb,
                "changes": [c.to_dict() for c in self.changes], "reasons": [r.to_dict() for r in self.reasons]}


@dataclass
class PlanDiff:
    baseline: str               # "state" | "lockfile" | "plan <ref>" | "none"
    stages: list[StageDiff]
    metadata: list[FieldChange] = field(default_factory=list)   # labels only: change no output

    @property
    def to_run(self) -> list[StageDiff]:
        return [s for s in self.stages if s.action in (PlanAction.CHANGE, PlanAction.NEW, PlanAction.UNKNOWN)]

    @property
    def has_changes(self) -> bool:
        return bool(self.to_run) or any(s.action == PlanAction.REMOVED for s in self.stages)

    def counts(self) -> dict[str, int]:
        out = {"rebuild": 0, "retrain": 0, "re-test": 0, "promote": 0, "unchanged": 0, "remove": 0}
        for s in self.stages:
            if s.action == PlanAction.UNCHANGED:
                out["unchanged"] += 1
            elif s.action == PlanAction.REMOVED:
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
                "stages": [s.to_dict() for s in self.stages],
                "metadata": [m.to_dict() for m in self.metadata]}


# ----------------------------------------------------------------------------- the diff


@dataclass
class _Labels:
    """What configs leave out but a diff needs: test names (labels, not in the fingerprint) and
    each rule's display name (`kind#N` is counted over the whole rule list, across sources)."""

    tests_old: list[str] | None
    tests_new: list[str] | None
    rules_old: dict[int, str]
    rules_new: dict[int, str]


def diff_plan(plan: Plan, previous: dict[str, dict[str, Any]] | None, *, baseline: str,
              metadata_old: dict | None = None, metadata_new: dict | None = None) -> PlanDiff:
    """`previous`: stage id -> {"fingerprint": ..., "config": ... or None}; None means nothing was
    built. `metadata_*`: `plan.metadata_of` of the baseline and of this spec (the test names)."""
    previous = previous or {}
    labels = _Labels(_names(metadata_old), _names(metadata_new),
                     _rule_labels(rec.get("config") for k, rec in previous.items() if k.startswith("clean.")),
                     _rule_labels(s.config for s in plan.stages if s.kind == StageKind.CLEAN))
    renames: list[FieldChange] = []
    diffs: dict[str, StageDiff] = {}
    for stage in plan.stages:
        diffs[stage.id] = _stage_diff(stage, previous.get(stage.id), diffs, labels, renames)
    result = [diffs[s.id] for s in plan.stages]
    for stage_id in previous:
        if stage_id not in diffs:
            result.append(StageDiff(stage_id, StageKind(stage_id.split(".")[0]), PlanAction.REMOVED,
                                    reasons=[Reason(ReasonCode.REMOVED, "no longer in the spec")]))
    meta: list[FieldChange] = []
    if metadata_old is not None and metadata_new is not None:
        walk("", {k: v for k, v in metadata_old.items() if k != "tests"},
             {k: v for k, v in metadata_new.items() if k != "tests"}, meta)
    return PlanDiff(baseline=baseline, stages=result, metadata=meta + renames)


def _names(metadata: dict | None) -> list[str] | None:
    tests = (metadata or {}).get("tests")
    return list(tests) if isinstance(tests, list) else None


def _rule_labels(configs) -> dict[int, str]:
    """Rule index -> the name cleaning records as the reject reason: its `name`, else its kind,
    else `kind#N` when unnamed rules of a kind repeat (as `compiler.cleaning.rule_reasons`; a
    config that carries the `reason` itself is taken at its word)."""
    rules: dict[int, dict] = {}
    for cfg in configs:
        for i, rule in enumerate((cfg or {}).get("rules", [])):
            rules.setdefault(rule.get("index", i), rule)
    unnamed = [rules[i]["kind"] for i in rules if not _rule_name(rules[i])]
    seen: dict[str, int] = {}
    out = {}
    for index in sorted(rules):
        rule = rules[index]
        kind = rule["kind"]
        if rule.get("reason") or _rule_name(rule):
            out[index] = rule.get("reason") or _rule_name(rule)
        elif unnamed.count(kind) > 1:
            seen[kind] = seen.get(kind, 0) + 1
            out[index] = f"{kind}#{seen[kind]}"
        else:
            out[index] = kind
    return out


def _rule_name(rule: dict) -> str | None:
    return (rule.get("args") or {}).get("name")


def _is_named(rule: dict) -> bool:
    """A rule the spec names (its reason is neither its kind nor `kind#N`): paired by that name."""
    if _rule_name(rule):
        return True
    reason, kind = rule.get("reason"), rule["kind"]
    return bool(reason) and reason != kind and not reason.startswith(kind + "#")


def _stage_diff(stage: Stage, prev: dict | None, done: dict[str, StageDiff], labels: _Labels,
                renames: list[FieldChange]) -> StageDiff:
    kind = StageKind(stage.kind)
    if prev is None:
        return StageDiff(stage.id, kind, PlanAction.NEW, reasons=[Reason(ReasonCode.NEW, "not built yet")])
    if stage.volatile:
        return StageDiff(stage.id, kind, PlanAction.UNKNOWN, reasons=[Reason(
            ReasonCode.READ_AT_APPLY,
            "a database source: read at apply; later stages rebuild only if its data changed")])
    old = prev.get("config")
    same = prev.get("fingerprint") == stage.fingerprint
    changes = _changes(stage, kind, old, labels, renames, same=same)
    if same:
        return StageDiff(stage.id, kind, PlanAction.UNCHANGED)
    upstream = [Reason(ReasonCode.INPUT_CHANGED, f"upstream {i} {_past(done[i])}", stage=i)
                for i in stage.inputs if done[i].action != PlanAction.UNCHANGED]
    if old is None:
        own = [] if upstream and not changes else [Reason(
            ReasonCode.FINGERPRINT_CHANGED,
            "its config, data or tool versions changed (the baseline keeps fingerprints only)")]
    else:
        own = _own_reasons(stage, kind, old, changes)
        if not own and not upstream:
            own = [Reason(ReasonCode.TOOLS_CHANGED, "llmspec or library versions changed")]
    return StageDiff(stage.id, kind, PlanAction.CHANGE, changes=changes, reasons=own + upstream)


def _own_reasons(stage: Stage, kind: StageKind, old: dict, changes: list[FieldChange]) -> list[Reason]:
    """Which of its own config keys changed, as codes; prose for keys no change line shows."""
    keys = [k for k in [*old, *(k for k in stage.config if k not in old)] if old.get(k) != stage.config.get(k)]
    out = []
    if kind == StageKind.SOURCES and "files" in keys:
        out.append(Reason(ReasonCode.DATA_CHANGED, "the source's data changed"))
    if "base_model" in keys and kind in (StageKind.DATASET, StageKind.TRAIN, StageKind.ACCEPTANCE):
        out.append(Reason(ReasonCode.BASE_MODEL_CHANGED, "the base model changed"))
    rest = [k for k in keys if not (k == "files" and kind == StageKind.SOURCES) and k != "base_model"]
    if not rest:
        return out
    if changes:
        message = "its config changed"
    elif rest == ["rules"]:   # only the rules' `index` moved: no rule of this source changed
        message = ("its rules' positions in quality.rules moved (a rule for other sources was added, "
                   "removed or moved)")
    else:
        message = "config changed: " + ", ".join(_SHOWN_UPSTREAM.get(kind, {}).get(k, k) for k in rest)
    return [*out, Reason(ReasonCode.CONFIG_CHANGED, message)]


def _changes(stage: Stage, kind: StageKind, old: dict | None, labels: _Labels, renames: list[FieldChange], *,
             same: bool) -> list[FieldChange]:
    """The field changes of one stage. Test renames go to `renames` (names are labels) and are
    looked for even when the stage is unchanged."""
    new = stage.config
    if kind == StageKind.ACCEPTANCE:
        tests = _test_changes(old, new, labels, renames, same=same)
        if old is None:
            return tests
    if old is None or same:
        return []
    out: list[FieldChange] = []
    paths = _SPEC_PATHS.get(kind, {})
    hidden = _SHOWN_UPSTREAM.get(kind, {})
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a == b or key in hidden:
            continue
        if kind == StageKind.SOURCES:
            walk(f"{stage.id}.{key}", a, b, out)
        elif kind == StageKind.CLEAN and key == "rules":
            out += diff_items("quality.rules", _rule_items(a, labels.rules_old), _rule_items(b, labels.rules_new),
                              labels_are_output=True)
        elif kind == StageKind.CLEAN and key == "gates":
            walk(f"quality.source_gates.{stage.id.split('.', 1)[1]}", a, b, out)
        elif kind == StageKind.ACCEPTANCE and key == "tests":
            out += tests
        else:
            walk(paths.get(key, f"{kind}.{key}"), a, b, out)
    return out


def _rule_items(rules: list[dict] | None, names: dict[int, str]) -> list[Item]:
    # Position (`index`) is left out of what is compared: a move shows as a move.
    return [Item(label=r.get("reason") or names.get(r.get("index", i), r["kind"]), named=_is_named(r), kind=r["kind"],
                 content={"kind": r["kind"], **{k: v for k, v in (r.get("args") or {}).items() if k != "name"}})
            for i, r in enumerate(rules or [])]


def _test_changes(old: dict | None, new: dict, labels: _Labels, renames: list[FieldChange], *,
                  same: bool) -> list[FieldChange]:
    """Acceptance tests by name. The stage config keeps no names (renaming a test changes no
    result), so names come from the metadata beside it, paired by position when the counts agree.
    Reordering tests re-tests (they run in left-padded batches, and the fingerprint hashes the
    list in order), so a reorder is shown as moves."""
    a_names, b_names = labels.tests_old, labels.tests_new
    b = new.get("tests") or []
    if old is None:
        # fingerprints only: names tell renames (same tests, same order) or added and removed tests
        if a_names is None or b_names is None:
            return []
        if same and len(a_names) == len(b_names):
            renames += [FieldChange(f"acceptance.tests[{x}]", x, y, ChangeOp.RENAMED)
                        for x, y in zip(a_names, b_names) if x != y]
            return []
        return diff_items("acceptance.tests", [Item(n, None) for n in a_names], [Item(n, None) for n in b_names],
                          know_content=False)
    a = old.get("tests") or []
    if a_names is None or b_names is None or len(a_names) != len(a) or len(b_names) != len(b):
        # a side without its names: identity by content, shown by position
        return diff_items("acceptance.tests", _unnamed_tests(a), _unnamed_tests(b))
    return diff_items("acceptance.tests", [Item(n, t) for n, t in zip(a_names, a)],
                      [Item(n, t) for n, t in zip(b_names, b)], renames=renames)


def _unnamed_tests(tests: list[dict]) -> list[Item]:
    return [Item(str(i), t, named=False, kind="test") for i, t in enumerate(tests)]


def _past(d: StageDiff) -> str:
    return {PlanAction.NEW: "is new", PlanAction.UNKNOWN: "may change",
            PlanAction.REMOVED: "was removed"}.get(d.action, "changed")
