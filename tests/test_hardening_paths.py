"""Class 2 of issue 13: nothing outside the project is read or written.

Links are resolved and checked against the project folder, folders reached through links are
walked once, only regular files are read; database queries only read; json_schema assertions
retrieve nothing; Axolotl's ``datasets`` copies of the data stay in the state folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llmspec.runtime.sources import read_source, source_files
from llmspec.spec.paths import resolve_files
from llmspec.spec.errors import DataError, SpecError
from llmspec.spec.load import load_spec


class Src:
    """The fields of a source spec the readers use."""

    def __init__(self, path: str, fmt: str, **extra):
        self.path, self.format, self.columns = path, fmt, None
        self.split, self.heading_level, self.query = "file", 2, None
        self.delimiter, self.header = ",", True
        self.__dict__.update(extra)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "docs" / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0 the secret\n")
    (outside / "secret.md").write_text("# secret\n")
    (outside / "rows.jsonl").write_text('{"q": "secret"}\n')
    (root / "docs" / "a.md").write_text("# A\n")
    (root / "docs" / "sub" / "b.md").write_text("# B\n")
    (root / "data" / "ok.jsonl").write_text('{"q": "fine"}\n')
    return root, outside


@pytest.mark.parametrize("make,pattern,fmt", [
    # a file link, named directly and found by a glob or a folder
    (lambda r, o: (r / "data/p.txt").symlink_to(o / "secret.txt"), "data/p.txt", "text"),
    (lambda r, o: (r / "data/p.txt").symlink_to(o / "secret.txt"), "data", "text"),
    (lambda r, o: (r / "data/p.jsonl").symlink_to(o / "rows.jsonl"), "data/*.jsonl", "jsonl"),
    # a folder link, as the named folder, inside a glob, and in the middle of a file path
    (lambda r, o: (r / "docs/ext").symlink_to(o), "docs", "markdown"),
    (lambda r, o: (r / "docs/ext").symlink_to(o), "docs/**/*.md", "markdown"),
    (lambda r, o: (r / "docs/ext").symlink_to(o), "docs/*/secret.md", "markdown"),
    (lambda r, o: (r / "ext").symlink_to(o), "ext/rows.jsonl", "jsonl"),
    (lambda r, o: (r / "ext").symlink_to(o), "ext", "text"),
    # a link to a link to the outside
    (lambda r, o: ((r / "data/hop").symlink_to(o / "secret.txt"), (r / "data/p.txt").symlink_to(r / "data/hop")),
     "data/p.txt", "text"),
])
def test_a_link_out_of_the_project_is_refused_naming_it(project, make, pattern, fmt):
    root, outside = project
    make(root, outside)
    with pytest.raises(DataError) as info:
        read_source("s", Src(pattern, fmt), root)
    text = str(info.value)
    assert "outside the project folder" in text and "error[unsafe-path]" in text
    with pytest.raises(DataError):
        source_files(Src(pattern, fmt), root)  # what plan fingerprints: no outside path reaches the lock


def test_links_inside_the_project_are_followed_and_each_real_file_read_once(project):
    root, _ = project
    (root / "docs" / "loop").symlink_to("..")  # docs/loop/docs/loop/... : 41 reads of each file before
    (root / "docs" / "again.md").symlink_to("a.md")
    (root / "docs" / "subdir-link").symlink_to("sub")
    files = resolve_files("docs", root, "markdown")
    assert [p.relative_to(root).as_posix() for p in files] == ["docs/a.md", "docs/sub/b.md"]
    batch = read_source("s", Src("docs/**/*.md", "markdown"), root)
    assert batch.rows["path"].to_list() == ["docs/a.md", "docs/sub/b.md"]


def test_an_inside_link_is_read_under_its_own_name(project):
    root, _ = project
    (root / "data" / "alias.jsonl").symlink_to("ok.jsonl")
    batch = read_source("s", Src("data/alias.jsonl", "jsonl"), root)
    assert batch.rows["q"].to_list() == ["fine"] and batch.files == ["data/alias.jsonl"]


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_file_that_is_not_regular_gets_a_clear_error(project, kind):
    root, _ = project
    path = root / "data" / "pipe.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    for pattern in ("data/pipe.jsonl", "data/*.jsonl"):
        with pytest.raises(DataError) as info:
            read_source("s", Src(pattern, "jsonl"), root)
        assert "not a regular file" in str(info.value) and "no such file" not in str(info.value)


def test_a_tests_from_link_out_of_the_project_is_refused(project):
    from llmspec.compiler.acceptance import build_suite

    root, outside = project
    (outside / "tests.jsonl").write_text('{"prompt": "hi", "expect": [{"max_chars": 5}]}\n')
    (root / "tests.jsonl").symlink_to(outside / "tests.jsonl")

    class Acceptance:
        tests, tests_from, holdout, max_new_tokens = [], "tests.jsonl", None, None

    with pytest.raises(DataError) as info:
        build_suite(Acceptance(), root, system=None)
    assert "outside the project folder" in str(info.value)


# ----------------------------------------------------------------------------- databases

SQLITE_SPEC = """\
llmspec: 1
project: demo
base_model: {{id: builtin:tiny}}
sources:
  db:
    path: data/t.db
    format: sqlite
    query: {query}
format:
  style: completion
  map:
    db: {{text: a}}
