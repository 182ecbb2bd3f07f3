"""Plan -> effects: runs the stale stages of a Plan and records what it built.

This is the one place stages are executed. It reads each stage's compiled config from the
Plan (``Stage.executable()``), never the spec. ``apply`` runs every stage and may promote;
``compile`` and ``clean`` run the same stages up to the dataset or the cleaning
(``run(..., until=...)``), so their outputs are apply's by construction, and a later apply
reuses what they built.

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
from llmspec.compiler.plan import Plan, Stage, StageKind
from llmspec.runtime.engine.atomic import write_json_atomic
from llmspec.runtime.engine.faults import crash_point
from llmspec.runtime.engine.state import StageRecord, State, now_iso
from llmspec.spec.errors import AcceptanceFailed, DataError, Diagnostic, LlmspecError

Progress = Callable[[str, dict], None]
STAGE_RECORD = "stage.json"  # in every complete stage folder: what it holds, for adoption


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
    def __init__(self, plan: Plan, diff: PlanDiff, state: State, *,
                 progress: Progress | None = None, env: dict[str, str] | None = None):
        self.plan = plan
        self.diff = {d.id: d for d in diff.stages}
        self.state = state
        self.root = state.root
        self.base_dir = Path(plan.base_dir)
        self.progress = progress or (lambda event, data: None)
        self.env = dict(os.environ if env is None else env)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] = {}
        self._models: dict[str, str] = {}
        self._tokenizer: Any = None
        self._promotion: tuple[Stage, dict[str, Any]] | None = None  # committed with the finished run

    # ------------------------------------------------------------------ driver

    def run(self, run_id: str) -> RunResult:
        """Every stage of the Plan, recorded as a run (and a promotion when the gates pass)."""
        self.repair()
        partial = self.root / "runs" / f"{run_id}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        result = RunResult(run=run_id, run_dir=self.root / "runs" / run_id, outcome="built")
        self.report = {"project": self.plan.project, "run": run_id, "created_at": now_iso(),
                       "spec_path": self.plan.spec_path, "sources": {}}
        self.state.record_run({"run": run_id, "started_at": now_iso(), "outcome": "running"})
        self.state.save()
        try:
            self._execute([s.id for s in self.plan.stages], run_id, result)
        except AcceptanceFailed as exc:
            result.outcome = "gates_failed"
            result.failed_gates = self._failed_gates()
            self._finish_run(run_id, partial, result, "gates_failed")
            result.report = self.report
            exc.result = result
            raise
        except LlmspecError:
            self._finish_run(run_id, partial, result, "failed")
            raise
        result.failed_gates = self._failed_gates()
        result.outcome = "gates_failed" if result.failed_gates else (
            "promoted" if self._promotion is not None else "built")
        if result.outcome != "gates_failed" and not result.built:
            result.outcome = "noop"
        self._finish_run(run_id, partial, result, result.outcome)
        result.report = self.report
        return result

    def repair(self) -> list[str]:
        """Discard what a killed apply left behind: unfinished run folders, non-training work
        folders (never trusted), runs shown `running` forever. Training work folders stay: they
        hold the checkpoints a resume needs. Returns what it did, for the log."""
        done = []
        runs = self.root / "runs"
        for partial in sorted(runs.glob("*.partial")) if runs.is_dir() else []:
            shutil.rmtree(partial, ignore_errors=True)
            done.append(f"removed unfinished run folder {partial.name}")
        work = self.root / "work"
        for leftover in sorted(work.iterdir()) if work.is_dir() else []:
            if leftover.is_dir() and not leftover.name.startswith("train-") and leftover.name != "check":
                shutil.rmtree(leftover, ignore_errors=True)
                done.append(f"removed unfinished stage build {leftover.name}")
        changed = False
        for run in self.state.runs:
            if run.get("outcome") == "running":
                run["outcome"] = "interrupted"
                changed = True
                done.append(f"run {run.get('run')} was interrupted")
        if changed:
            self.state.save()
        return done

    def run_until(self, stage_ids: list[str], *, label: str) -> RunResult:
        """Only ``stage_ids`` and what they depend on (``compile``, ``clean``): built or reused
        exactly as apply would, recorded as stage builds, never as a run or a promotion."""
        result = RunResult(run=label, run_dir=self.root, outcome="built")
        self.report = {"project": self.plan.project, "run": label, "created_at": now_iso(),
                       "spec_path": self.plan.spec_path, "sources": {}}
        self._execute(self.plan.upstream(stage_ids), label, result)
        if not result.built:
            result.outcome = "noop"
        result.report = self.report
        return result

    def stage_dir(self, stage_id: str) -> Path:
        """The folder holding a built (or reused) stage's output."""
        return self.root / self.outputs[stage_id]["dir"]

    def _execute(self, stage_ids: list[str], run_id: str, result: RunResult) -> None:
        for stage_id in stage_ids:
            stage = self.plan.stage(stage_id)  # a database read may have re-planned later stages
            if self._reusable(stage):
                self.outputs[stage.id] = self.state.stages[stage.id].outputs
                result.reused.append(stage.id)
                self.progress("stage-skip", {"stage": stage.id})
                self._collect_report(stage, self.outputs[stage.id])
                continue
            self.progress("stage-start", {"stage": stage.id})
            started = time.monotonic()
            outputs, adopted = self._build(stage)
            stage = self.plan.stage(stage_id)
            self.outputs[stage.id] = outputs
            if stage.kind == StageKind.PROMOTE:
                # Recorded with the promotion itself, once the run folder is complete (_finish_run).
                self._promotion = (stage, outputs)
            else:
                self.state.stages[stage.id] = StageRecord(
                    fingerprint=stage.fingerprint, config=stage.config, run=run_id, outputs=outputs,
                    built_at=now_iso())
                self.state.save()
                crash_point(f"after-stage:{stage.id}")
            (result.reused if adopted else result.built).append(stage.id)
            self.progress("stage-done", {"stage": stage.id, "seconds": time.monotonic() - started})
            self._collect_report(stage, outputs)

    def _failed_gates(self) -> list[dict]:
        return [g for g in self.outputs.get("acceptance", {}).get("gates", [])
                if not g["passed"] and g["severity"] == "error"]

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
                    "spec_path": self.plan.spec_path, "fingerprints": self.plan.fingerprints,
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
        crash_point("before-run-rename")
        os.replace(partial, result.run_dir)  # run ids are unique: nothing is ever replaced here
        crash_point("after-run-rename")
        # One state write commits the run's outcome and, when its gates passed, the promotion:
        # a kill before it leaves the earlier promotion, after it the new one, never neither.
        if self._promotion is not None and outcome == "promoted":
            stage, outputs = self._promotion
            self.state.promoted = outputs["promotion"]
            self.state.stages[stage.id] = StageRecord(fingerprint=stage.fingerprint, config=stage.config, run=run_id,
                                                      outputs={"promoted_run": run_id}, built_at=now_iso())
        self.state.record_run({"run": run_id, "started_at": (self.state.last_run or {}).get("started_at"),
                               "finished_at": now_iso(), "outcome": outcome,
                               "built": result.built, "reused": result.reused})
        self.state.save()
        crash_point("after-promotion")

    # ------------------------------------------------------------------ stages

    def _stage_dirs(self, stage: Stage) -> tuple[Path, Path, str]:
        name = f"{stage.id}-{stage.fingerprint[:12]}"
        return self.root / "work" / name, self.root / "stages" / name, f"stages/{name}"

    def _build(self, stage: Stage) -> tuple[dict[str, Any], bool]:
        """Build ``stage`` (or adopt its folder when one with this fingerprint is already
        complete): (its outputs, whether it was adopted). A complete stage folder is never
        rebuilt in place, so a promoted model's files are never touched by a later run."""
        if stage.kind == StageKind.PROMOTE:
            # A promotion is an event of this run, not an output to cache: no folder, never adopted.
            return self._build_promote(stage, stage.executable(), None), False
        work, final, rel = self._stage_dirs(stage)
        if final.exists():
            outputs = self._adopt(stage, final)
            outputs["dir"] = rel
            return outputs, True
        if stage.kind != StageKind.TRAIN and work.exists():
            shutil.rmtree(work)  # leftovers of a crashed build: never trusted
        work.mkdir(parents=True, exist_ok=True)
        builder = getattr(self, f"_build_{stage.kind.value}")
        outputs = builder(stage, stage.executable(), work) or {}
        from llmspec.spec.version import llmspec_version

        write_json_atomic(work / STAGE_RECORD, {"stage": stage.id, "fingerprint": stage.fingerprint,
                                                "outputs": outputs, "built_at": now_iso(),
                                                "llmspec_version": llmspec_version()})
        final.parent.mkdir(parents=True, exist_ok=True)
        crash_point(f"before-stage-rename:{stage.id}")
        os.replace(work, final)
        outputs["dir"] = rel
        return outputs, False

    def _adopt(self, stage: Stage, final: Path) -> dict[str, Any]:
        """The outputs of a stage folder built earlier with this very fingerprint (folders are
        renamed into place only when complete, with their record)."""
        try:
            record = json.loads((final / STAGE_RECORD).read_text(encoding="utf-8"))
            if record.get("fingerprint") == stage.fingerprint and isinstance(record.get("outputs"), dict):
                return dict(record["outputs"])
        except (OSError, ValueError):
            pass
        known = self.state.stages.get(stage.id)
        if known is not None and known.fingerprint == stage.fingerprint:
            return {k: v for k, v in known.outputs.items() if k != "dir"}
        from llmspec.spec.errors import Pos, StateError

        raise StateError(Diagnostic(
            "stage-folder-unknown", f"{final} exists but has no record of what it holds (built by an older "
            "llmspec?); it is not rebuilt in place, since a promoted model may live in it",
            Pos(str(final)), hint="if no promoted run uses it, move it away and apply again"))

    def model_path(self, base: dict[str, Any]) -> str:
        """The base model's folder (built-in models are built on first use) or hub id."""
        key = base["id"]
        if key not in self._models:
            from llmspec.runtime.models.resolve import resolve_base_model

            self._models[key] = resolve_base_model(base, self.base_dir, self.plan.locate)
        return self._models[key]

    def tokenizer(self, base: dict[str, Any]):
        """The base model's tokenizer (loaded once), or None when it is not on this machine."""
        if self._tokenizer is None:
            from llmspec.runtime.models.resolve import load_tokenizer_offline

            self.model_path(base)  # a built-in model's tokenizer exists once it is built
            self._tokenizer = load_tokenizer_offline(base, self.base_dir) or False
        return self._tokenizer or None

    def _build_sources(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        """Read the source batch by batch (``execution.batch_rows``) into ``rows.parquet``:
        memory holds one batch, whatever the source's size."""
        import hashlib
        from contextlib import closing

        from llmspec.runtime.engine.parquet_out import ParquetAppender
        from llmspec.runtime.engine.prefetch import prefetched
        from llmspec.runtime.sources import source_spec
        from llmspec.runtime.sources.expect import Tally, check_expectations
        from llmspec.runtime.sources.profile import ProfileParts
        from llmspec.runtime.sources.stream import iter_source

        name = stage.name
        src = source_spec(compiled["source"])
        tally = Tally(name)
        profile = ProfileParts()
        digest = hashlib.sha256()  # a database's content: what its later stages are fingerprinted by
        files: list[str] = []
        batches = iter_source(name, src, self.base_dir, batch_rows=compiled["batch_rows"], env=self.env)
        # read ahead: the next lines are parsed while this batch is profiled and written (other
        # formats are read whole by their first batch: nothing to overlap)
        if src.format == "jsonl":
            batches = prefetched(batches)
        with closing(batches), ParquetAppender(work / "rows.parquet") as rows, \
                ParquetAppender(work / "rejected.parquet") as rejected:
            for batch in tally.watch(batches):
                rows.add(batch.rows)
                rejected.add(batch.rejected)
                profile.add(batch.rows.drop("_origin", strict=False))
                files = batch.files
                if stage.volatile:
                    digest.update(batch.rows.drop("_origin", strict=False).write_ndjson().encode())
                self.progress("rows", {"stage": stage.id, "rows": tally.rows_in})
        errors = [d for d in check_expectations(tally, src) if d.severity == "error"]
        if errors:
            for d in errors:
                d.pos = d.pos or self.plan.locate(("sources", name, "expect"))
            raise DataError(errors)
        if stage.volatile:
            self._replan_after_read(name, digest.hexdigest())
        meta = {"rows_in": tally.rows_in, "files": files, "format": src.format,
                "extra_columns": tally.extra, "profile": profile.result()}
        write_json_atomic(work / "source.json", meta)
        return {"rows_in": tally.rows_in, "rows": tally.height, "unreadable": sum(tally.rejected.values())}

    def _replan_after_read(self, name: str, digest: str) -> None:
        """A database source is known only once read: fingerprint what it returned; the later
        stages rebuild only if the data really changed. The reviewed Plan stays as it was."""
        self.plan = self.plan.with_source_result(name, digest)
        for stage in self.plan.stages:
            rec = self.state.stages.get(stage.id)
            if rec is not None and rec.fingerprint == stage.fingerprint and stage.id in self.diff:
                self.diff[stage.id].action = "unchanged"
            elif stage.id in self.diff and self.diff[stage.id].action == "unchanged":
                self.diff[stage.id].action = "change"

    def _build_clean(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        """The source's rows cleaned batch by batch on the engine ``execution`` names, kept rows
        and rejects written as they come (memory: a batch and the dedupe state's hashes)."""
        import polars as pl

        from contextlib import closing

        from llmspec.compiler.cleaning import bind_rules
        from llmspec.runtime.clean.explain import explain_plan
        from llmspec.runtime.clean.run import check_gates, clean_to_files
        from llmspec.runtime.engine.prefetch import prefetched
        from llmspec.runtime.reports.samples import reject_samples
        from llmspec.spec.models import QualitySpec

        name = stage.name
        src_dir = self.stage_dir(f"sources.{name}")
        meta = json.loads((src_dir / "source.json").read_text())
        schema = pl.read_parquet_schema(src_dir / "rows.parquet")
        plan = bind_rules(compiled["rules"], name, schema, keep_rejects=compiled["keep_rejects"],
                          locate=self.plan.locate)
        (work / "plan.txt").write_text(explain_plan(plan), encoding="utf-8")
        tok = self.tokenizer(compiled["tokenizer"]) if compiled.get("tokenizer") else None
        count = _token_counter(tok) if tok is not None else None
        stored = _stored_batches(name, src_dir, meta, compiled["execution"]["batch_rows"])
        kept = work / "kept.parquet"
        rejects = work / "rejects.parquet" if compiled["keep_rejects"] else None
        execution = compiled["execution"]
        if execution["engine"] == "ray":
            from llmspec.runtime.clean.ray_engine import clean_on_ray

            result = clean_on_ray(stored, plan, kept, rejects, address=execution.get("address"),
                                  count_tokens=count, profile=True, scratch=work)
        else:
            with closing(prefetched(stored)) as batches:  # the next row group read while this batch is cleaned
                result = clean_to_files(batches, plan, kept, rejects, count_tokens=count, scratch=work, profile=True,
                                        progress=lambda n: self.progress("rows", {"stage": stage.id, "rows": n}))
        gates = QualitySpec.model_validate({"source_gates": {name: compiled["gates"]}} if compiled["gates"] else {})
        gate_diags = [d for d in check_gates({name: result}, gates) if d.severity == "error"]
        if gate_diags:
            raise DataError(gate_diags)
        summary = result.to_dict()
        summary["samples"] = reject_samples(result.samples, plan.steps)
        summary["profile"] = meta.get("profile")
        summary["kept_profile"] = result.profile
        summary["columns"] = result.columns
        summary["extra_columns"] = meta.get("extra_columns") or {}
        summary["format"] = meta.get("format")
        write_json_atomic(work / "clean.json", summary)
        if not result.samples.is_empty():
            result.samples.write_parquet(work / "samples.parquet")  # the funnel's sample rows, without reading every reject
        return {"rows_in": result.rows_in, "rows_kept": result.rows_kept,
                "rejected": dict(result.rejected), "modified": dict(result.modified)}

    def _build_dataset(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        import polars as pl

        from llmspec.compiler.formatting import compile_format
        from llmspec.runtime.clean.run import check_gates
        from llmspec.runtime.dataset.build import build_dataset
        from llmspec.spec.models import FormatSpec, QualitySpec, SplitSpec

        names = compiled["sources"]
        frames = {n: pl.read_parquet(self.stage_dir(f"clean.{n}") / "kept.parquet") for n in names}
        mix = compiled.get("replay")
        # A replay source is sampled into the train split only: it never reaches the split below.
        replay_frame = frames.pop(mix["from"]) if mix and mix["from"] in frames else None
        views = {n: _ResultView(json.loads((self.stage_dir(f"clean.{n}") / "clean.json").read_text())) for n in names}
        quality = QualitySpec.model_validate({"gates": compiled["quality_gates"]})
        errors = [d for d in check_gates(views, quality) if d.severity == "error"]
        if errors:
            raise DataError(errors)
        columns = {n: [c for c in f.columns if c != "_origin"] for n, f in frames.items()}
        # The mapping was compiled at plan time; here it is checked against the columns the data has.
        fmt_plan = compile_format(FormatSpec.model_validate(compiled["format_spec"]), columns, locate=self.plan.locate,
                                  method=compiled["format"].get("preference"))
        from llmspec.runtime.dataset.lengths import length_check

        # The base model's tokenizer measures every example as Axolotl will (format.too_long), and
        # gives templates their bos/eos tokens; without it (not on this machine) counts are estimates.
        tok = self.tokenizer(compiled["special_tokens_from"])
        special = ({"bos_token": tok.bos_token or "", "eos_token": tok.eos_token or ""}
                   if tok is not None and compiled.get("uses_special_tokens") else None)
        lengths = (length_check(tok, fmt_plan, sequence_len=compiled["sequence_len"],
                                chat_template=compiled["chat_template"],
                                policy=compiled["format_spec"].get("too_long", "reject"))
                   if tok is not None else None)
        from llmspec.runtime.dataset.preference import ChatText

        chat_text = ChatText(tok, compiled["chat_template"]) if tok is not None and fmt_plan.preference else None
        result = build_dataset(frames, fmt_plan, SplitSpec.model_validate(compiled["split"]), work,
                               special_tokens=special, lengths=lengths, chat_text=chat_text)
        if mix:
            result, replay = self._mix_replay(mix, result, replay_frame, fmt_plan, work, lengths)
        summary = result.to_dict()
        exact = result.token_summary()
        if exact:
            train_tokens, method = exact["train"], "axolotl"
        else:  # the plan's token estimates and training's tokens/s still want a figure: chars/4
            from llmspec.compiler.estimates import count_tokens

            approx = count_tokens(result.train_path, result.eval_path)
            train_tokens, method = sum(approx.train), approx.method
        summary["train_tokens"], summary["tokens_method"] = train_tokens, method
        # Paths inside the work folder move with it: store them relative to the stage folder.
        summary = _paths_relative(summary)
        if mix:
            summary["replay"] = replay
        write_json_atomic(work / "dataset.json", summary)
        if not result.rejects.is_empty():
            result.rejects.write_parquet(work / "rejects.parquet")
        return {"train": result.train_size, "eval": result.eval_size, "leakage_removed": result.leakage_removed,
                "rejected": result.rejected_by_rule(), "style": fmt_plan.style,
                "train_tokens": train_tokens, "tokens_exact": bool(exact)}

    def _mix_replay(self, mix: dict, result, replay_frame, fmt_plan, work: Path, lengths):
        """The built dataset with replay examples drawn into its train split (measured like
        every other example), read back from its folder, and the draw's summary."""
        from llmspec.runtime.dataset.build import DatasetResult
        from llmspec.runtime.replay.build import mix_into_dataset, read_replay, source_examples

        write_json_atomic(work / "dataset.json", _paths_relative(result.to_dict()))
        if mix["from"] == "base_model":
            examples, label = read_replay(self.stage_dir("replay"), fmt_plan.style), "replay"
        else:
            examples, label = source_examples(mix["from"], replay_frame, fmt_plan, work), mix["from"]
        replay = mix_into_dataset(work, examples, fraction=mix["fraction"], seed=mix["seed"], source=label,
                                  fit=lengths.fit if lengths is not None else None)
        self.progress("replay-mixed", replay)
        return DatasetResult.load(work), replay

    def _build_model(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        """A GGUF base model converted into the machine-wide model cache (a cache hit when this
        file was converted before); the stage folder records where."""
        from llmspec.runtime.models.resolve import describe, materialize

        base = compiled["base_model"]
        ref = describe(base["id"], self.base_dir, revision=base.get("revision"),
                       pos=self.plan.locate(("base_model", "id")))
        path = materialize(ref, progress=self.progress)
        self._models[base["id"]] = str(path)
        summary = {"id": base["id"], "path": str(path), "fingerprint": ref.fingerprint, "source": str(ref.source)}
        write_json_atomic(work / "model.json", summary)
        return summary

    def _build_replay(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        """The base model's own answers to the replay prompts, laid out as training will lay out
        its examples (``training.replay: {from: base_model}``)."""
        from llmspec.runtime.replay.build import generate_replay, load_prompts

        prompts = load_prompts(compiled["prompts"], self.base_dir)
        return generate_replay(prompts, model_path=self.model_path(compiled["base_model"]), system=compiled["system"],
                               work=work, max_new_tokens=compiled["max_new_tokens"],
                               style=compiled.get("style", "chat"), chat_template=compiled.get("chat_template"),
                               progress=lambda done, total: self.progress("replay-answer",
                                                                          {"done": done, "total": total}))

    def _build_train(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        from llmspec.runtime.train.run import prepare_training, train

        base = compiled["base_model"]
        training = prepare_training(compiled, model_path=self.model_path(base), dataset_dir=self.stage_dir("dataset"),
                                    work=work)
        return train(training, compiled, dataset_dir=self.stage_dir("dataset"), work=work,
                     locate=self.plan.locate, progress=self.progress, env=self.env)

    def _build_acceptance(self, stage: Stage, compiled: dict, work: Path) -> dict[str, Any]:
        from llmspec.runtime.acceptance.stage import run_acceptance_stage

        return run_acceptance_stage(compiled, train_dir=self.stage_dir("train"), dataset_dir=self.stage_dir("dataset"),
                                    train_outputs=self.outputs["train"], work=work, progress=self.progress)

    def _build_promote(self, stage: Stage, compiled: dict, work: Path | None) -> dict[str, Any]:
        failed = self._failed_gates()
        if failed:
            # Not promoted: the earlier promoted run stays promoted. Nothing is recorded as built,
            # so the next apply tries again after the spec or data change.
            raise AcceptanceFailed([Diagnostic("gate-failed", g["message"], None) for g in failed])
        train = self.outputs["train"]
        model_dir = self.root / train["dir"] / train["model"] if train.get("model") else None
        promotion = {"run": self.report["run"], "model_path": str(model_dir) if model_dir else None,
                     "adapter": bool(train.get("adapter")), "base_model_path": train.get("base_model_path"),
                     "promoted_at": now_iso(), "fingerprint": stage.fingerprint,
                     "train_dir": train["dir"]}
        return {"promoted_run": self.report["run"], "promotion": promotion}

    # ------------------------------------------------------------------ report

    def _collect_report(self, stage: Stage, outputs: dict[str, Any]) -> None:
        try:
            d = self.root / outputs["dir"] if outputs.get("dir") else None
            if stage.kind == StageKind.CLEAN and d is not None:
                summary = json.loads((d / "clean.json").read_text())
                self.report["sources"][stage.name] = {k: summary.get(k) for k in (
                    "rows_in", "rows_kept", "rejected", "modified", "samples", "format", "extra_columns")}
                self.report["sources"][stage.name]["profile"] = _report_profile(summary.get("profile") or {})
            elif stage.kind == StageKind.DATASET and d is not None:
                from llmspec.runtime.reports.writer import dataset_report

                self.report["dataset"] = dataset_report(d, style=stage.compiled["format"]["style"],
                                                        chat_template=stage.compiled["chat_template"])
            elif stage.kind == StageKind.REPLAY and d is not None:
                self.report["replay"] = json.loads((d / "replay.json").read_text())
            elif stage.kind == StageKind.TRAIN and d is not None:
                self.report["training"] = json.loads((d / "training.json").read_text())
            elif stage.kind == StageKind.ACCEPTANCE and d is not None:
                self.report["acceptance"] = json.loads((d / "acceptance.json").read_text())
        except (OSError, ValueError, KeyError):
            pass  # an old stage folder without a summary only shortens the report


def _stored_batches(name: str, src_dir: Path, meta: dict, batch_rows: int):
    """The sources stage's rows as ``SourceBatch``es of ``batch_rows`` rows; the reader's rejects
    ride with the first, and ``rows_in`` adds up to what was read."""
    import polars as pl
    import pyarrow.parquet as pq

    from llmspec.runtime.engine.parquet_out import iter_row_batches
    from llmspec.runtime.sources import SourceBatch

    rows_file = pq.ParquetFile(src_dir / "rows.parquet")
    total = rows_file.metadata.num_rows
    first = True
    for part in iter_row_batches(src_dir / "rows.parquet", batch_rows):  # not iter_batches: it grows
        rows = pl.from_arrow(part)
        yield SourceBatch(name=name, rows=rows,
                          rejected=pl.read_parquet(src_dir / "rejected.parquet") if first else None,
                          rows_in=(meta["rows_in"] - total if first else 0) + rows.height, files=meta["files"])
        first = False
    if first:  # no readable row: one empty batch carries the reader's rejects
        yield SourceBatch(name=name, rows=pl.read_parquet(src_dir / "rows.parquet"),
                          rejected=pl.read_parquet(src_dir / "rejected.parquet"), rows_in=meta["rows_in"],
                          files=meta["files"])


def _paths_relative(summary: dict[str, Any]) -> dict[str, Any]:
    """A dataset summary whose file paths are relative to its stage folder (the work folder it
    was built in is renamed)."""
    return {**summary, **{k: Path(v).name for k in ("train_path", "eval_path", "origins_path")
                          if (v := summary.get(k))}}


def _token_counter(tokenizer) -> Callable[[list[str]], list[int]]:
    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    return count


class _ResultView:
    """What check_gates reads from a CleanResult, rebuilt from a stored clean.json."""

    def __init__(self, d: dict):
        self.rows_in = d["rows_in"]
        self.rows_kept = d["rows_kept"]
        self.rejected = d.get("rejected", {})
        self.modified = d.get("modified", {})


def _report_profile(profile: dict) -> dict:
    """The source profile in the report's shape (character lengths per text column)."""
    return {"rows": profile.get("rows"), "nulls": profile.get("nulls", {}),
            "lengths": {col: v.get("chars", {}) for col, v in profile.get("text", {}).items()},
            "duplicate_rate": profile.get("duplicate_rate"), "non_text_share": profile.get("non_text_rate")}


