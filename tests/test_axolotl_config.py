"""training: -> Axolotl config, judged by Axolotl 0.19's own validation; errors map back to spec lines."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmspec.runtime.train.config_file import write_training_config
from llmspec.compiler.axolotl_config import (
    DEEPSPEED_CONFIGS, LORA_KERNEL_KEYS, OFFLINE_ENV, compile_axolotl_config, dump_yaml, resolve_hardware,
)
from llmspec.compiler.formatting import compile_format
from llmspec.runtime.train.axolotl_check import validate_axolotl_config
from llmspec.spec.models import ProjectSpec

MAPS = {
    "chat": {"faq": {"user": "question", "assistant": "answer"}},
    "alpaca": {"faq": {"instruction": "question", "output": "answer"}},
    "completion": {"faq": {"text": "{{ question }}\n{{ answer }}"}},
    "input_output": {"faq": {"segments": [{"text": "{{ question }}\n", "train": False},
                                          {"text": "answer", "train": True}]}},
}
HARDWARE = {
    "cpu": "cpu",
    "cuda-1": {"type": "cuda"},
    "cuda-8-fsdp": {"type": "cuda", "gpus": 8, "strategy": "fsdp"},
    "cuda-8-zero3": {"type": "cuda", "gpus": 8, "strategy": "deepspeed-zero3"},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from llmspec.runtime.models.tinymodel import resolve_builtin

    return str(resolve_builtin("builtin:tiny", cache_dir=tmp_path_factory.mktemp("cache")))


def make_spec(style="chat", method="lora", hardware="cpu", **training) -> ProjectSpec:
    return ProjectSpec.model_validate({
        "llmspec": 1, "project": "demo", "base_model": {"id": "builtin:tiny"},
        "sources": {"faq": {"format": "jsonl", "path": "faq.jsonl"}},
        "format": {"style": style, "map": MAPS[style]},
        "training": {"method": method, "hardware": hardware, **training},
    })


def compile_for(spec: ProjectSpec, model: str, run_dir: Path, *, hardware: str | None = None, eval_file=True):
    hw = hardware or ("cpu" if spec.training.hw.type == "cpu" else "cuda")
    data = {"train": str(run_dir / "data" / "train.jsonl")}
    if eval_file:
        data["eval"] = str(run_dir / "data" / "eval.jsonl")
    return compile_axolotl_config(spec, model_path=model, dataset=data, run_dir=run_dir,
                                  format_plan=compile_format(spec.format), hardware=hw)


# ----------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("style", sorted(MAPS))
@pytest.mark.parametrize("hw", sorted(HARDWARE))
@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_every_compiled_config_passes_axolotl_validation(method, hw, style, tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    if method == "qlora" and hw == "cpu":
        # Invalid by design: bitsandbytes 4-bit needs CUDA; the spec itself refuses the pair.
        with pytest.raises(Exception, match="qlora needs a CUDA GPU"):
            make_spec(style, method, HARDWARE[hw])
        pytest.skip("qlora on cpu is refused by the spec (bitsandbytes 4-bit needs CUDA)")
    compiled = compile_for(make_spec(style, method, HARDWARE[hw]), tiny_model, tmp_path)
    assert validate_axolotl_config(compiled, lambda path: None) == []


# ----------------------------------------------------------------------------- contents


def test_cpu_config_turns_off_gpu_only_features(tiny_model, tmp_path):
    cfg = compile_for(make_spec(), tiny_model, tmp_path).config
    assert (cfg["bf16"], cfg["fp16"], cfg["tf32"]) == (False, False, False)
    assert cfg["attn_implementation"] == "sdpa" and cfg["sample_packing"] is False
    assert all(cfg[k] is False for k in LORA_KERNEL_KEYS)
    assert "flash_attention" not in cfg and "fsdp_config" not in cfg and "deepspeed" not in cfg


def test_core_keys_come_from_the_spec(tiny_model, tmp_path):
    spec = make_spec(learning_rate=1e-4, epochs=2, sequence_len=512, batch={"micro": 4, "accumulate": 2},
                     lora={"r": 8, "alpha": 16, "dropout": 0.1, "target": ["q_proj", "v_proj"]},
                     scheduler="linear", warmup={"steps": 5}, seed=9, eval_every=10, save_every=20)
    cfg = compile_for(spec, tiny_model, tmp_path).config
    expected = {"base_model": tiny_model, "learning_rate": 1e-4, "num_epochs": 2, "sequence_len": 512,
                "micro_batch_size": 4, "gradient_accumulation_steps": 2, "adapter": "lora", "lora_r": 8,
                "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["q_proj", "v_proj"],
                "lr_scheduler": "linear", "warmup_steps": 5, "seed": 9, "eval_steps": 10, "save_steps": 20,
                "logging_steps": 1, "val_set_size": 0.0, "train_on_inputs": False, "chat_template": "tokenizer_default"}
    assert {k: cfg[k] for k in expected} == expected
    assert "warmup_ratio" not in cfg and "lora_target_linear" not in cfg
    assert cfg["datasets"] == [{"path": str(tmp_path / "data" / "train.jsonl"), "type": "chat_template",
                                "ds_type": "json", "split": "train", "field_messages": "messages",
                                "message_property_mappings": {"content": "content", "role": "role"},
                                "roles_to_train": ["assistant"], "train_on_eos": "turn"}]
    assert cfg["test_datasets"][0]["path"] == str(tmp_path / "data" / "eval.jsonl")
    assert Path(cfg["output_dir"]).parent == tmp_path and Path(cfg["dataset_prepared_path"]).parent == tmp_path


def test_no_eval_file_means_no_eval_in_the_config(tiny_model, tmp_path):
    cfg = compile_for(make_spec(), tiny_model, tmp_path, eval_file=False).config
    assert "test_datasets" not in cfg and "evals_per_epoch" not in cfg and "eval_steps" not in cfg
    assert cfg["val_set_size"] == 0.0


def test_qlora_loads_in_4bit_and_full_has_no_adapter(tiny_model, tmp_path):
    q = compile_for(make_spec(method="qlora", hardware={"type": "cuda"}), tiny_model, tmp_path).config
    assert q["adapter"] == "qlora" and q["load_in_4bit"] is True
    full = compile_for(make_spec(method="full"), tiny_model, tmp_path).config
    assert "adapter" not in full and "lora_r" not in full


def test_cuda_single_gpu(tiny_model, tmp_path):
    c = compile_for(make_spec(hardware={"type": "cuda"}), tiny_model, tmp_path)
    assert c.config["bf16"] == "auto" and c.config["attn_implementation"] == "flash_attention_2"
    assert c.config["sample_packing"] is True
    assert c.launcher == ["axolotl", "train", str(tmp_path / "axolotl.yaml")]


def test_fsdp2_on_eight_gpus_with_accelerate_launch(tiny_model, tmp_path):
    c = compile_for(make_spec(hardware=HARDWARE["cuda-8-fsdp"]), tiny_model, tmp_path)
    assert c.config["fsdp_version"] == 2
    assert c.config["fsdp_config"]["transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert c.config["fsdp_config"]["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert c.launcher == ["axolotl", "train", str(tmp_path / "axolotl.yaml"), "--launcher", "accelerate", "--",
                          "--num_processes", "8"]
    q = compile_for(make_spec(method="qlora", hardware=HARDWARE["cuda-8-fsdp"]), tiny_model, tmp_path / "q")
    assert q.config["fsdp_config"]["cpu_ram_efficient_loading"] is False


def test_deepspeed_json_is_written_into_the_run_dir(tiny_model, tmp_path):
    c = compile_for(make_spec(hardware=HARDWARE["cuda-8-zero3"]), tiny_model, tmp_path)
    ds = Path(c.config["deepspeed"])
    assert ds.parent == tmp_path and not ds.exists()
    write_training_config(c)
    content = json.loads(ds.read_text())
    assert content == DEEPSPEED_CONFIGS["deepspeed-zero3"] and content["zero_optimization"]["stage"] == 3
    assert (tmp_path / "axolotl.yaml").exists() and "--num_processes" in c.launcher


def test_raw_axolotl_keys_merge_last_and_remember_their_origin(tiny_model, tmp_path):
    c = compile_for(make_spec(axolotl={"learning_rate": 5e-5, "neftune_noise_alpha": 5}), tiny_model, tmp_path)
    assert c.config["learning_rate"] == 5e-5 and c.config["neftune_noise_alpha"] == 5
    assert c.origins["learning_rate"] == ("training", "axolotl", "learning_rate")
    assert c.origins["lora_r"] == ("training", "lora", "r")
    assert c.origins["micro_batch_size"] == ("training", "batch", "micro")
    assert c.env == OFFLINE_ENV and c.env["HF_HUB_OFFLINE"] == "1"


def test_yaml_is_stable_and_round_trips(tiny_model, tmp_path):
    from ruamel.yaml import YAML

    a = compile_for(make_spec(), tiny_model, tmp_path).to_yaml()
    b = compile_for(make_spec(), tiny_model, tmp_path).to_yaml()
    assert a == b and a.startswith("base_model: ")
    assert YAML(typ="safe").load(a) == compile_for(make_spec(), tiny_model, tmp_path).config
    assert dump_yaml({"z": 1, "base_model": "m", "a": {"y": 1, "b": 2}}) == "base_model: m\na:\n  b: 2\n  y: 1\nz: 1\n"


def test_explicit_hardware_never_imports_torch():
    code = ("import sys; from llmspec.compiler.axolotl_config import resolve_hardware;"
            "assert resolve_hardware('cpu') == 'cpu' and resolve_hardware('cuda') == 'cuda';"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert resolve_hardware("auto") in ("cpu", "cuda")


def test_auto_hardware_without_a_driver_never_imports_torch():
    # no CUDA driver (this is how a GPU-less Linux machine looks): cpu, and torch's import
    # (seconds, ~600 MiB) is not paid by every plan; with a driver torch is asked as before
    code = ("import sys, ctypes; import llmspec.compiler.axolotl_config as ac;"
            "ac.cuda_driver_present = lambda: False;"
            "assert ac.resolve_hardware('auto') == 'cpu';"
            "assert 'torch' not in sys.modules, 'torch imported';"
            "ac.cuda_driver_present = lambda: True;"
            "got = ac.resolve_hardware('auto');"
            "import importlib.util;"
            "assert ('torch' in sys.modules) == (importlib.util.find_spec('torch') is not None), 'torch not asked'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- errors -> spec lines


SPEC = textwrap.dedent("""\
    llmspec: 1
    project: demo
    base_model:
      id: builtin:tiny
    sources:
      faq:
        path: faq.jsonl
        format: jsonl
    format:
      style: chat
      map:
        faq: {user: question, assistant: answer}
    training:
      method: lora
      lora:
        target: [q_proj, v_proj]
      hardware: cpu
      axolotl:
        lr_scheduler_kwargs: 5
    """)


def test_axolotl_errors_point_at_the_spec_line_that_set_the_value(tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    from llmspec.api import load_spec

    (tmp_path / "faq.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (tmp_path / "llmspec.yaml").write_text(SPEC)
    loaded = load_spec(tmp_path / "llmspec.yaml")
    compiled = compile_for(loaded.spec, tiny_model, tmp_path / "run")
    (diag,) = validate_axolotl_config(compiled, loaded.locate)
    # A field error on a raw key: the raw key's own line.
    assert diag.code == "axolotl-config" and (diag.pos.line, diag.pos.col) == (19, 26)
    assert "lr_scheduler_kwargs" in diag.message and "training.axolotl" in diag.message
    assert diag.pos.path.endswith("llmspec.yaml")


def test_model_level_errors_are_traced_by_the_key_they_name(tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    from llmspec.api import load_spec

    (tmp_path / "faq.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (tmp_path / "llmspec.yaml").write_text(SPEC.replace("  axolotl:\n    lr_scheduler_kwargs: 5\n", "")
                                           .replace("[q_proj, v_proj]", '[q_proj, "v_proj("]'))
    loaded = load_spec(tmp_path / "llmspec.yaml")
    (diag,) = validate_axolotl_config(compile_for(loaded.spec, tiny_model, tmp_path / "run"), loaded.locate)
    assert "invalid regex" in diag.message and "training.lora.target" in diag.message
    assert diag.pos.line == 16  # `target: [q_proj, "v_proj("]`

    (tmp_path / "llmspec.yaml").write_text(SPEC.replace("lr_scheduler_kwargs: 5", "warmup_steps: 10"))
    loaded = load_spec(tmp_path / "llmspec.yaml")
    (diag,) = validate_axolotl_config(compile_for(loaded.spec, tiny_model, tmp_path / "run"), loaded.locate)
    assert "mutually exclusive" in diag.message and diag.pos.line == 19  # the raw key beats the default


def test_validation_never_touches_the_network_even_for_uncached_hub_ids(tmp_path, monkeypatch):
    pytest.importorskip("axolotl")
    attempts = []
    real_connect = socket.socket.connect

    def spy(self, address):
        attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    for hw in ("cpu", "cuda-1", "cuda-8-fsdp"):
        spec = make_spec(hardware=HARDWARE[hw])
        compiled = compile_for(spec, "acme-internal/never-published-model-7b", tmp_path / hw)
        assert validate_axolotl_config(compiled, lambda p: None) == []
    assert attempts == []


def test_without_axolotl_validation_is_skipped_and_says_so(tiny_model, tmp_path, monkeypatch, caplog):
    import logging

    import llmspec.runtime.train.axolotl_check as check

    monkeypatch.setattr(check, "axolotl_available", lambda: False)
    with caplog.at_level(logging.DEBUG, logger=check.__name__):
        assert check.validate_axolotl_config(compile_for(make_spec(), tiny_model, tmp_path), lambda p: None) == []
    assert "axolotl is not installed" in caplog.text


# ----------------------------------------------------------------------------- llmspec compile


STYLE_MAPS = {
    "chat": {"tickets": {"user": "question", "assistant": "answer"},
             "faq": {"user": "q", "assistant": "{{ a }}"},
             "docs": {"user": "What does the guide say about {{ heading }}?", "assistant": "text"}},
    "alpaca": {"tickets": {"instruction": "question", "input": "{{ product or '' }}", "output": "answer"},
               "faq": {"instruction": "q", "output": "a"},
               "docs": {"instruction": "Summarise {{ heading }}.", "output": "text"}},
    "completion": {"tickets": {"text": "Q: {{ question }}\nA: {{ answer }}"},
                   "faq": {"text": "{{ q }} {{ a }}"}, "docs": {"text": "# {{ heading }}\n{{ text }}"}},
    "input_output": {s: {"segments": [{"text": p, "train": False}, {"text": r + "<|im_end|>", "train": True}]}
                     for s, p, r in (("tickets", "Q: {{ question }}\n", "A: {{ answer }}"),
                                     ("faq", "Q: {{ q }}\n", "A: {{ a }}"),
                                     ("docs", "About {{ heading }}:\n", "{{ text }}"))},
}


def write_project(root: Path, style: str) -> Path:
    import io

    from ruamel.yaml import YAML

    (root / "data").mkdir(parents=True, exist_ok=True)
    with open(root / "data" / "tickets.jsonl", "w") as fh:
        for i in range(24):
            fh.write(json.dumps({"question": f"My router {i} keeps dropping wifi, what now?",
                                 "answer": f"Move it away from the microwave and restart it ({i}).",
                                 "product": "router" if i % 2 else None}) + "\n")
        fh.write(json.dumps({"question": "  ", "answer": "blank question"}) + "\n")
    (root / "data" / "faq.csv").write_text("q,a\n" + "".join(
        f"How long is refund window {i}?,Thirty days from delivery ({i}).\n" for i in range(12)))
    (root / "data" / "guide.md").write_text("# Guide\n\n" + "".join(
        f"## Topic {i}\n\nHold the reset button for {i + 5} seconds.\n\n" for i in range(6)))
    spec = {
        "llmspec": 1, "project": f"three-{style.replace('_', '-')}", "base_model": {"id": "builtin:tiny"},
        "sources": {"tickets": {"path": "data/tickets.jsonl", "format": "jsonl"},
                    "faq": {"path": "data/faq.csv", "format": "csv"},
                    "docs": {"path": "data/guide.md", "format": "markdown"}},
        "quality": {"rules": [{"require": {"sources": ["tickets"], "columns": ["question", "answer"]}}]},
        "format": {"style": style, "system": "You are Acme's support assistant.", "map": STYLE_MAPS[style]},
        "split": {"eval_fraction": 0.2, "seed": 1},
        "training": {"method": "lora", "hardware": "cpu", "sequence_len": 256, "epochs": 2,
                     "batch": {"micro": 4, "accumulate": 2}},
        "acceptance": {"tests": [{"name": "refund", "prompt": "Can I return it?", "expect": [{"contains": "days"}]}]},
    }
    buf = io.StringIO()
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = False
    dumper.dump(spec, buf)
    (root / "llmspec.yaml").write_text(buf.getvalue())
    return root / "llmspec.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("style", sorted(STYLE_MAPS))
def test_compile_writes_everything_for_three_sources(style, tmp_path, monkeypatch):
    pytest.importorskip("axolotl")
    from click.testing import CliRunner

    from llmspec.cli import cli

    monkeypatch.setenv("LLMSPEC_CACHE_DIR", str(tmp_path / "cache"))
    spec_path = write_project(tmp_path / "proj", style)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compile", str(spec_path), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Axolotl check: passed" in result.output and "time on cpu-2-cores" in result.output

    plan = json.loads((out / "plan.json").read_text())
    ds = plan["dataset"]
    assert {k: v["rows_in"] for k, v in ds["per_source"].items()} == {"tickets": 24, "faq": 12, "docs": 6}
    assert ds["train_size"] + ds["eval_size"] + ds["leakage_removed"] == 42
    assert plan["clean"]["tickets"]["rejected"]["require"] == 1
    assert sorted(p.name for p in (out / "clean").iterdir()) == ["docs.txt", "faq.txt", "tickets.txt"]
    assert "require" in (out / "clean" / "tickets.txt").read_text()
    assert plan["axolotl_check"] == "passed"

    cfg = YAML_LOAD((out / "axolotl.yaml").read_text())
    assert cfg["datasets"][0]["path"] == str(out / "data" / "train.jsonl")
    assert cfg["datasets"][0]["type"] == plan["format"]["axolotl_dataset"]["type"]
    assert cfg["test_datasets"][0]["path"] == str(out / "data" / "eval.jsonl")

    est = plan["estimates"]
    assert est["tokens"]["method"] == "tokenizer" and est["tokens"]["train"] > 0
    assert est["steps"]["per_epoch"] == -(-(-(-ds["train_size"] // 4)) // 2) and est["steps"]["total"] == \
        2 * est["steps"]["per_epoch"]
    cpu = est["time"]["cpu-2-cores"]
    assert cpu["train_seconds"] > 0 and cpu["seconds"] == pytest.approx(cpu["train_seconds"] + cpu["startup_seconds"])
    assert plan["examples"] and all("[[" in e["text"] for e in plan["examples"])

    suite = json.loads((out / "acceptance.json").read_text())
    (test,) = suite["tests"]
    if style == "chat":
        assert test["rendered_prompt"] == ("<|im_start|>system\nYou are Acme's support assistant.<|im_end|>\n"
                                           "<|im_start|>user\nCan I return it?<|im_end|>\n<|im_start|>assistant\n")
    elif style == "alpaca":
        assert test["rendered_prompt"].endswith("### Instruction:\nCan I return it?\n\n### Response:\n")
    else:
        assert test["rendered_prompt"] == "Can I return it?"


@pytest.mark.slow
def test_compile_fails_on_an_axolotl_error_but_leaves_the_files(tmp_path, monkeypatch):
    pytest.importorskip("axolotl")
    from click.testing import CliRunner

    from llmspec.cli import cli
    from llmspec.spec.errors import SpecError

    monkeypatch.setenv("LLMSPEC_CACHE_DIR", str(tmp_path / "cache"))
    spec_path = write_project(tmp_path / "proj", "chat")
    text = spec_path.read_text().replace("  sequence_len: 256\n", "  sequence_len: 256\n  axolotl:\n"
                                         "    lr_scheduler_kwargs: 5\n")
    spec_path.write_text(text)
    line = text.splitlines().index("    lr_scheduler_kwargs: 5") + 1
    result = CliRunner().invoke(cli, ["compile", str(spec_path), "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, SpecError)
    (diag,) = result.exception.diagnostics
    assert diag.code == "axolotl-config" and diag.pos.line == line
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["axolotl_check"] == "failed"


def YAML_LOAD(text: str):
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)
