"""`llmspec test`: re-run the acceptance suite on the promoted run (or a given one)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from llmspec.spec.errors import AcceptanceFailed, Diagnostic, Pos, StateError


@click.command("test")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_id", help="Test this run instead of the promoted one.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit XML file here.")
@click.option("--endpoint", metavar="URL",
              help="Test a deployed model through its OpenAI-compatible API (llmspec serve, vLLM, Ollama).")
@click.option("--model", "model_name", help="With --endpoint: the model id to ask (default: the first listed).")
@click.option("--api-key-env", metavar="NAME", help="With --endpoint: send the key in $NAME as a Bearer token.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Also write a markdown report here.")
def test_command(spec: Path, run_id: str | None, junit: Path | None, endpoint: str | None, model_name: str | None,
                 api_key_env: str | None, markdown: Path | None) -> None:
    """Re-run the spec's acceptance tests and gates. Exit 3 when an error gate fails."""
    from ._console import make_console

    if endpoint is not None:
        from llmspec.api import load_spec
        from llmspec.commands.serve import api_key_from_env
        from llmspec.runtime.acceptance.endpoint_stage import run_endpoint_suite

        report = run_endpoint_suite(load_spec(spec), endpoint, run_id=run_id, model=model_name,
                                    api_key=api_key_from_env(api_key_env), junit=junit, markdown=markdown)
        _finish(report, make_console(highlight=False, soft_wrap=True), f"Endpoint {endpoint}")
        return

    from llmspec.api import compile_acceptance_stage, load_spec, state_root
    from llmspec.runtime.models.resolve import base_model_ref
    from llmspec.runtime.acceptance.stage import run_acceptance_stage
    from llmspec.runtime.engine.state import State

    loaded = load_spec(spec)
    root = state_root(loaded)
    state = State.load(root)
    if run_id is None:
        if not state.promoted:
            raise StateError(Diagnostic("no-promoted-run", "no run has been promoted yet",
                                        Pos(loaded.display_path), hint="run `llmspec apply` first, or give --run"))
        run_id = state.promoted["run"]
    manifest_path = root / "runs" / run_id / "manifest.json"
    if not manifest_path.exists():
        known = sorted(p.name for p in (root / "runs").glob("*") if (p / "manifest.json").exists())
        raise StateError(Diagnostic("unknown-run", f"there is no complete run '{run_id}'", Pos(str(root / "runs")),
                                    hint="runs: " + (", ".join(known[-5:]) or "none")))
    from llmspec.runtime.engine.artifacts import RunManifest, load

    stages = load(RunManifest, manifest_path).stages
    if "train" not in stages or "dataset" not in stages:
        raise StateError(Diagnostic("run-without-model", f"run '{run_id}' trained no model", Pos(str(manifest_path))))
    train_dir, dataset_dir = root / stages["train"], root / stages["dataset"]
    train_outputs = next((rec.outputs for sid, rec in state.stages.items() if sid == "train"
                          and rec.outputs.get("dir") == stages["train"]), None)
    if train_outputs is None:
        summary = json.loads((train_dir / "training.json").read_text())
        train_outputs = {"model": "output", "adapter": (train_dir / "output" / "adapter_config.json").exists(),
                         "eval_loss": summary.get("final", {}).get("eval_loss")}
        from llmspec.runtime.models.resolve import resolve_base_model

        train_outputs["base_model_path"] = resolve_base_model(base_model_ref(loaded.spec), loaded.base_dir)
    console = make_console(highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_acceptance_stage(compile_acceptance_stage(loaded), train_dir=train_dir, dataset_dir=dataset_dir,
                             train_outputs=train_outputs, work=Path(tmp), progress=lambda *_: None)
        report = {"acceptance": json.loads((Path(tmp) / "acceptance.json").read_text()), "run": run_id}
        failed = [g for g in report["acceptance"]["gates"] if not g["passed"] and g["severity"] == "error"]
        # A re-test promotes nothing: its outcome is the gates' verdict (not "unknown").
        report["outcome"] = "retest_failed" if failed else "retest_passed"
        if junit is not None:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_bytes((Path(tmp) / "acceptance.junit.xml").read_bytes())
        if markdown is not None:
            from llmspec.runtime.reports.markdown import write_markdown_report

            _failed_gates(report)  # sets the outcome the summary's title shows
            write_markdown_report(report, markdown)
    _finish(report, console, f"Run {run_id}")


def _failed_gates(report: dict) -> list[dict]:
    failed = [g for g in report["acceptance"]["gates"] if not g["passed"] and g["severity"] == "error"]
    # A re-test promotes nothing: its outcome is the gates' verdict (not "unknown").
    report["outcome"] = "retest_failed" if failed else "retest_passed"
    return failed


def _finish(report: dict, console, what: str) -> None:
    from llmspec.runtime.reports.terminal import print_summary

    failed = _failed_gates(report)
    print_summary(report, console)
    if failed:
        raise AcceptanceFailed([Diagnostic("gate-failed", g["message"]) for g in failed])
    console.print(f"{what}: all error gates pass.")
