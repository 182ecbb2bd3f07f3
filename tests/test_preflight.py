"""Configs Axolotl accepts but that cannot train are plan errors at the spec's line, never a
traceback at apply: a zero batch through the escape hatch, a hub model not in the local cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import cli
from llmspec.runtime.train.preflight import in_hub_cache, preflight
from llmspec.spec.errors import SpecError
from llmspec.spec.load import check_spec

SPEC = """llmspec: 1
project: demo
base_model: {model}
sources:
  qa: {{path: qa.jsonl, format: jsonl, columns: {{question: str, answer: str}}}}
format:
  style: chat
  map:
    qa: {{user: question, assistant: answer}}
training:
  hardware: cpu
  axolotl: {{{extra}}}
"""
REPO, REV = "acme/tiny-chat", "0123456789abcdef0123456789abcdef01234567"


def _write(tmp_path: Path, model: str = "{id: builtin:tiny}", extra: str = "") -> Path:
    (tmp_path / "qa.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    path = tmp_path / "llmspec.yaml"
    path.write_text(SPEC.format(model=model, extra=extra), encoding="utf-8")
    return path


@pytest.mark.parametrize("key", ["micro_batch_size", "gradient_accumulation_steps"])
def test_zero_batch_through_the_escape_hatch_is_a_plan_error_at_its_line(tmp_path, key):
    path = _write(tmp_path, extra=f"{key}: 0")
    (diag,) = preflight(check_spec(path))
    assert diag.code == "cannot-train" and f"training.axolotl.{key} is 0" in diag.message
    assert (diag.pos.line, diag.pos.col) == (12, 13 + len(key) + 2)
    result = CliRunner().invoke(cli, ["plan", str(path)])  # the CLI's main() renders what reaches it
    assert isinstance(result.exception, SpecError) and "error[cannot-train]" in result.exception.diagnostics[0].render()


def _fake_cache(root: Path) -> None:
    """A hub cache holding REPO at REV, laid out as huggingface_hub writes it."""
    folder = root / f"models--{REPO.replace('/', '--')}"
    (folder / "snapshots" / REV).mkdir(parents=True)
    (folder / "snapshots" / REV / "config.json").write_text("{}", encoding="utf-8")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REV, encoding="utf-8")


def test_hub_model_missing_from_the_cache_is_a_plan_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    path = _write(tmp_path, model=f"{{id: {REPO}, revision: {REV}}}")
    (diag,) = preflight(check_spec(path))
    assert diag.code == "model-not-cached" and diag.pos.line == 3 and REPO in diag.message
    assert f"huggingface-cli download {REPO} --revision {REV}" in diag.hint
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert isinstance(result.exception, SpecError) and result.exception.diagnostics[0].code == "model-not-cached"

    _fake_cache(cache)
    assert in_hub_cache(REPO, REV) and in_hub_cache(REPO, None)
    assert preflight(check_spec(path)) == []
    assert not in_hub_cache(REPO, "f" * 40)  # another revision is another model


def test_local_and_builtin_models_need_no_cache(tmp_path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    assert preflight(check_spec(_write(tmp_path, model="{id: ./models/mine}"))) == []
    assert preflight(check_spec(_write(tmp_path))) == []
