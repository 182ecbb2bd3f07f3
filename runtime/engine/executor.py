"""Plan -> effects. Runs the stale stages of a Plan and records what it built.

Layout under `.llmspec/` (beside the spec):
- `stages/<stage-id>-<fp12>/`: the complete output of one stage build, immutable, named by
  its fingerprint. A stage is built in `work/<stage-id>-<fp12>/` and renamed here only once
  complete, so a crash never leaves a half-built stage that looks finished.
- `work/train-<fp12>/`: kept across crashes, so an interrupted training resumes from its
  last checkpoint on the next apply (same fingerprint, same folder).
- `runs/<run-id>/`: one apply: `manifest.json`, reports, and links to the stage folders it
  used. Built as `runs/<run-id>.partial/` and renamed when the run is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmspec.compiler.diff import PlanDiff
from llmspec.compiler.plan import Plan, Stage
from llmspec.spec.errors import AcceptanceFailed, DataError, Diagnostic, LlmspecError
from llmspec.spec.load import LoadedSpec

from llmspec.runtime.engine.atomic import write_json_atomic
from llmspec.runtime.engine.state import State, StageRecord, now_iso

Progress = Callable[[str, dict], None]


@dataclass
class RunResult:
    run: str
    run_dir: Path
    outcome: str                            # promoted | gates_failed | built | failed | noop
    report: dict[str, Any] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed_gates: list[dict] = field(default_factory=list)


def new_run_id(plan: Plan) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{plan.fingerprints['promote'][:6]}"


class Executor:
    def __init__(self, loaded: LoadedSpec, plan: Plan, diff: PlanDiff, state: State, *,
                 progress: Progress | None = None, env: dict[str, str] | None = None):
        self.loaded = loaded
        self.spec = loaded.spec
        self.plan = plan
        self.diff = {d.id: d for d in diff.stages}
        self.state = state
        self.root = state.root
        self.progress = progress or (lambda event, data: None)
        self.env = dict(os.environ if env is None else env)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] = {}

    # ------------------------------------------------------------------ driver

    def run(self, run_id: str) -> RunResult:
        partial = self.root / "runs" / f"{run_id}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        result = RunResult(run=run_id, run_dir=self.root / "runs" / run_id, outcome="built")
        self.report = {"project": self.spec.project, "run": run_id, "created_at": now_iso(),
                       "spec_path": self.loaded.display_path, "sources": {}}
        self.state.record_run({"run": run_id, "started_at": now_iso(), "outcome": "running"})
        self.state.save()
        try:
            for stage_id in [s.id for s in self.plan.stages]:
                stage = self.plan.stage(stage_id)  # a database read may have re-planned later stages
                if self._reusable(stage):
                    self.outputs[stage.id] = self.state.stages[stage.id].outputs
                    result.reused.append(stage.id)
                    self.progress("stage-skip", {"stage": stage.id})
                    self._collect_report(stage, self.outputs[stage.id])
                    continue
                self.progress("stage-start", {"stage": stage.id})
                started = time.monotonic()
                outputs = self._build(stage, run_id)
                stage = self.plan.stage(stage_id)
                self.outputs[stage.id] = outputs
                self.state.stages[stage.id] = StageRecord(
                    fingerprint=stage.fingerprint, config=stage.config, run=run_id, outputs=outputs,
                    built_at=now_iso())
                self.state.save()
                result.built.append(stage.id)
                self.progress("stage-done", {"stage": stage.id, "seconds": time.monotonic() - started})
                self._collect_report(stage, outputs)
        except AcceptanceFailed as exc:
            result.outcome = "gates_failed"
            result.failed_gates = [g for g in self.outputs.get("acceptance", {}).get("gates", [])
                                   if not g["passed"] and g["severity"] == "error"]
            self._finish_run(run_id, partial, result, "gates_failed")
            result.report = self.report
            exc.result = result
            raise
        except LlmspecError:
            self._finish_run(run_id, partial, result, "failed")
            raise
        acc = self.outputs.get("acceptance", {})
        result.failed_gates = [g for g in acc.get("gates", []) if not g["passed"] and g["severity"] == "error"]
        result.outcome = "gates_failed" if result.failed_gates else (
            "promoted" if self.state.promoted and self.state.promoted.get("run") == run_id else "built")
        if result.outcome != "gates_failed" and not result.built:
            result.outcome = "noop"
        self._finish_run(run_id, partial, result, result.outcome)
        result.report = self.report
        return result

    def _reusable(self, stage: Stage) -> bool:
        rec = self.state.stages.get(stage.id)
        d = self.diff.get(stage.id)
        if rec is None or d is None or d.action != "unchanged" or rec.fingerprint != stage.fingerprint:
            return False
        out_dir = rec.outputs.get("dir")
        return out_dir is None or (self.root / out_dir).exists()

    def _finish_run(self, run_id: str, partial: Path, result: RunResult, outcome: str) -> None:
        self.report["outcome"] = outcome
        links = {sid: out.get("dir") for sid, out in self.outputs.items() if out.get("dir")}
        manifest = {"run": run_id, "outcome": outcome, "finished_at": now_iso(),
                    "spec_path": self.loaded.display_path, "fingerprints": self.plan.fingerprints,
                    "stages": links, "built": result.built, "reused": result.reused}
        for sid, rel in links.items():
            link = partial / sid
            if not link.exists():
                os.symlink(os.path.relpath(self.root / rel, partial), link)
        try:
            from llmspec.runtime.reports.writer import write_reports

            self.report["artifacts"] = write_reports(self.report, partial, final_dir=result.run_dir)
        except LlmspecError:
            raise
        except Exception as exc:  # a report problem must not lose a trained model: say it, keep going
            self.report.setdefault("warnings", []).append(f"report not written: {type(exc).__name__}: {exc}")
        write_json_atomic(partial / "manifest.json", manifest)
        write_json_atomic(partial / "report.json", self.report)
        if result.run_dir.exists():
            shutil.rmtree(result.run_dir)
        os.replace(partial, result.run_dir)
        self.state.record_run({"run": run_id, "started_at": self.state.last_run.get("started_at"),
                               "finished_at": now_iso(), "outcome": outcome,
                               "built": result.built, "reused": result.reused})
        self.state.save()

    # ------------------------------------------------------------------ stages

    def _stage_dirs(self, stage: Stage) -> tuple[Path, Path, str]:
        name = f"{stage.id}-{stage.fingerprint[:12]}"
        return self.root / "work" / name, self.root / "stages" / name, f"stages/{name}"

    def _build(self, stage: Stage, run_id: str) -> dict[str, Any]:
        work, final, rel = self._stage_dirs(stage)
        if stage.kind != "train" and work.exists():
            shutil.rmtree(work)  # leftovers of a crashed build: never trusted
        work.mkdir(parents=True, exist_ok=True)
        builder = getattr(self, f"_build_{stage.kind}")
        outputs = builder(stage, work) or {}
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, final)
        outputs["dir"] = rel
        return outputs

    def _dir(self, stage_id: str) -> Path:
        return self.root / self.outputs[stage_id]["dir"]

    def _build_sources(self, stage: Stage, work: Path) -> dict[str, Any]:
        from llmspec.runtime.sources.profile import profile_frame
        from llmspec.runtime.sources import read_source
        from llmspec.runtime.sources.expect import check_expectations

        name = stage.id.split(".", 1)[1]
        src = self.spec.sources[name]
        batch = read_source(name, src, self.loaded.base_dir, env=self.env)
        problems = check_expectations(batch, src)
        errors = [d for d in problems if d.severity == "error"]
        if errors:
            for d in errors:
                d.pos = d.pos or self.loaded.locate(("sources", name, "expect"))
            raise DataError(errors)
        batch.rows.write_parquet(work / "rows.parquet")
        batch.rejected.write_parquet(work / "rejected.parquet")
        if stage.volatile:
            self._replan_after_read(name, batch)
        meta = {"rows_in": batch.rows_in, "files": batch.files, "format": src.format,
                "extra_columns": batch.extra_columns,
                "profile": profile_frame(batch.rows.drop("_origin", strict=False))}
        write_json_atomic(work / "source.json", meta)
        self.progress("rows", {"stage": stage.id, "rows": batch.rows_in})
        return {"rows_in": batch.rows_in, "rows": batch.rows.height, "unreadable": batch.rejected.height}

    def _replan_after_read(self, name: str, batch) -> None:
        """A database source is known only once read: fingerprint what it returned, then
        re-fingerprint the later stages so they rebuild only if the data really changed."""
        import hashlib

        from llmspec.compiler.plan import build_plan

        digest = hashlib.sha256(batch.rows.drop("_origin", strict=False).write_ndjson().encode()).hexdigest()
        files = {**self.plan.source_files, name: {"query-result": digest}}
        self.plan = build_plan(self.spec, spec_path=self.plan.spec_path, source_files=files,
                               base_model_fingerprint=self.plan.base_model.get("fingerprint"),
                               input_hashes=self.plan.input_hashes)
        for stage in self.plan.stages:
            rec = self.state.stages.get(stage.id)
            if rec is not None and rec.fingerprint == stage.fingerprint and stage.id in self.diff:
                self.diff[stage.id].action = "unchanged"
            elif stage.id in self.diff and self.diff[stage.id].action == "unchanged":
                self.diff[stage.id].action = "change"

    def _build_clean(self, stage: Stage, work: Path) -> dict[str, Any]:
        import polars as pl

        from llmspec.compiler.cleaning import compile_cleaning
        from llmspec.runtime.clean.explain import explain_plan
        from llmspec.runtime.clean.run import check_gates, run_cleaning
        from llmspec.runtime.sources import SourceBatch

        name = stage.id.split(".", 1)[1]
        src_dir = self._dir(f"sources.{name}")
        meta = json.loads((src_dir / "source.json").read_text())
        rows = pl.read_parquet(src_dir / "rows.parquet")
        batch = SourceBatch(name=name, rows=rows, rejected=pl.read_parquet(src_dir / "rejected.parquet"),
                            rows_in=meta["rows_in"], files=meta["files"])
        plan = compile_cleaning(self.spec.quality, name, [c for c in rows.columns if c != "_origin"])
        (work / "plan.txt").write_text(explain_plan(plan), encoding="utf-8")
        result = run_cleaning(batch, plan, progress=lambda n: self.progress("rows", {"stage": stage.id, "rows": n}))
        gate_diags = [d for d in check_gates({name: result}, _only_source_gates(self.spec.quality, name))
                      if d.severity == "error"]
        if gate_diags:
            raise DataError(gate_diags)
        result.kept.write_parquet(work / "kept.parquet")
        if self.spec.quality.keep_rejects:
            result.rejects.write_parquet(work / "rejects.parquet")
        summary = result.to_dict()
        from llmspec.runtime.reports.samples import reject_samples

        summary["samples"] = reject_samples(result.rejects, plan.steps)
        summary["profile"] = meta.get("profile")
        summary["extra_columns"] = meta.get("extra_columns") or {}
        summary["format"] = meta.get("format")
        write_json_atomic(work / "clean.json", summary)
        return {"rows_in": result.rows_in, "rows_kept": result.rows_kept,
                "rejected": dict(result.rejected), "modified": dict(result.modified)}

    def _build_dataset(self, stage: Stage, work: Path) -> dict[str, Any]:
        import polars as pl

        from llmspec.compiler.formatting import compile_format
        from llmspec.runtime.clean.run import check_gates

        names = [s.split(".", 1)[1] for s in stage.inputs if s.startswith("clean.")]
        frames = {n: pl.read_parquet(self._dir(f"clean.{n}") / "kept.parquet") for n in names}
        mix = stage.config.get("replay")
        # A replay source is sampled into the train split only: it never reaches the split below.
        replay_frame = frames.pop(mix["from"]) if mix and mix["from"] in frames else None
        overall = check_gates({n: _ResultView(json.loads((self._dir(f"clean.{n}") / "clean.json").read_text()))
                               for n in names}, _overall_gates(self.spec.quality))
        errors = [d for d in overall if d.severity == "error"]
        if errors:
            raise DataError(errors)
        columns = {n: [c for c in f.columns if c != "_origin"] for n, f in frames.items()}
        fmt_plan = compile_format(self.spec.format, columns, locate=self.loaded.locate)
        from llmspec.runtime.dataset.build import build_dataset

        from llmspec.runtime.dataset.lengths import check_for

        result = build_dataset(frames, fmt_plan, self.spec.split, work, special_tokens=self._special_tokens(fmt_plan),
                               lengths=check_for(self.loaded, fmt_plan))
        summary = result.to_dict()
        # Paths inside the work folder move with it: store them relative to the stage folder.
        for key in ("train_path", "eval_path", "origins_path"):
            if summary.get(key):
                summary[key] = Path(summary[key]).name
        write_json_atomic(work / "dataset.json", summary)
        if not result.rejects.is_empty():
            result.rejects.write_parquet(work / "rejects.parquet")
        train_size = result.train_size
        if mix:
            from llmspec.runtime.replay.build import mix_into_dataset, read_replay, source_examples

            if mix["from"] == "base_model":
                examples, label = read_replay(self._dir("replay")), "replay"
            else:
                examples, label = source_examples(mix["from"], replay_frame, fmt_plan, work), mix["from"]
            mixed = mix_into_dataset(work, examples, fraction=mix["fraction"], seed=mix["seed"], source=label)
            train_size += mixed["examples"]
            self.progress("replay-mixed", mixed)
        tokens = result.token_summary() or {}
        return {"train": train_size, "eval": result.eval_size, "leakage_removed": result.leakage_removed,
                "train_tokens": tokens.get("train"), "tokens_exact": bool(tokens),
                "rejected": result.rejected_by_rule(), "style": self.spec.format.style}

    def _build_model(self, stage: Stage, work: Path) -> dict[str, Any]:
        from llmspec.runtime.train.run import resolve_model

        path, fingerprint = resolve_model(self.loaded, progress=self.progress)
        write_json_atomic(work / "model.json", {"path": path, "fingerprint": fingerprint})
        return {"path": path, "fingerprint": fingerprint}

    def _build_replay(self, stage: Stage, work: Path) -> dict[str, Any]:
        from llmspec.runtime.replay.build import generate_replay, load_prompts
        from llmspec.runtime.train.run import resolve_model

        cfg = stage.config
        prompts = load_prompts(cfg["prompts"], self.loaded.base_dir)
        path, _ = resolve_model(self.loaded, progress=self.progress)
        return generate_replay(prompts, model_path=path, system=cfg["system"], work=work,
                               max_new_tokens=cfg["max_new_tokens"],
                               progress=lambda done, total: self.progress("replay-answer",
                                                                          {"done": done, "total": total}))

    def _special_tokens(self, fmt_plan) -> dict[str, str] | None:
        # Loading a tokenizer costs seconds: only when a template really uses bos/eos.
        texts = [f.text for sp in fmt_plan.sources.values() for f in sp.fields if f.kind == "template"]
        if not any("bos_token" in t or "eos_token" in t for t in texts):
            return None
        from transformers import AutoTokenizer

        from llmspec.runtime.train.run import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(self.loaded)[0])
        return {"bos_token": tok.bos_token or "", "eos_token": tok.eos_token or ""}

    def _build_train(self, stage: Stage, work: Path) -> dict[str, Any]:
        from llmspec.runtime.train.run import train

        ds_dir = self._dir("dataset")
        return train(self.loaded, dataset_dir=ds_dir, work=work, fingerprint=stage.fingerprint,
                     progress=self.progress, env=self.env)

    def _build_acceptance(self, stage: Stage, work: Path) -> dict[str, Any]:
        from llmspec.runtime.acceptance.stage import run_acceptance_stage

        return run_acceptance_stage(self.loaded, train_dir=self._dir("train"), dataset_dir=self._dir("dataset"),
                                    train_outputs=self.outputs["train"], work=work, progress=self.progress)

    def _build_promote(self, stage: Stage, work: Path) -> dict[str, Any]:
        acc = self.outputs.get("acceptance", {})
        failed = [g for g in acc.get("gates", []) if not g["passed"] and g["severity"] == "error"]
        if failed:
            # Not promoted: the earlier promoted run stays promoted. Nothing is recorded as built,
            # so the next apply tries again after the spec or data change.
            raise AcceptanceFailed([Diagnostic("gate-failed", g["message"], None) for g in failed])
        train = self.outputs["train"]
        model_dir = self.root / train["dir"] / train["model"] if train.get("model") else None
        self.state.promoted = {"run": self.report["run"], "model_path": str(model_dir) if model_dir else None,
                               "adapter": bool(train.get("adapter")),
                               "base_model_path": train.get("base_model_path"), "promoted_at": now_iso(),
                               "fingerprint": stage.fingerprint}
        return {"promoted_run": self.report["run"]}

    # ------------------------------------------------------------------ report

    def _collect_report(self, stage: Stage, outputs: dict[str, Any]) -> None:
        try:
            d = self.root / outputs["dir"] if outputs.get("dir") else None
            if stage.kind == "clean" and d is not None:
                summary = json.loads((d / "clean.json").read_text())
                name = stage.id.split(".", 1)[1]
                self.report["sources"][name] = {k: summary.get(k) for k in (
                    "rows_in", "rows_kept", "rejected", "modified", "samples", "format", "extra_columns")}
                self.report["sources"][name]["profile"] = _report_profile(summary.get("profile") or {})
            elif stage.kind == "dataset" and d is not None:
                from llmspec.runtime.reports.writer import dataset_report

                self.report["dataset"] = dataset_report(d, self.loaded)
            elif stage.kind == "replay" and d is not None:
                self.report["replay"] = json.loads((d / "replay.json").read_text())
            elif stage.kind == "train" and d is not None:
                self.report["training"] = json.loads((d / "training.json").read_text())
            elif stage.kind == "acceptance" and d is not None:
                self.report["acceptance"] = json.loads((d / "acceptance.json").read_text())
        except (OSError, ValueError, KeyError):
            pass  # an old stage folder without a summary only shortens the report


class _ResultView:
    """What check_gates reads from a CleanResult, rebuilt from a stored clean.json."""

    def __init__(self, d: dict):
        self.rows_in = d["rows_in"]
        self.rows_kept = d["rows_kept"]
        self.rejected = d.get("rejected", {})
        self.modified = d.get("modified", {})


def _only_source_gates(quality, name):
    from llmspec.spec.models import QualityGates

    return quality.model_copy(update={"gates": QualityGates(),
                                      "source_gates": {k: v for k, v in quality.source_gates.items() if k == name}})


def _overall_gates(quality):
    return quality.model_copy(update={"source_gates": {}})


def _report_profile(profile: dict) -> dict:
    """The source profile in the report's shape (character lengths per text column)."""
    return {"rows": profile.get("rows"), "nulls": profile.get("nulls", {}),
            "lengths": {col: v.get("chars", {}) for col, v in profile.get("text", {}).items()},
            "duplicate_rate": profile.get("duplicate_rate"), "non_text_share": profile.get("non_text_rate")}


