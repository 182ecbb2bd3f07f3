"""`llmspec clean`, `llmspec compile` and `apply` are one pipeline stopped at different stages.

Each command runs in its own copy of the project (its own `.llmspec/`), so nothing is shared
between them but the code: the kept/rejected counts, the dataset files and the Axolotl config
must still agree, byte for byte once the folders are named alike. A `length: {max_tokens}`
rule makes the cleaning depend on the base model's tokenizer, which apply once skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from test_axolotl_config import STYLE_MAPS, write_project

pytestmark = pytest.mark.slow

LLMSPEC = [sys.executable, "-m", "llmspec.cli"]


def _llmspec(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(LLMSPEC + args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"llmspec {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _project(root: Path, style: str) -> Path:
    spec_path = write_project(root, style)
    yaml = YAML(typ="safe", pure=True)
    spec = yaml.load(spec_path.read_text())
    # Token bounds: short enough that some rows go, counted with the tiny model's tokenizer.
    with open(root / "data" / "tickets.jsonl", "a") as fh:
        for i in range(4):
            fh.write(json.dumps({"question": f"Router {i} drops wifi, anything else to try?",
                                 "answer": "Move it away from the microwave and restart it, then check the cable, "
                                           f"update the firmware and call us if it still drops ({i})."}) + "\n")
    # Tiny-tokenizer lengths: ~24 tokens for the usual answer, ~49 for the four long ones.
    spec["quality"]["rules"].append({"length": {"name": "short-enough", "sources": ["tickets"],
                                                "columns": ["answer"], "max_tokens": 36}})
    spec["training"].update({"max_steps": 1, "epochs": 1})
    spec["acceptance"] = {"max_new_tokens": 4, "tests": [{"name": "anything", "prompt": "Hi",
                                                         "expect": [{"max_chars": 10000}]}]}
    with open(spec_path, "w") as fh:
        yaml.dump(spec, fh)
    return spec_path


def _normalised_config(text: str, folders: dict[str, Path]) -> str:
    for name, folder in sorted(folders.items(), key=lambda kv: -len(str(kv[1]))):
        text = text.replace(str(folder), f"<{name}>")
    return text


@pytest.mark.parametrize("style", sorted(STYLE_MAPS))
def test_clean_compile_and_apply_agree(style, tmp_path):
    pytest.importorskip("axolotl")
    env = {**os.environ, "LLMSPEC_CACHE_DIR": str(tmp_path / "cache")}
    base = tmp_path / "base"
    _project(base, style)
    copies = {}
    for name in ("clean", "compile", "apply"):
        copies[name] = tmp_path / name
        shutil.copytree(base, copies[name])

    cleaned = json.loads(_llmspec(["clean", "llmspec.yaml", "--json"], copies["clean"], env).stdout)
    _llmspec(["compile", "llmspec.yaml", "--out", "out"], copies["compile"], env)
    _llmspec(["apply", "llmspec.yaml", "--yes"], copies["apply"], env)

    compiled = json.loads((copies["compile"] / "out" / "plan.json").read_text())
    state = json.loads((copies["apply"] / ".llmspec" / "state.json").read_text())
    applied = {sid.split(".", 1)[1]: rec["outputs"] for sid, rec in state["stages"].items() if sid.startswith("clean.")}
    for source, counts in cleaned["sources"].items():
        # The tokenizer-counted rule rejected rows in every command alike (and did reject some).
        assert counts["rejected"] == compiled["clean"][source]["rejected"] == applied[source]["rejected"], source
        assert counts["rows_kept"] == compiled["clean"][source]["rows_kept"] == applied[source]["rows_kept"]
    assert sum(c["rejected"].get("short-enough", 0) for c in cleaned["sources"].values()) > 0

    dataset_dir = copies["apply"] / ".llmspec" / state["stages"]["dataset"]["outputs"]["dir"]
    for name in ("train.jsonl", "eval.jsonl", "origins.jsonl"):
        ours, theirs = copies["compile"] / "out" / "data" / name, dataset_dir / name
        assert ours.exists() == theirs.exists(), name
        if ours.exists():
            assert ours.read_bytes() == theirs.read_bytes(), name

    train_dir = copies["apply"] / ".llmspec" / state["stages"]["train"]["outputs"]["dir"]
    work_dir = copies["apply"] / ".llmspec" / "work" / train_dir.name  # where it was built, then renamed
    trained_with = _normalised_config((train_dir / "axolotl.yaml").read_text(),
                                      {"dataset": dataset_dir, "work": work_dir})
    written = _normalised_config((copies["compile"] / "out" / "axolotl.yaml").read_text(),
                                 {"dataset": copies["compile"] / "out" / "data", "work": copies["compile"] / "out"})
    assert written == trained_with
    assert "llmspec.runtime.train.axolotl_plugin.LlmspecPlugin" in written  # once missing from compile's file
