"""`llmspec clean` fails early on a source's volume checks (expect:), like apply does."""

import subprocess
import sys


def test_clean_enforces_min_rows(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/t.jsonl").write_text('{"q": "a", "a": "b"}\n{"q": "c", "a": "d"}\n')
    (tmp_path / "llmspec.yaml").write_text(
        "llmspec: 1\nproject: p\nbase_model: {id: builtin:tiny}\n"
        "sources:\n  t: {path: data/t.jsonl, format: jsonl, expect: {min_rows: 1000}}\n"
        "format:\n  style: chat\n  map:\n    t: {user: q, assistant: a}\n")
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "clean", "llmspec.yaml", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "llmspec.yaml:5:" in proc.stderr and "min_rows" in proc.stderr and "Traceback" not in proc.stderr
