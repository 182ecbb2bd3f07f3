"""Built-in recipes: each one validates under a minimal spec and lands where it says, the
CUDA presets compile to configs Axolotl itself accepts, and `llmspec recipes` lists them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from llmspec.spec.load import check_spec
from llmspec.spec.recipes import builtin_recipes, recipe_description

RECIPES = builtin_recipes()
MINIMAL = """\
llmspec: 1
project: recipe-check
extends: [recipe:{name}]
base_model: {{id: meta-llama/Llama-3.1-8B-Instruct, revision: 0e9e39f249a16976918f6564b8830bc894c89659}}
sources:
  rows: {{path: data/rows.jsonl, format: jsonl, columns: {{question: str, answer: str}}}}
format:
  style: chat
  map: {{rows: {{user: question, assistant: answer}}}}
"""


def _recipe_data(name: str) -> dict:
    return YAML(typ="safe", pure=True).load(RECIPES[name])


def _load(tmp_path: Path, name: str):
    path = tmp_path / "llmspec.yaml"
    path.write_text(MINIMAL.format(name=name), encoding="utf-8")
    return check_spec(path)


def _subset(expected, actual) -> list[str]:
    """Paths where `expected` (a recipe's YAML) differs from `actual` (the merged spec's dump)."""
    if isinstance(expected, dict):
        return [p for k, v in expected.items() for p in
                (_subset(v, actual.get(k)) if isinstance(actual, dict) else [f"{k}: missing"])]
    if isinstance(expected, float) or isinstance(actual, float):
        return [] if actual is not None and abs(float(expected) - float(actual)) < 1e-12 else [f"{expected} != {actual}"]
    return [] if expected == actual else [f"{expected!r} != {actual!r}"]


def test_the_promised_recipes_ship():
    assert {"lora-small", "instruction-hygiene", "support-email", "qlora-7b-1gpu", "full-8gpu-fsdp"} <= set(RECIPES)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_says_when_to_use_it(name):
    assert RECIPES[name].startswith("#"), f"recipes/{name}.yaml must open with its comment block"
    assert len(recipe_description(RECIPES[name]).split()) >= 12


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_validates_under_a_minimal_spec_and_lands(tmp_path, name):
    loaded = _load(tmp_path, name)
    assert not loaded.errors, [d.render() for d in loaded.errors]
    recipe = _recipe_data(name)
    dumped = loaded.spec.model_dump(mode="python")
    if "training" in recipe:
        assert _subset(recipe["training"], dumped["training"]) == []
    if "quality" in recipe:
        kinds = [next(iter(r)) for r in recipe["quality"]["rules"]]
        merged = [next(k for k, v in r.items() if v is not None) for r in dumped["quality"]["rules"]]
        assert merged[: len(kinds)] == kinds


def test_hardware_presets_are_what_their_names_say(tmp_path):
    qlora = _load(tmp_path, "qlora-7b-1gpu").spec.training
    assert (qlora.method, qlora.hw.type, qlora.hw.gpus, qlora.sequence_len) == ("qlora", "cuda", 1, 4096)
    assert (qlora.batch.micro, qlora.batch.accumulate, qlora.lora.r, qlora.lora.alpha) == (2, 8, 16, 32)
    assert (qlora.learning_rate, qlora.epochs) == (2.0e-4, 2)
    full = _load(tmp_path, "full-8gpu-fsdp").spec.training
    assert (full.method, full.hw.type, full.hw.gpus, full.hw.strategy) == ("full", "cuda", 8, "fsdp")


def test_the_spec_overrides_a_recipe(tmp_path):
    path = tmp_path / "llmspec.yaml"
    path.write_text(MINIMAL.format(name="qlora-7b-1gpu") + "training: {learning_rate: 1.0e-4, epochs: 1}\n")
    t = check_spec(path).spec.training
    assert (t.learning_rate, t.epochs, t.method) == (1.0e-4, 1, "qlora")


CUDA_PRESETS = sorted(n for n in RECIPES if isinstance(_recipe_data(n).get("training", {}).get("hardware"), dict)
                      and _recipe_data(n)["training"]["hardware"].get("type") == "cuda")


def test_cuda_presets_found():
    assert {"qlora-7b-1gpu", "full-8gpu-fsdp"} <= set(CUDA_PRESETS)


@pytest.mark.parametrize("name", CUDA_PRESETS)
def test_cuda_preset_compiles_to_a_config_axolotl_accepts(tmp_path, name):
    compiler = pytest.importorskip("llmspec.compiler.axolotl_config", reason="the Axolotl compiler is not built")
    formatting = pytest.importorskip("llmspec.compiler.formatting", reason="the format compiler is not built")
    check = pytest.importorskip("llmspec.runtime.train.axolotl_check", reason="the Axolotl check is not built")
    if not check.axolotl_available():
        pytest.skip("axolotl is not installed (the [train] extra)")
    loaded = _load(tmp_path, name)
    spec = loaded.spec
    compiled = compiler.compile_axolotl_config(
        spec, model_path=spec.base_model.id,
        dataset={"train": str(tmp_path / "train.jsonl"), "eval": str(tmp_path / "eval.jsonl")},
        run_dir=tmp_path / "run", format_plan=formatting.compile_format(spec.format, None, locate=loaded.locate),
        hardware=compiler.resolve_hardware(spec.training.hw))
    assert compiled.hardware == "cuda"
    assert check.validate_axolotl_config(compiled, loaded.locate) == []
    cfg = compiled.config
    if spec.training.method == "qlora":
        assert (cfg["adapter"], cfg["load_in_4bit"]) == ("qlora", True)
    if spec.training.hw.gpus > 1:
        assert compiled.launcher[-2:] == ["--num_processes", str(spec.training.hw.gpus)]
    if spec.training.hw.strategy == "fsdp":
        assert cfg["fsdp_version"] == 2 and "fsdp_config" in cfg


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmspec.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_recipes_command_lists_every_recipe_with_its_description():
    out = _cli("recipes")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(RECIPES)
    for line, (name, text) in zip(lines, RECIPES.items()):
        assert line == f"recipe:{name}\t{recipe_description(text)}"
