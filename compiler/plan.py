"""ProjectSpec -> Plan: the stages of the job, each with its canonical config and fingerprint.

The Plan is plain data. `plan` prints it and `apply` executes it; both build it with
`build_plan`, so what is applied is exactly what was reviewed.

Stages: sources.<name> -> clean.<name> -> dataset -> train -> acceptance -> promote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmspec.spec.models import ProjectSpec, rule_args, rule_kind

from .fingerprint import digest, stage_fingerprint
from .retention import is_gguf, replay_config, replay_mix, retention_config

PLAN_FORMAT_VERSION = 1

# Keys whose values never change a stage's output. Edits to them are "metadata only".
METADATA_PATHS = (("description",), ("acceptance", "tests", "*", "name"))


@dataclass
class Stage:
    id: str                          # "clean.tickets"
    kind: str                        # sources | clean | dataset | train | acceptance | promote
    config: dict[str, Any]           # canonical, defaults resolved, secrets only as references
    inputs: list[str]                # upstream stage ids
    fingerprint: str = ""
    spec_path: tuple = ()            # where in the spec this stage's config comes from (for diffs)
    volatile: bool = False           # its input can only be known by running it (a database query)


@dataclass
class Plan:
    project: str
    spec_path: str
    spec_hash: str                   # canonical hash of the validated spec (values, not text)
    stages: list[Stage]
    source_files: dict[str, dict[str, str]] = field(default_factory=dict)  # source -> {file: sha256}
    base_model: dict[str, Any] = field(default_factory=dict)
    input_hashes: dict[str, str] = field(default_factory=dict)  # replay prompts / retention suite files
    format_version: int = PLAN_FORMAT_VERSION

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {s.id: s.fingerprint for s in self.stages}

    def to_dict(self) -> dict:
        d = asdict(self)
        for s in d["stages"]:
            s["spec_path"] = list(s["spec_path"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        stages = [Stage(**{**s, "spec_path": tuple(s.get("spec_path", ()))}) for s in d["stages"]]
        return cls(**{**d, "stages": stages})


def _dump(model) -> Any:
    return model.model_dump(mode="json", exclude_none=False)


def spec_hash(spec: ProjectSpec) -> str:
    return digest(_dump(spec))


def build_plan(spec: ProjectSpec, *, spec_path: str, source_files: dict[str, dict[str, str]],
               base_model_fingerprint: str | None = None, input_hashes: dict[str, str] | None = None) -> Plan:
    """Compile the stages. `source_files` holds content hashes of each file source's files;
    `input_hashes` those of the replay prompts (`replay_prompts`) and the retention suite
    (`retention_suite`) files."""
    input_hashes = dict(input_hashes or {})
    stages: list[Stage] = []
    data = _dump(spec)
    # `hardware: cpu` and `hardware: {type: cpu}` are one value: fingerprint the normal form.
    data["training"]["hardware"] = _dump(spec.training.hw)

    for name, src in spec.sources.items():
        cfg = {k: v for k, v in data["sources"][name].items() if k != "expect"}
        cfg["files"] = source_files.get(name, {})
        cfg["expect"] = data["sources"][name].get("expect")
        stages.append(Stage(f"sources.{name}", "sources", cfg, [], spec_path=("sources", name),
                            volatile=src.format == "postgres"))

    for name in spec.sources:
        rules = []
        for i, rule in enumerate(spec.quality.rules):
            args = rule_args(rule)
            if args.sources is not None and name not in args.sources:
                continue
            rules.append({"kind": rule_kind(rule), "index": i, "args": _dump(args)})
        cfg = {
            "rules": rules,
            "keep_rejects": spec.quality.keep_rejects,
            "gates": _dump(spec.quality.source_gates[name]) if name in spec.quality.source_gates else None,
        }
        stages.append(Stage(f"clean.{name}", "clean", cfg, [f"sources.{name}"], spec_path=("quality",)))

    base = {"id": spec.base_model.id, "revision": spec.base_model.revision,
            "tokenizer": spec.base_model.tokenizer, "fingerprint": base_model_fingerprint}
    model_inputs: list[str] = []
    if is_gguf(spec.base_model.id):
        # Converting a GGUF file costs ~30 s and 540 MB: a stage of its own, shown in the plan,
        # keyed by the file's content (the folder lives in the machine-wide model cache).
        stages.append(Stage("model", "model", {"base_model": base}, [], spec_path=("base_model",)))
        model_inputs = ["model"]
    replay_inputs: list[str] = []
    replay_cfg = replay_config(spec)
    if replay_cfg is not None:
        replay_cfg = {**replay_cfg, "base_model": base, "prompts_sha256": input_hashes.get("replay_prompts")}
        stages.append(Stage("replay", "replay", replay_cfg, list(model_inputs), spec_path=("training", "replay")))
        replay_inputs = ["replay"]

    dataset_cfg = {
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
    stages.append(Stage("dataset", "dataset", dataset_cfg, [f"clean.{n}" for n in spec.sources] + replay_inputs,
                        spec_path=("format",)))

    train_cfg = {"base_model": base, "training": data["training"]}
    stages.append(Stage("train", "train", train_cfg, ["dataset"] + model_inputs, spec_path=("training",)))

    acceptance = data["acceptance"]
    # Test names are labels: renaming a test changes no result, so the fingerprint ignores them.
    tests = [{k: v for k, v in t.items() if k != "name"} for t in acceptance["tests"]]
    acc_cfg = {**{k: v for k, v in acceptance.items() if k not in ("tests", "gates")},
               "tests": tests, "gates": acceptance["gates"], "base_model": base,
               "system": spec.format.system, "style": spec.format.style,
               "retention": {**retention_config(spec), "suite_sha256": input_hashes.get("retention_suite")}}
    stages.append(Stage("acceptance", "acceptance", acc_cfg, ["train"], spec_path=("acceptance",)))
    stages.append(Stage("promote", "promote", {}, ["acceptance"], spec_path=()))

    by_id = {s.id: s for s in stages}
    for s in stages:  # stages are in dependency order, so inputs are fingerprinted first
        s.fingerprint = stage_fingerprint(s.kind, s.config, {i: by_id[i].fingerprint for i in s.inputs})

    return Plan(project=spec.project, spec_path=spec_path, spec_hash=spec_hash(spec), stages=stages,
                source_files=source_files, base_model=base, input_hashes=input_hashes)


def metadata_of(spec: ProjectSpec) -> dict[str, Any]:
    """The values that label things without changing any output."""
    return {"description": spec.description, "tests": [t.name for t in spec.acceptance.tests]}
