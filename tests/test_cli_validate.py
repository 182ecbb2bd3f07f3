"""`llmspec validate` as users and pre-commit run it: a real subprocess, exit codes, output forms,
hostile files, and no heavy imports on the way."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINIMAL_SPEC, REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "support-bot" / "llmspec.yaml"
LINE = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[a-z0-9-]+)\]: .+$")
HEAVY = ("polars", "numba", "torch", "transformers", "axolotl")


def llmspec(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=60)
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream and "internal error" not in stream, stream
    return proc


def diagnostic_lines(text: str) -> list[re.Match]:
    return [m for m in map(LINE.match, text.splitlines()) if m]


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good" / "llmspec.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL_SPEC, encoding="utf-8")
    return path


@pytest.fixture
def bad(tmp_path) -> Path:
    path = tmp_path / "bad" / "llmspec.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL_SPEC.replace("format: jsonl", "format: jsonlines")
                    + "trainig: {}\ntraining:\n  learning_rate: 0\n", encoding="utf-8")
    return path


def test_valid_file_exits_0(good):
    proc = llmspec("validate", good, cwd=good.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "llmspec.yaml: ok"
    assert proc.stderr == ""


def test_example_spec_is_valid():
    proc = llmspec("validate", EXAMPLE, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "examples/support-bot/llmspec.yaml: ok"


def test_invalid_file_exits_1_with_path_line_col(bad):
    proc = llmspec("validate", bad, cwd=bad.parent)
    assert proc.returncode == 1
    found = diagnostic_lines(proc.stderr)
    assert [(m["path"], m["code"]) for m in found] == [
        ("llmspec.yaml", "invalid-value"), ("llmspec.yaml", "unknown-key"), ("llmspec.yaml", "out-of-range")]
    text = bad.read_text().splitlines()
    assert [int(m["line"]) for m in found] == [i + 1 for i, line in enumerate(text)
                                              if "jsonlines" in line or "trainig" in line or "rate: 0" in line]
    assert "  hint: did you mean 'training'?" in proc.stderr.splitlines()
    assert "ok" not in proc.stdout


def test_several_files_report_every_error_of_every_file(good, bad, tmp_path):
    other = tmp_path / "other.llmspec.yaml"
    other.write_text(MINIMAL_SPEC.replace("project: demo", "project: Demo Project"), encoding="utf-8")
    proc = llmspec("validate", bad, good, other, cwd=tmp_path)
    assert proc.returncode == 1
    paths = [m["path"] for m in diagnostic_lines(proc.stderr)]
    assert paths == ["bad/llmspec.yaml"] * 3 + ["other.llmspec.yaml"]
    assert "good/llmspec.yaml: ok" in proc.stdout
    assert "1 of 3 files valid" in proc.stderr


def test_all_valid_files_exit_0(good, tmp_path):
    second = tmp_path / "second.llmspec.yaml"
    second.write_text(MINIMAL_SPEC, encoding="utf-8")
    proc = llmspec("validate", good, second, cwd=tmp_path)
    assert proc.returncode == 0
    assert "2 of 2 files valid" in proc.stdout


def test_quiet_prints_only_errors(good, bad, tmp_path):
    warned = tmp_path / "warned.llmspec.yaml"  # an unpinned hub model is a warning, not an error
    warned.write_text(MINIMAL_SPEC.replace("builtin:tiny", "org/model"), encoding="utf-8")
    assert "warning[unpinned-model]" in llmspec("validate", warned, cwd=tmp_path).stderr

    proc = llmspec("validate", "-q", good, warned, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = llmspec("validate", "--quiet", good, bad, warned, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(diagnostic_lines(proc.stderr)) == 3
    assert all(LINE.match(x) or x.startswith("  hint: ") for x in lines)
    assert all(m["sev"] == "error" for m in diagnostic_lines(proc.stderr))


def test_json_format_is_a_list_with_positions(good, bad, tmp_path):
    proc = llmspec("validate", "--format", "json", good, bad, cwd=tmp_path)
    assert proc.returncode == 1
    items = json.loads(proc.stdout)
    assert isinstance(items, list) and len(items) == 3
    for item in items:
        assert {"code", "line", "col", "path", "message", "severity", "hint"} <= set(item)
        assert isinstance(item["line"], int) and isinstance(item["col"], int)
        assert item["path"] == "bad/llmspec.yaml"
    assert [i["code"] for i in items] == ["invalid-value", "unknown-key", "out-of-range"]
    assert "error[" not in proc.stderr


def test_json_format_of_a_valid_file_is_an_empty_list(good):
    proc = llmspec("validate", "--format", "json", good, cwd=good.parent)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == []


def _billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "binary": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
    "not-utf8": b"llmspec: 1\nproject: caf\xe9\n",
    "billion-laughs": _billion_laughs().encode(),
    "deep-nesting": ("llmspec: 1\nproject: " + "[" * 50_000 + "]" * 50_000 + "\n").encode(),
    "deep-block": "".join(" " * i + "k:\n" for i in range(3000)).encode(),
    "python-tag": b"llmspec: !!python/object/apply:os.system [echo pwned]\n",
    "empty": b"",
    "list": b"- a\n- b\n",
    "tabs": b"llmspec: 1\nsources:\n\tqa: {}\n",
    "huge-int": ("llmspec: " + "9" * 10_000 + "\n").encode(),
    "nul": b"llmspec: 1\x00\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_give_diagnostics_not_tracebacks(tmp_path, name):
    path = tmp_path / "llmspec.yaml"
    path.write_bytes(HOSTILE[name])
    for fmt in ("text", "json"):
        proc = llmspec("validate", "--format", fmt, path, cwd=tmp_path)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        if fmt == "text":
            found = diagnostic_lines(proc.stderr)
            assert found and found[0]["path"] == "llmspec.yaml", proc.stderr
        else:
            items = json.loads(proc.stdout)
            assert items and all(i["code"] and i["line"] for i in items)


def test_directory_is_a_diagnostic(tmp_path):
    proc = llmspec("validate", tmp_path, cwd=tmp_path)
    assert proc.returncode == 1
    assert "error[file-not-found]" in proc.stderr and "directory" in proc.stderr


def test_missing_file_is_a_diagnostic_and_other_files_still_run(good, tmp_path):
    proc = llmspec("validate", tmp_path / "nope.yaml", good, cwd=tmp_path)
    assert proc.returncode == 1
    assert "nope.yaml: error[file-not-found]" in proc.stderr
    assert "good/llmspec.yaml: ok" in proc.stdout


def test_no_files_is_a_usage_error():
    proc = llmspec("validate")
    assert proc.returncode == 2
    assert "Usage:" in proc.stderr


def test_validate_imports_nothing_heavy(tmp_path):
    out = tmp_path / "modules.json"
    code = (
        "import json, sys\n"
        "from llmspec.cli import main\n"
        f"sys.argv = ['llmspec', 'validate', {str(EXAMPLE)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    status = exc.code\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'status': status, 'modules': sorted(sys.modules)}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == 0
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert "pydantic" in loaded and "llmspec" in loaded  # it did validate
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
