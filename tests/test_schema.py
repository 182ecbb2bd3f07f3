"""The published JSON Schema and the models agree.

- the committed spec/llmspec.schema.json is exactly what `llmspec schema` prints;
- every valid example validates against it with the `jsonschema` library (draft 2020-12);
- for a corpus of mutated specs, whatever the schema rejects the models reject too, so an
  editor (yaml-language-server) never flags a spec `llmspec validate` accepts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from llmspec.spec.load import check_spec
from llmspec.spec.schema import COMMITTED_SCHEMA, json_schema, schema_text
from llmspec.spec.yamlload import load_yaml_text
from llmspec.spec.errors import SpecError

from conftest import MINIMAL_SPEC, REPO_ROOT
from test_validate_property import EXAMPLE, mutated_data_specs, mutated_text_specs

EXAMPLE_SPECS = sorted(REPO_ROOT.glob("examples/*/llmspec.yaml"))
VALIDATOR = Draft202012Validator(json_schema())


def test_committed_schema_is_up_to_date():
    committed = COMMITTED_SCHEMA.read_text(encoding="utf-8") if COMMITTED_SCHEMA.exists() else ""
    assert committed == schema_text(), "spec/llmspec.schema.json is stale: run `make schema`"


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(schema_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_documents_fields_for_editors():
    schema = json_schema()
    props = schema["properties"]
    assert set(props) >= {"llmspec", "project", "base_model", "sources", "quality", "format", "split",
                          "training", "acceptance", "extends", "description"}
    training = schema["$defs"]["TrainingSpec"]["properties"]
    assert training["learning_rate"]["exclusiveMinimum"] == 0
    assert "description" in training["epochs"] and "examples" in props["project"]


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.parent.name)
def test_example_specs_validate_against_the_schema(path):
    assert check_spec(path).errors == []
    data = load_yaml_text(path.read_bytes(), str(path)).data
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert problems == []


def test_examples_exist():
    assert EXAMPLE_SPECS, "no examples/*/llmspec.yaml found"


@pytest.mark.parametrize("text", [
    MINIMAL_SPEC,
    MINIMAL_SPEC + "extends: recipe:lora-small\n",
    MINIMAL_SPEC + "quality:\n  rules:\n    - drop_corrupt: {}\n    - dedupe: {columns: [question]}\n",
    MINIMAL_SPEC + "training:\n  hardware: {type: cuda, gpus: 2, strategy: fsdp}\n  warmup: {steps: 10}\n",
    MINIMAL_SPEC + "acceptance:\n  tests:\n    - {name: a, prompt: p, expect: [{contains: x}], tags: [t]}\n"
                   "  gates:\n    pass_rate: 0.9\n    pass_rate_by_tag: {t: {threshold: '>= 1', severity: warn}}\n"
                   "    eval_loss: '<= 2'\n    beats_baseline: {severity: warn}\n",
    MINIMAL_SPEC.replace("style: chat", "style: alpaca").replace(
        "{user: question, assistant: answer}", "{instruction: question, input: '{{ question | trim }}', output: answer}"),
    MINIMAL_SPEC.replace("style: chat", "style: input_output").replace(
        "{user: question, assistant: answer}",
        "{segments: [{text: question, train: false}, {text: '{{ answer }}', train: true}]}"),
    MINIMAL_SPEC.replace("    path: data/qa.jsonl\n    format: jsonl\n",
                         "    path: data/qa.csv\n    format: csv\n    delimiter: ';'\n    header: true\n"
                         "    expect: {min_rows: 1, max_rows: 10, max_null_fraction: {answer: 0.1}}\n"),
    MINIMAL_SPEC.replace("    path: data/qa.jsonl\n    format: jsonl\n",
                         "    url: ${env:CRM_URL}\n    format: postgres\n    query: SELECT question, answer FROM faq\n"),
    MINIMAL_SPEC.replace("format:\n", "  mail:\n    format: mbox\n    path: mail.mbox\n"
                         "    pairing: {agent: ['*@acme.example']}\n"
                         "  docs: {format: markdown, path: 'docs/**/*.md', split: heading, heading_level: 3}\n"
                         "format:\n", 1)
    + "    mail: {user: query, assistant: reply}\n    docs: {user: heading, assistant: text}\n",
    MINIMAL_SPEC + "quality:\n  rules:\n    - fill: {column: answer, from_column: question}\n"
                   "    - redact_pii: {columns: [answer], kinds: [email, iban]}\n"
                   "    - length: {column: answer, min_chars: 1, max_tokens: 512}\n"
                   "    - replace_matching: {column: answer, patterns: ['^N/A$'], value: ''}\n"
                   "  gates: {max_rejected_fraction: 0.5}\n  source_gates: {qa: {min_rows_after: 1}}\n",
    MINIMAL_SPEC + "training:\n  lora: {target: [q_proj, v_proj]}\n  max_steps: 10\n  axolotl: {flash_attention: false}\n"
                   "acceptance:\n  tests_from: tests.jsonl\n  holdout: {count: 5, metric: token_f1}\n"
                   "  gates: {pass_rate: '>= 0.5'}\n",
], ids=["minimal", "extends-string", "rules", "hardware", "gates", "alpaca", "input-output", "csv", "postgres",
        "mbox-markdown", "more-rules", "training-acceptance"])
def test_valid_specs_validate_against_the_schema(tmp_path, text):
    path = tmp_path / "llmspec.yaml"
    path.write_text(text, encoding="utf-8")
    assert check_spec(path).errors == []
    problems = [e.message for e in VALIDATOR.iter_errors(load_yaml_text(text, "spec").data)]
    assert problems == []


def test_spec_extending_a_base_file_need_not_repeat_required_keys(tmp_path):
    (tmp_path / "base.yaml").write_text("base_model: {id: builtin:tiny}\n", encoding="utf-8")
    text = MINIMAL_SPEC.replace("base_model: {id: builtin:tiny}\n", "extends: [base.yaml]\n")
    path = tmp_path / "llmspec.yaml"
    path.write_text(text, encoding="utf-8")
    assert check_spec(path).errors == []
    assert list(VALIDATOR.iter_errors(load_yaml_text(text, "spec").data)) == []


# -- what the schema rejects, the models reject -------------------------------------------------


def _schema_rejects(text: str) -> list[str] | None:
    """The schema's complaints, or None when the text is not YAML the loader accepts."""
    try:
        data = load_yaml_text(text, "spec").data
    except SpecError:
        return None
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def _agrees(text: str) -> None:
    complaints = _schema_rejects(text)
    if not complaints:
        return
    result = check_spec(EXAMPLE, text=text, display="llmspec.yaml")
    assert result.errors, "the schema rejects a spec the models accept:\n" + "\n".join(complaints[:5])


CORPUS = settings(max_examples=200, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@CORPUS
@given(mutated_data_specs())
def test_schema_rejections_are_model_rejections_structural(text):
    _agrees(text)


@CORPUS
@given(mutated_text_specs())
def test_schema_rejections_are_model_rejections_textual(text):
    _agrees(text)


@pytest.mark.parametrize("edit", [
    ("llmspec: 1", "llmspec: true"),
    ("llmspec: 1", "llmspec: 1.0"),
    ("project: demo", "project: 7"),
    ("  qa:\n", "  q-a:\n"),
    ("{question: str, answer: str}", "{question: string, answer: str}"),
    ("style: chat", "style: 1"),
    ("    qa: {user: question, assistant: answer}", "    qa: {user: 1, assistant: answer}"),
])
def test_schema_and_models_agree_on_hand_picked_edits(edit):
    text = MINIMAL_SPEC.replace(*edit)
    assert text != MINIMAL_SPEC
    complaints = _schema_rejects(text)
    errors = check_spec(EXAMPLE, text=text, display="llmspec.yaml").errors
    assert bool(complaints) <= bool(errors), complaints