"""

WRITES = ["vacuum into '/tmp/x.db'", "attach '/tmp/x.db' as o", "select 1; attach '/tmp/x.db' as o",
          "with t as (select 1) delete from t", "pragma writable_schema = on", "select load_extension('x')",
          "create table x(a)", "select * into t2 from t", "/* hi */ insert into t values (2)"]


@pytest.mark.parametrize("query", WRITES)
def test_a_query_that_writes_or_reaches_files_is_refused_at_validate_with_its_position(write_spec, query):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(SQLITE_SPEC.format(query=json.dumps(query))))
    text = str(info.value)
    assert "llmspec.yaml:8:12: error[unsafe-query]" in text, text


@pytest.mark.parametrize("query", ["select a from t", "SELECT a, replace(a, 'x', 'y') FROM t -- drop",
                                   "with recursive c(x) as (select 1 union all select x + 1 from c where x < 3) "
                                   "select x as a from c;", "select \"update\" as a from t"])
def test_read_queries_pass_validate(write_spec, query):
    load_spec(write_spec(SQLITE_SPEC.format(query=json.dumps(query))))


@pytest.mark.parametrize("query", WRITES)
def test_the_sqlite_reader_itself_only_reads(tmp_path, query):
    db = tmp_path / "t.db"
    con = sqlite3.connect(db)
    con.execute("create table t(a)")
    con.execute("insert into t values (1)")
    con.commit()
    con.close()
    target = Path("/tmp/x.db")
    if target.exists():
        pytest.skip("/tmp/x.db exists already")
    before = db.read_bytes()
    with pytest.raises(DataError):
        read_source("db", Src("t.db", "sqlite", query=query), tmp_path)
    assert not target.exists() and db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.db"]


# ----------------------------------------------------------------------------- json_schema


@pytest.mark.parametrize("schema,why", [
    ({"$ref": "http://127.0.0.1:9/schema.json"}, "nothing is ever retrieved"),
    ({"$ref": "file:///etc/passwd"}, "nothing is ever retrieved"),
    ({"properties": {"a": {"$ref": "other.json#/x"}}}, "nothing is ever retrieved"),
    ({"$ref": "#"}, "refers back to itself"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
     "refers back to itself"),
    ({"$ref": "#/$defs/nothing"}, "points to nothing"),
    ({"$ref": "#nowhere"}, "points to nothing"),
    ({"type": "string", "pattern": "(?<=a)b"}, "look-around"),
])
def test_a_schema_that_would_retrieve_or_loop_is_a_validate_error(write_spec, minimal_spec, schema, why):
    spec = minimal_spec + ("acceptance:\n  tests:\n    - name: t\n      prompt: hi\n"
                           f"      expect: [{{json_schema: {json.dumps(schema)}}}]\n")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(spec))
    text = str(info.value)
    assert why in text and "llmspec.yaml:" in text and "Traceback" not in text


def test_local_refs_work_and_a_schema_built_elsewhere_never_retrieves(monkeypatch):
    from llmspec.runtime.acceptance.assertions import evaluate_test
    from llmspec.spec.assertions import Expectation, parse_expectation

    good = parse_expectation({"json_schema": {"$defs": {"n": {"type": "integer"}}, "type": "object",
                                              "properties": {"n": {"$ref": "#/$defs/n"},
                                                             "child": {"$ref": "#"}}}})
    assert evaluate_test([good], '{"n": 1, "child": {"n": 2}}').passed
    assert not evaluate_test([good], '{"n": 1, "child": {"n": "x"}}').passed

    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a schema reference was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for schema in ({"$ref": "http://127.0.0.1:9/s.json"}, {"$ref": "file:///etc/passwd"}, {"$ref": "#"}):
        result = evaluate_test([Expectation("json_schema", schema)], "{}").results[0]
        assert not result.passed and result.error and "cannot be used" in result.error


def test_schema_patterns_run_in_linear_time():
    import time

    from llmspec.runtime.acceptance.assertions import evaluate_test
    from llmspec.spec.assertions import parse_expectation

    exp = parse_expectation({"json_schema": {"type": "object", "properties": {"a": {"pattern": r"(\w+\s?)+$"}},
                                             "patternProperties": {r"^(\w+\s?)+$": {"type": "string"}},
                                             "additionalProperties": False}})
    start = time.perf_counter()
    outcome = evaluate_test([exp], json.dumps({"a": "a" * 3000 + "!", "b" * 3000 + "!": 1}))
    assert time.perf_counter() - start < 5 and not outcome.passed


# ----------------------------------------------------------------------------- Axolotl's datasets cache


@pytest.mark.slow
def test_training_data_copies_stay_in_the_state_folder(tmp_path):
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True)
    rows = [{"question": f"How do I reset device {i}?", "answer": f"Hold button {i} for ten seconds."}
            for i in range(24)]
    (project / "data" / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (project / "llmspec.yaml").write_text(
        "llmspec: 1\nproject: cache\nbase_model: {id: builtin:tiny}\n"
        "sources:\n  qa: {path: data/qa.jsonl, format: jsonl, columns: {question: str, answer: str}}\n"
        "format:\n  style: chat\n  map:\n    qa: {user: question, assistant: answer}\n"
        "split: {eval_fraction: 0}\n"
        "training: {method: lora, max_steps: 2, sequence_len: 64, batch: {micro: 4, accumulate: 1}, hardware: cpu}\n")
    user_cache = tmp_path / "user-datasets-cache"  # where `datasets` would write for this user
    env = {**os.environ, "HF_DATASETS_CACHE": str(user_cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1", "AXOLOTL_DO_NOT_TRACK": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "apply", "llmspec.yaml", "--yes"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    leaked = [p for p in user_cache.rglob("*") if p.is_file()] if user_cache.exists() else []
    assert leaked == []
    kept = [p for p in (project / ".llmspec" / "cache" / "datasets").rglob("*.arrow")]
    assert kept, "Axolotl's copy of the rows should be in .llmspec/cache/datasets"
    copied = b"".join(p.read_bytes() for p in kept)
    assert b"Hold button 7 for ten seconds" in copied
