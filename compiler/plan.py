"""ProjectSpec -> Plan: every stage of the job with its fingerprint and its compiled config.

This is the one place each stage's config is compiled. ``build_plan`` runs once per command;
``plan`` prints the Plan, and ``apply``, ``compile`` and ``clean`` execute it through the same
runtime (``runtime/engine/executor.py``), which reads stage configs, never the spec.

Each ``Stage`` carries two views of its config:
- ``config``: the canonical form that is fingerprinted and diffed (values that change the
  stage's output, no labels or positions);
- ``compiled``: what the runtime executes (the resolved cleaning rules, the format mapping, the
  complete Axolotl config with ``${...}`` placeholders for the folders only the runtime knows,
  the acceptance suite with its tests files read in), plus labels (rule and test names).

A Plan is frozen. Planning reads files (sources are hashed, tests files read) and writes
nothing but caches that are safe to lose; a database read at run time yields a new Plan
(``with_source_result``) instead of changing this one.

Stages: [model] -> sources.<name> -> clean.<name> -> [replay] -> dataset -> train -> acceptance
-> promote. ``model`` exists when the base model is a GGUF file (converted once into a cached
folder); ``replay`` when ``training.replay`` takes the base model's own answers.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from llmspec.spec.errors import Pos
from llmspec.spec.models import ProjectSpec, rule_args

from .fingerprint import digest, stage_fingerprint
from .kinds import StageKind

PLAN_FORMAT_VERSION = 2
# Placeholders in compiled configs for folders the runtime chooses (stage folders are named by
# fingerprints, the model by where it is built): substituted by ``materialize``.
MODEL_DIR = "${model}"
DATASET_DIR = "${dataset}"
WORK_DIR = "${work}"


@dataclass(frozen=True)
class Stage:
    id: str                          # "clean.tickets"
    kind: StageKind
    config: dict[str, Any]           # canonical, fingerprinted: defaults resolved, secrets only as references
    inputs: tuple[str, ...]          # upstream stage ids
    compiled: dict[str, Any] = field(default_factory=dict)  # what the runtime executes
    fingerprint: str = ""
    spec_path: tuple = ()            # where in the spec this stage's config comes from (for diffs)
    volatile: bool = False           # its input can only be known by running it (a database query)

    @property
    def name(self) -> str:
        """The source name of a per-source stage (``clean.tickets`` -> ``tickets``)."""
        return self.id.split(".", 1)[1] if "." in self.id else self.id

    def executable(self) -> dict[str, Any]:
        """A private copy of the compiled config: the runtime may not change the Plan."""
        return copy.deepcopy(self.compiled)


@dataclass(frozen=True)
class Plan:
    project: str
    spec_path: str                   # as shown to the user
    base_dir: str                    # the spec's folder: sources and tests files are relative to it
    spec_hash: str                   # canonical hash of the validated spec (values, not text)
    stages: tuple[Stage, ...]
    source_files: dict[str, dict[str, str]] = field(default_factory=dict)  # source -> {file: sha256}
    base_model: dict[str, Any] = field(default_factory=dict)
    positions: dict[str, list] = field(default_factory=dict)  # "a.b.0" -> [file, line, col]
    notes: tuple[str, ...] = ()      # what the compiler chose that a reviewer should know (defaults)
    format_version: int = PLAN_FORMAT_VERSION

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {s.id: s.fingerprint for s in self.stages}

    def locate(self, path: tuple) -> Pos:
        """The spec position of ``path`` (or of its nearest located ancestor), for run-time errors."""
        path = tuple(path)
        while True:
            hit = self.positions.get(_path_key(path))
            if hit is not None:
                return Pos(hit[0], hit[1], hit[2])
            if not path:
                return Pos(self.spec_path, 1, 1)
            path = path[:-1]

    def upstream(self, stage_ids: list[str]) -> list[str]:
        """``stage_ids`` and every stage they depend on, in plan order."""
        needed: set[str] = set()
        todo = list(stage_ids)
        while todo:
            sid = todo.pop()
            if sid not in needed:
                needed.add(sid)
                todo.extend(self.stage(sid).inputs)
        return [s.id for s in self.stages if s.id in needed]

    def with_source_result(self, name: str, result_digest: str) -> "Plan":
        """The Plan once a database source has been read: its content hash in the source's
        config, every fingerprint recomputed. The compiled configs do not change."""
        files = {**self.source_files, name: {"query-result": result_digest}}
        stages = []
        for s in self.stages:
            if s.id == f"sources.{name}":
                s = replace(s, config={**s.config, "files": files[name]})
            stages.append(s)
        return replace(self, stages=_fingerprinted(stages), source_files=files)

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version, "project": self.project, "spec_path": self.spec_path,
            "base_dir": self.base_dir, "spec_hash": self.spec_hash, "source_files": self.source_files,
            "base_model": self.base_model, "positions": self.positions, "notes": list(self.notes),
            "stages": [{"id": s.id, "kind": s.kind.value, "config": s.config, "inputs": list(s.inputs),
                        "compiled": s.compiled, "fingerprint": s.fingerprint,
                        "spec_path": list(s.spec_path), "volatile": s.volatile} for s in self.stages],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        """Raises KeyError/TypeError/ValueError on a malformed dict (the caller says which file)."""
        stages = tuple(Stage(id=s["id"], kind=StageKind(s["kind"]), config=s["config"], inputs=tuple(s["inputs"]),
                             compiled=s.get("compiled", {}), fingerprint=s["fingerprint"],
                             spec_path=tuple(s.get("spec_path", ())), volatile=bool(s.get("volatile")))
                       for s in d["stages"])
        return cls(project=d["project"], spec_path=d["spec_path"], base_dir=d["base_dir"], spec_hash=d["spec_hash"],
                   stages=stages, source_files=d.get("source_files", {}), base_model=d.get("base_model", {}),
                   positions=d.get("positions", {}), notes=tuple(d.get("notes", ())),
                   format_version=d.get("format_version", PLAN_FORMAT_VERSION))


def _path_key(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _dump(model) -> Any:
    return model.model_dump(mode="json", exclude_none=False)


def spec_hash(spec: ProjectSpec) -> str:
    return digest(_dump(spec))


def _unlabelled(stage: Stage) -> dict[str, Any]:
    """The config without the labels it carries for reviewers (rule reasons): what is hashed."""
    if stage.kind != StageKind.CLEAN:
        return stage.config
    return {**stage.config, "rules": [{k: v for k, v in r.items() if k != "reason"} for r in stage.config["rules"]]}


def _fingerprinted(stages: list[Stage]) -> tuple[Stage, ...]:
    out: dict[str, Stage] = {}
    for s in stages:  # in dependency order: inputs are fingerprinted first
        fp = stage_fingerprint(s.kind.value, _unlabelled(s), {i: out[i].fingerprint for i in s.inputs})
        out[s.id] = replace(s, fingerprint=fp)
    return tuple(out.values())


def build_plan(spec: ProjectSpec, *, spec_path: str, source_files: dict[str, dict[str, str]],
               base_dir: str | None = None,
               base_model_fingerprint: str | None = None, positions: Any = None,
               builtin_hashes: dict[str, str] | None = None) -> Plan:
    """Compile every stage. ``source_files`` holds content hashes of each file source's files;
    ``positions`` (``spec.yamlload.Positions``) lets run-time errors point at the spec;
    ``builtin_hashes`` the content hashes of the ``builtin:`` suites and prompt sets the spec
    names (packaged with the runtime, so the caller reads them)."""
    from .acceptance import compile_acceptance
    from .retention import is_gguf, plan_notes, replay_config, replay_mix, retention_config
    from .axolotl_config import compile_axolotl_config, resolve_hardware
    from .cleaning import compile_rules
    from .formatting import compile_format

    from pathlib import Path

    base_dir = str(base_dir) if base_dir is not None else str(Path(spec_path).resolve().parent)
    locate = _locator(positions, spec_path)
    stages: list[Stage] = []
    data = _dump(spec)
    # `hardware: cpu` and `hardware: {type: cpu}` are one value: fingerprint the normal form.
    data["training"]["hardware"] = _dump(spec.training.hw)
    base = {"id": spec.base_model.id, "revision": spec.base_model.revision,
            "tokenizer": spec.base_model.tokenizer, "fingerprint": base_model_fingerprint}

    model_inputs: tuple[str, ...] = ()
    if is_gguf(spec.base_model.id):
        # Converting a GGUF file costs ~20-30 s and ~500 MB: a stage of its own, shown in the plan,
        # keyed by the file's content (the folder lives in the machine-wide model cache).
        stages.append(Stage("model", StageKind.MODEL, {"base_model": base}, (), spec_path=("base_model",),
                            compiled={"base_model": base}))
        model_inputs = ("model",)

    for name, src in spec.sources.items():
        cfg = {k: v for k, v in data["sources"][name].items() if k != "expect"}
        cfg["files"] = source_files.get(name, {})
        cfg["expect"] = data["sources"][name].get("expect")
        stages.append(Stage(f"sources.{name}", StageKind.SOURCES, cfg, (), spec_path=("sources", name),
                            volatile=src.format == "postgres",
                            compiled={"source": data["sources"][name],
                                      "batch_rows": spec.execution.batch_rows}))

    for name in spec.sources:
        rules = compile_rules(spec.quality, name, locate=locate)
        needs_tokens = any(r["kind"] == "length" and (r["args"].get("min_tokens") is not None
                                                      or r["args"].get("max_tokens") is not None) for r in rules)
        gates = _dump(spec.quality.source_gates[name]) if name in spec.quality.source_gates else None
        cfg = {
            # The rules as written (what a reviewer diffs), each with its label: the reason its
            # rejects carry. Labels are not fingerprinted (see _unlabelled), nor is the rule's index
            # among every source's rules: neither changes a kept row of this source.
            "rules": [{"kind": r["kind"], "reason": r["reason"],
                       "args": {k: v for k, v in _dump(rule_args(spec.quality.rules[r["index"]])).items()
                                if k != "name"}} for r in rules],
            "keep_rejects": spec.quality.keep_rejects,
            "gates": gates,
            # Token bounds count with the base model's tokenizer: a new tokenizer re-cleans.
            "tokenizer": base if needs_tokens else None,
        }
        # Where and in what batches cleaning runs changes no kept row: compiled, not fingerprinted.
        execution = spec.execution.model_dump(mode="json")
        compiled = {"rules": rules, "keep_rejects": spec.quality.keep_rejects, "gates": gates,
                    "tokenizer": base if needs_tokens else None, "execution": execution}
        stages.append(Stage(f"clean.{name}", StageKind.CLEAN, cfg, (f"sources.{name}",), spec_path=("quality",),
                            compiled=compiled))

    replay_inputs: tuple[str, ...] = ()
    replay_cfg = replay_config(spec)
    if replay_cfg is not None:
        # The prompts as read now (a user file by content; a built-in set is versioned by its
        # name and llmspec's version): editing them regenerates.
        prompts = _prompts_digest(replay_cfg["prompts"], base_dir, builtin_hashes)
        stages.append(Stage("replay", StageKind.REPLAY, {**replay_cfg, "base_model": base, "prompts_sha256": prompts},
                            model_inputs, spec_path=("training", "replay"),
                            compiled={**replay_cfg, "base_model": base}))
        replay_inputs = ("replay",)

    fmt_plan = compile_format(spec.format, None, locate=locate, method=spec.training.method)
    dataset_cfg = {
        # Examples are measured (format.too_long) with the base model's tokenizer.
        "base_model": base,
        "format": data["format"],
        "split": data["split"],
        "chat_template": spec.base_model.chat_template,
        "quality_gates": data["quality"]["gates"],
        # examples are measured (and too_long ones rejected or cut) with the model's tokenizer
        "sequence_len": spec.training.sequence_len,
        "tokenizer": {"id": spec.base_model.id, "revision": spec.base_model.revision,
                      "tokenizer": spec.base_model.tokenizer},
        "replay": replay_mix(spec),
    }
    if fmt_plan.preference:
        # dpo/orpo/kto write preference records: the same rows make other files.
        dataset_cfg["preference"] = fmt_plan.preference
    uses_special = any(f.kind == "template" and ("bos_token" in f.text or "eos_token" in f.text)
                       for sp in fmt_plan.sources.values() for f in sp.fields)
    stages.append(Stage("dataset", StageKind.DATASET, dataset_cfg,
                        tuple(f"clean.{n}" for n in spec.sources) + replay_inputs, spec_path=("format",),
                        compiled={"format": fmt_plan.to_dict(), "format_spec": data["format"], "split": data["split"],
                                  "quality_gates": data["quality"]["gates"], "sources": list(spec.sources),
                                  "special_tokens_from": base, "uses_special_tokens": uses_special,
                                  "sequence_len": spec.training.sequence_len,
                                  "chat_template": spec.base_model.chat_template,
                                  "replay": replay_mix(spec)}))

    hardware = resolve_hardware(spec.training.hw)
    dataset_paths = {"train": f"{DATASET_DIR}/train.jsonl"}
    if spec.split.eval_fraction > 0:
        dataset_paths["eval"] = f"{DATASET_DIR}/eval.jsonl"
    training = compile_axolotl_config(spec, model_path=MODEL_DIR, dataset=dataset_paths, run_dir=WORK_DIR,
                                      format_plan=fmt_plan, hardware=hardware)
    train_cfg = {"base_model": base, "training": data["training"]}
    stages.append(Stage("train", StageKind.TRAIN, train_cfg, ("dataset",) + model_inputs, spec_path=("training",),
                        compiled={"axolotl": training.to_dict(), "base_model": base, "method": spec.training.method,
                                  "batch": data["training"]["batch"], "epochs": spec.training.epochs,
                                  "max_steps": spec.training.max_steps,
                                  "gpus": training.gpus, "style": spec.format.style}))

    acceptance = data["acceptance"]
    suite = compile_acceptance(spec, base_dir, locate=locate)
    # Test names are labels: renaming a test changes no result, so the fingerprint ignores them.
    tests = [{k: v for k, v in t.items() if k != "name"} for t in acceptance["tests"]]
    acc_cfg = {**{k: v for k, v in acceptance.items() if k not in ("tests", "gates")},
               "tests": tests, "gates": suite["gates"], "base_model": base,
               "system": spec.format.system, "style": spec.format.style,
               "retention": retention_config(spec)}
    if acc_cfg["retention"]["enabled"]:
        # A user suite by content, so editing it re-tests.
        acc_cfg["retention"] = {**acc_cfg["retention"],
                                "suite_sha256": _prompts_digest(acc_cfg["retention"]["suite"], base_dir,
                                                                builtin_hashes)}
    if spec.acceptance.tests_from:
        # The file's tests as read now: editing the file re-tests (its path alone would not).
        from_file = [{k: v for k, v in t.items() if k not in ("name", "source")}
                     for t in suite["tests"][len(spec.acceptance.tests):]]
        acc_cfg["tests_from"] = {"path": spec.acceptance.tests_from, "sha256": digest(from_file)}
    stages.append(Stage("acceptance", StageKind.ACCEPTANCE, acc_cfg, ("train",), spec_path=("acceptance",),
                        compiled={**suite, "base_model": base, "project": spec.project,
                                  "retention": acc_cfg["retention"]}))
    stages.append(Stage("promote", StageKind.PROMOTE, {}, ("acceptance",), spec_path=()))
    notes = [n[0].lower() + n[1:] for n in plan_notes(spec)]
    if suite["default_gates"]:
        notes.append("acceptance: no gates set, so every test must pass to promote (pass_rate >= 1.0); "
                     "set acceptance.gates to choose")

    return Plan(project=spec.project, spec_path=spec_path, base_dir=str(base_dir), spec_hash=spec_hash(spec),
                stages=_fingerprinted(stages), source_files=source_files, base_model=base,
                positions=_positions(positions), notes=tuple(notes))


def _prompts_digest(name: str, base_dir: str, builtin_hashes: dict[str, str] | None) -> str | None:
    """The content hash of a prompts or suite file, built-in or the user's, so that editing it
    (or a new llmspec shipping a changed built-in set) regenerates what it feeds. None for a
    file that is not there: the stage that reads it says so, located."""
    from pathlib import Path

    if name.startswith("builtin:"):
        return (builtin_hashes or {}).get(name)
    try:
        return content_digest((Path(base_dir) / name).read_bytes())
    except OSError:
        return None


def _positions(positions: Any) -> dict[str, list]:
    if positions is None:
        return {}
    out: dict[str, list] = {}
    for table in (positions.key, positions.value):  # value positions win: `at` prefers them
        for path, pos in table.items():
            out[_path_key(path)] = [pos.path, pos.line, pos.col]
    return out


def _locator(positions: Any, spec_path: str) -> Callable[[tuple], Pos]:
    def locate(path: tuple) -> Pos:
        hit = positions.at(path) if positions is not None else None
        return hit or Pos(spec_path, 1, 1)
    return locate


def metadata_of(spec: ProjectSpec) -> dict[str, Any]:
    """The values that label things without changing any output."""
    from .cleaning import rule_reasons

    return {"description": spec.description, "tests": [t.name for t in spec.acceptance.tests],
            "rules": rule_reasons(spec.quality.rules)}


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
