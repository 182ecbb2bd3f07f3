"""Secrets given as ${env:NAME} never appear in plan output, state, lock, logs or reports.

A real PostgreSQL source (the server `.ci/postgres.sh` starts) is applied end to end with
real training; afterwards every file llmspec wrote is searched for the password and URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

URL = os.environ.get("LLMSPEC_TEST_POSTGRES_URL")
LLMSPEC = [sys.executable, "-m", "llmspec.cli"]

SPEC = """\
llmspec: 1
project: secret-bot
base_model: {id: builtin:tiny}
sources:
  crm:
    format: postgres
    url: ${env:CRM_URL}
    query: select question, answer from llmspec_secret_faq order by id
quality:
  rules:
    - require: {columns: [question, answer]}
format:
  style: chat
  map:
    crm: {user: question, assistant: answer}
split: {eval_fraction: 0.0}
training: {method: lora, learning_rate: 0.002, max_steps: 2, sequence_len: 64, batch: {micro: 4, accumulate: 1}, hardware: cpu}
acceptance:
  max_new_tokens: 4
  tests:
    - {name: anything, prompt: hello, expect: [{max_chars: 1000}]}
"""


@pytest.fixture
def crm_table():
    if not URL:
        pytest.skip("LLMSPEC_TEST_POSTGRES_URL is not set (.ci/postgres.sh starts a server and sets it)")
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("drop table if exists llmspec_secret_faq")
        conn.execute("create table llmspec_secret_faq (id serial primary key, question text, answer text)")
        for i in range(24):
            conn.execute("insert into llmspec_secret_faq (question, answer) values (%s, %s)",
                         (f"How do I reset device {i}?", "Hold the reset button for 10 seconds."))
    yield URL


def test_secret_never_written(tmp_path, crm_table):
    from urllib.parse import urlsplit

    password = urlsplit(crm_table).password
    assert password, "the test server URL carries a password"
    (tmp_path / "llmspec.yaml").write_text(SPEC)
    env = {**os.environ, "CRM_URL": crm_table}
    outputs = []
    for args in (["plan", "llmspec.yaml"], ["plan", "llmspec.yaml", "--format", "json"],
                 ["apply", "llmspec.yaml", "--yes"], ["status", "llmspec.yaml", "--json"]):
        proc = subprocess.run(LLMSPEC + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    state = json.loads((tmp_path / ".llmspec/state.json").read_text())
    assert state["runs"][-1]["outcome"] == "promoted"
    assert "${env:CRM_URL}" in json.dumps(state["stages"]["sources.crm"]["config"])
    for text in outputs:
        assert password not in text and crm_table not in text
    leaks = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if password.encode() in data or crm_table.encode() in data:
                leaks.append(str(path.relative_to(tmp_path)))
    assert not leaks, f"the secret was written to: {leaks}"
    lock = json.loads((tmp_path / "llmspec.lock").read_text())
    assert list(lock["sources"]["crm"]["files"]) == ["query-result"]
    # A database is re-read on every apply; unchanged rows rebuild nothing after it.
    again = subprocess.run(LLMSPEC + ["apply", "llmspec.yaml", "--yes"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    last = json.loads((tmp_path / ".llmspec/state.json").read_text())["runs"][-1]
    assert last["built"] == ["sources.crm"], last


def test_missing_env_variable_is_a_clear_error(tmp_path, crm_table):
    (tmp_path / "llmspec.yaml").write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if k != "CRM_URL"}
    proc = subprocess.run(LLMSPEC + ["apply", "llmspec.yaml", "--yes"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert "CRM_URL" in proc.stderr and "Traceback" not in proc.stderr
