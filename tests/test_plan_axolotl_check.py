"""`plan` runs Axolotl's own config check when training will run, mapped to the spec line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("axolotl", path=str(Path(sys.executable).parent)) is None,
                    reason="axolotl is not installed (the [train] extra)")
def test_plan_reports_axolotl_schema_errors_at_the_spec_line(tmp_path):
    shutil.copytree(REPO / "examples/support-bot/data", tmp_path / "data")
    text = (REPO / "examples/support-bot/llmspec.yaml").read_text()
    text = text.replace("  seed: 42\n", "  seed: 42\n  axolotl: {micro_batch_size: eight}\n", 1)
    (tmp_path / "llmspec.yaml").write_text(text)
    line = text.splitlines().index("  axolotl: {micro_batch_size: eight}") + 1
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "plan", "llmspec.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"llmspec.yaml:{line}:" in proc.stderr and "error[axolotl-config]" in proc.stderr
    assert "micro_batch_size" in proc.stderr
    assert "torchao" not in proc.stderr and "Traceback" not in proc.stderr
