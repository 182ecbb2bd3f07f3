"""Shared fixtures. Keep this small: helpers used by one test file belong in that file."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The smallest spec the models accept: every test of an error starts from it and breaks one thing.
MINIMAL_SPEC = """\
llmspec: 1
project: demo
base_model: {id: builtin:tiny}
sources:
  qa:
    path: data/qa.jsonl
    format: jsonl
    columns: {question: str, answer: str}
format:
  style: chat
  map:
    qa: {user: question, assistant: answer}
"""


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def minimal_spec() -> str:
    return MINIMAL_SPEC


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="llmspec.yaml", files={sibling: text}) -> the spec's path in tmp_path."""

    def write(text: str | bytes, name: str = "llmspec.yaml", files: dict[str, str] | None = None) -> Path:
        for other, content in (files or {}).items():
            (tmp_path / other).write_text(content, encoding="utf-8")
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write
