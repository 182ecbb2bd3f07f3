"""The Plan is the program: every stage carries its compiled config, the Plan is frozen, and
each input a stage depends on is in its fingerprint (issues 12 and 13, class 4)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from llmspec.api import compile_plan
from llmspec.compiler.plan import Plan
from llmspec.spec.load import check_spec

SPEC = """\
llmspec: 1
project: demo
base_model: {id: builtin:tiny}
sources:
  qa:
    path: data/qa.jsonl
    format: jsonl
    columns: {question: str, answer: str}
quality:
  rules:
    - require: {columns: [question, answer]}
    - dedupe: {columns: [answer], method: minhash, threshold: 0.8}
format:
  style: chat
  system: You are helpful.
  map:
    qa: {user: question, assistant: answer}
training: {method: lora, hardware: cpu, max_steps: 2}
acceptance:
  tests_from: tests.jsonl
  tests:
    - {name: refund, prompt: Can I get a refund?, expect: [{contains: 30 days}]}
"""


def project(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "qa.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    if not (tmp_path / "tests.jsonl").exists():
        (tmp_path / "tests.jsonl").write_text(json.dumps({"name": "t1", "prompt": "Hi", "answer": "Hello"}) + "\n")
    (tmp_path / "llmspec.yaml").write_text(text)
    return tmp_path / "llmspec.yaml"


def plan_of(path: Path) -> Plan:
    loaded = check_spec(path)
    assert not loaded.errors, [d.render() for d in loaded.errors]
    return compile_plan(loaded, {"qa": {"data/qa.jsonl": "0" * 64}})


def test_every_stage_carries_what_the_runtime_executes(tmp_path):
    plan = plan_of(project(tmp_path))
    clean = plan.stage("clean.qa").compiled
    assert [r["kind"] for r in clean["rules"]] == ["require", "dedupe"]
    assert clean["rules"][1]["args"]["bands"] and clean["rules"][1]["args"]["sketch"]  # resolved at plan time
    assert plan.stage("dataset").compiled["format"]["style"] == "chat"
    axolotl = plan.stage("train").compiled["axolotl"]["config"]
    # Everything apply adds is in the compiled config: compile writes the file apply trains with.
    assert axolotl["plugins"][-1] == "llmspec.runtime.train.axolotl_plugin.LlmspecPlugin"
    assert axolotl["auto_resume_from_checkpoints"] is True
    assert axolotl["base_model"] == "${model}" and axolotl["datasets"][0]["path"] == "${dataset}/train.jsonl"
    tests = plan.stage("acceptance").compiled["tests"]
    assert [t["name"] for t in tests] == ["refund", "t1"]  # the tests file is read at plan time
    # and the whole Plan round-trips through JSON (a saved plan executes the same configs)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(plan.to_dict(), sort_keys=True)
    assert again.fingerprints == plan.fingerprints


def test_the_plan_is_frozen_and_a_database_read_makes_a_new_one(tmp_path):
    plan = plan_of(project(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stage("train").fingerprint = "x"  # type: ignore[misc]
    newer = plan.with_source_result("qa", "f" * 64)
    assert plan.stage("sources.qa").config["files"] == {"data/qa.jsonl": "0" * 64}  # unchanged
    assert newer.stage("sources.qa").config["files"] == {"query-result": "f" * 64}
    assert all(newer.stage(s.id).fingerprint != s.fingerprint for s in plan.stages)
    executable = plan.stage("clean.qa").executable()
    executable["rules"].clear()
    assert plan.stage("clean.qa").compiled["rules"]  # a runtime copy cannot change the Plan


def test_run_time_errors_point_at_the_spec(tmp_path):
    path = project(tmp_path)
    plan = plan_of(path)
    line = SPEC.splitlines().index("    - dedupe: {columns: [answer], method: minhash, threshold: 0.8}") + 1
    pos = plan.locate(("quality", "rules", 1, "dedupe"))
    assert (pos.line, pos.path.endswith("llmspec.yaml")) == (line, True)
    assert plan.locate(("no", "such", "key")).line == 1


def test_editing_the_tests_file_re_tests(tmp_path):
    path = project(tmp_path)
    before = plan_of(path)
    (tmp_path / "tests.jsonl").write_text(json.dumps({"name": "t1", "prompt": "Hi", "answer": "Goodbye"}) + "\n")
    after = plan_of(path)
    assert after.stage("acceptance").fingerprint != before.stage("acceptance").fingerprint
    assert after.stage("train").fingerprint == before.stage("train").fingerprint


def test_renaming_a_cleaning_rule_rebuilds_nothing(tmp_path):
    path = project(tmp_path)
    before = plan_of(path)
    project(tmp_path, SPEC.replace("- require: {columns", "- require: {name: both-present, columns"))
    after = plan_of(path)
    assert after.fingerprints == before.fingerprints
    assert after.stage("clean.qa").compiled["rules"][0]["reason"] == "both-present"  # the label still moves


def test_a_sqlite_database_in_wal_mode_is_fingerprinted_with_its_log(tmp_path):
    from llmspec.api import load_spec, source_hashes

    db = tmp_path / "data" / "crm.db"
    (tmp_path / "data").mkdir()
    con = sqlite3.connect(db)
    con.execute("pragma journal_mode=wal")
    con.execute("pragma wal_autocheckpoint=0")
    con.execute("create table t (question text, answer text)")
    con.execute("insert into t values ('q', 'a')")
    con.commit()
    text = SPEC.replace("""    path: data/qa.jsonl
    format: jsonl
    columns: {question: str, answer: str}""", """    path: data/crm.db
    format: sqlite
    query: select question, answer from t""").replace("  tests_from: tests.jsonl\n", "")
    (tmp_path / "llmspec.yaml").write_text(text)
    loaded = load_spec(tmp_path / "llmspec.yaml")
    first = source_hashes(loaded, cache_dir=None)
    con.execute("insert into t values ('q2', 'a2')")  # stays in crm.db-wal: no checkpoint
    con.commit()
    assert (tmp_path / "data" / "crm.db-wal").exists()
    second = source_hashes(loaded, cache_dir=None)
    con.close()
    assert first != second


def test_the_language_rule_is_refused_at_validate(tmp_path):
    text = SPEC.replace("    - require: {columns: [question, answer]}\n",
                        "    - require: {columns: [question, answer]}\n    - language: {column: answer, allowed: [en]}\n")
    loaded = check_spec(project(tmp_path, text))
    (diag,) = [d for d in loaded.errors if d.code == "unsupported-rule"]
    assert diag.pos.line == text.splitlines().index("    - language: {column: answer, allowed: [en]}") + 1
    assert "3.7 ms per row" in diag.message


def test_minhash_explain_shows_the_words_the_runtime_hashes(tmp_path):
    from llmspec.compiler.cleaning import compile_cleaning
    from llmspec.runtime.clean.explain import explain_plan

    loaded = check_spec(project(tmp_path))
    text = explain_plan(compile_cleaning(loaded.spec.quality, "qa", {"question": "str", "answer": "str"}))
    assert "split" in text and "extract_all" not in text


def test_tests_without_gates_default_to_every_test_passing(tmp_path):
    plan = plan_of(project(tmp_path))
    acc = plan.stage("acceptance")
    assert acc.config["gates"]["pass_rate"] == {"threshold": ">= 1.0", "severity": "error"}
    assert any("every test must pass" in n for n in plan.notes)
    gated = plan_of(project(tmp_path, SPEC + "  gates: {pass_rate: '>= 0.5'}\n"))
    assert not any("every test must pass" in n for n in gated.notes)
    assert gated.stage("acceptance").config["gates"]["pass_rate"]["threshold"] == ">= 0.5"


def test_a_full_disk_is_a_clear_error_and_the_run_is_not_left_running(tmp_path, monkeypatch):
    import errno

    import polars as pl
    from click.testing import CliRunner

    from llmspec.cli import cli

    path = project(tmp_path)
    real = pl.DataFrame.write_parquet

    def full(self, file, *args, **kwargs):
        if "rows.parquet" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real(self, file, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    result = CliRunner().invoke(cli, ["apply", str(path), "--yes"])
    assert result.exit_code not in (0, 70), result.output  # 70: an internal error
    (diag,) = result.exception.diagnostics
    assert diag.code == "disk-full" and "rows.parquet" in str(diag.pos.path)
    runs = json.loads((tmp_path / ".llmspec" / "state.json").read_text())["runs"]
    assert runs[-1]["outcome"] == "failed"
