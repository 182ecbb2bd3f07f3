"""`format.map` means what it says: a column (any name) or a template, never a silent constant;
and `columns.extra` sees keys the contract does not declare."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from llmspec.cli import cli
from llmspec.compiler.formatting import Renderer, compile_format
from llmspec.runtime.dataset.build import build_dataset
from llmspec.runtime.sources import read_source
from llmspec.spec.errors import SpecError
from llmspec.spec.load import check_spec
from llmspec.spec.models import FormatSpec, JsonlSource, SplitSpec

HELPDESK = [{"Customer Question": f"How do I reset device {i}?", "Agent Reply": f"Hold button {i} for ten seconds.",
             "agent-reply": f"Press {i}."} for i in range(6)]


def _spec(tmp_path: Path, assistant: str, columns: str | None = None) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "desk.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HELPDESK), encoding="utf-8")
    cols = f"\n    columns: {columns}" if columns else ""
    path = tmp_path / "llmspec.yaml"
    path.write_text(f"""llmspec: 1
project: desk
base_model: {{id: builtin:tiny}}
sources:
  desk:
    path: data/desk.jsonl
    format: jsonl{cols}
format:
  style: chat
  map:
    desk: {{user: '{{{{ row["Customer Question"] }}}}', assistant: {json.dumps(assistant)}}}
""", encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["Agent Reply", "agent-reply"])
def test_declared_column_with_space_or_hyphen_is_the_column(tmp_path: Path, value: str):
    path = _spec(tmp_path, value, columns='{"Customer Question": str, "Agent Reply": str, "agent-reply": str}')
    assert not check_spec(path).errors
    batch = read_source("desk", check_spec(path).spec.sources["desk"], tmp_path)
    spec = check_spec(path).spec
    plan = compile_format(spec.format, {"desk": [c for c in batch.rows.columns if c != "_origin"]})
    result = build_dataset({"desk": batch.rows}, plan, SplitSpec(eval_fraction=0.0), tmp_path / "out")
    answers = [json.loads(line)["messages"][-1]["content"]
               for line in result.train_path.read_text().splitlines()]
    assert sorted(answers) == sorted(r[value] for r in HELPDESK)
    questions = [json.loads(line)["messages"][0]["content"] for line in result.train_path.read_text().splitlines()]
    assert sorted(questions) == sorted(r["Customer Question"] for r in HELPDESK)


@pytest.mark.parametrize("value,guess", [("Agent Replies", "Agent Reply"), ("agent-replyy", "agent-reply")])
def test_value_naming_no_declared_column_is_a_validate_error(tmp_path: Path, value: str, guess: str):
    path = _spec(tmp_path, value, columns='{"Customer Question": str, "Agent Reply": str, "agent-reply": str}')
    errors = check_spec(path).errors
    assert [e.code for e in errors] == ["not-a-column"]
    assert f"'{value}' is neither a column of source 'desk' nor a template" in errors[0].message
    assert f"did you mean '{guess}'?" in errors[0].hint and "{{ " in errors[0].hint
    assert errors[0].pos.line == 12


def test_without_contract_the_observed_columns_decide_at_clean(tmp_path: Path):
    path = _spec(tmp_path, "Agent Replies")
    assert not check_spec(path).errors  # only the data can tell
    result = CliRunner().invoke(cli, ["clean", str(path)])
    assert result.exit_code != 0
    assert "not-a-column" in result.output and "did you mean 'Agent Reply'?" in result.output
    good = _spec(tmp_path, "Agent Reply")
    assert CliRunner().invoke(cli, ["clean", str(good)]).exit_code == 0


def test_dataset_stage_refuses_a_constant_mapping_too():
    fmt = FormatSpec(style="chat", map={"desk": {"user": "question", "assistant": "Agent Replyy"}})
    with pytest.raises(SpecError) as err:
        compile_format(fmt, {"desk": ["question", "Agent Reply"]})
    assert err.value.diagnostics[0].code == "not-a-column"


def test_constant_on_purpose_and_row_lookup_render():
    fmt = FormatSpec(style="chat", map={"desk": {"user": '{{ row["Customer Question"] | upper }}',
                                                 "assistant": '{{ "Thanks for asking." }}'}})
    plan = compile_format(fmt, {"desk": ["Customer Question"]})
    sp = plan.sources["desk"]
    assert sp.get("user").columns == ("Customer Question",)
    renderer = Renderer(plan)
    row = {"Customer Question": "hi there", "_origin": "x:1"}
    assert renderer.render("desk", sp.get("user"), row) == "HI THERE"
    assert renderer.render("desk", sp.get("assistant"), row) == "Thanks for asking."
    with pytest.raises(SpecError) as err:  # row[...] keys are checked like variables
        compile_format(FormatSpec(style="chat", map={"desk": {"user": '{{ row["Question"] }}', "assistant": "a"}}),
                       {"desk": ["Customer Question", "a"]})
    assert err.value.diagnostics[0].code == "unknown-column"


def test_row_key_checked_at_validate(tmp_path: Path):
    path = _spec(tmp_path, "Agent Reply", columns='{"Customer Question ": str, "Agent Reply": str}')
    errors = check_spec(path).errors
    assert [e.code for e in errors] == ["unknown-column"]
    assert "'Customer Question'" in errors[0].message and "did you mean 'Customer Question '?" in errors[0].hint


# ----------------------------------------------------------------------------- columns.extra

ROWS = [{"instruction": "Find the longest word", "input": "", "output": "python('max')", "example_input": "The fox"},
        {"instruction": "Add", "input": "2 2", "output": "4"},
        {"instruction": "Sub", "input": "3 1", "output": "2", "note": None}]


def _read(tmp_path: Path, policy: str | None):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    columns = {"instruction": "str", "input": "str", "output": "str"} | ({"extra": policy} if policy else {})
    return read_source("tools", JsonlSource(format="jsonl", path="t.jsonl", columns=columns), tmp_path)


def test_extra_keys_warn_by_default_with_count_and_name(tmp_path: Path):
    batch = _read(tmp_path, None)
    assert batch.extra_columns == {"example_input": 1}  # "note" is null everywhere: absent
    assert batch.rows.height == 3


def test_extra_reject_drops_rows_holding_undeclared_keys(tmp_path: Path):
    batch = _read(tmp_path, "reject")
    assert batch.rows["instruction"].to_list() == ["Add", "Sub"] and "example_input" not in batch.rows.columns
    (bad,) = batch.rejected.to_dicts()
    assert bad["_rule"] == "contract" and bad["_origin"] == "t.jsonl:1"
    assert bad["_detail"] == "undeclared key(s): example_input (columns.extra: reject)"
    assert batch.rows_in == 3


def test_extra_ignore_reports_nothing(tmp_path: Path):
    batch = _read(tmp_path, "ignore")
    assert batch.extra_columns == {} and batch.rows.height == 3


def test_extra_policy_and_column_named_extra(tmp_path: Path, write_spec, minimal_spec):
    spec = minimal_spec.replace("columns: {question: str, answer: str}",
                                "columns: {question: str, answer: str, extra: reject}")
    loaded = check_spec(write_spec(spec))
    assert not loaded.errors and loaded.spec.sources["qa"].extra_policy == "reject"
    assert loaded.spec.sources["qa"].contract == {"question": "str", "answer": "str"}
    named = check_spec(write_spec(minimal_spec.replace("answer: str}", "answer: str, extra: str?}")))
    assert named.spec.sources["qa"].contract["extra"] == "str?" and named.spec.sources["qa"].extra_policy == "warn"
    bad = check_spec(write_spec(minimal_spec.replace("answer: str}", "answer: reject}")))
    assert bad.errors and "reject/warn/ignore is the value of `extra`" in bad.errors[0].message


def test_clean_warns_and_reports_extra_keys(tmp_path: Path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    spec = tmp_path / "llmspec.yaml"
    spec.write_text("llmspec: 1\nproject: t\nbase_model: {id: builtin:tiny}\nsources:\n  tools:\n"
                    "    path: t.jsonl\n    format: jsonl\n    columns: {instruction: str, input: str, output: str}\n"
                    "format:\n  style: alpaca\n  map:\n    tools: {instruction: instruction, input: input, "
                    "output: output}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["clean", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    assert "warning[extra-columns]" in result.output and "'example_input' (1 rows)" in result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["sources"]["tools"]["extra_columns"] == {"example_input": 1}
