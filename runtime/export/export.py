"""`llmspec export`: the trained model in a form that runs without llmspec.

- ``adapter``: the PEFT adapter, its tokenizer and the chat template it trained with, with no
  path into llmspec's cache or state, and a model card.
- ``merged``: LoRA merged into the base weights (safetensors), loadable by plain transformers
  and vLLM; its generation_config stops at the end-of-turn token.
- ``ollama``: the merged folder plus a Modelfile (TEMPLATE translated from the chat template,
  SYSTEM, stop tokens).
- ``gguf``: the merged weights as one GGUF file for llama.cpp / Ollama (llama architecture; see
  gguf_file.py), with the tokenizer and chat template inside, and a Modelfile ``FROM`` it. Its
  parity check reads the file back with transformers' GGUF reader.

Everything is written into a staging folder beside ``out``; the parity check then answers the
acceptance prompts with the export and with the adapter as trained. Only when parity holds is the
staging folder renamed to ``out``: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos
from llmspec.spec.load import LoadedSpec

from llmspec.runtime.engine.atomic import write_json_atomic, write_text_atomic
from llmspec.runtime.serve.target import RunModel

from .parity import DEFAULT_MIN_IDENTICAL, ParityResult, answers, compare_answers, gguf_answers
from .templates import ALPACA_CHAT_TEMPLATE, ollama_layout

FORMATS = ("adapter", "merged", "ollama", "gguf")
DTYPES = ("auto", "float32", "bfloat16", "float16", "q8_0")  # q8_0: a GGUF block quantization
GGUF_FILE = "model.gguf"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json")


class ExportParityFailed(LlmspecError):
    exit_code = 3


def export_model(loaded: LoadedSpec, run: RunModel, fmt: str, out: Path, *, dtype: str = "auto",
                 min_identical: float = DEFAULT_MIN_IDENTICAL, force: bool = False,
                 say: Callable[[str], None] = lambda _m: None) -> ParityResult:
    """Export ``run`` as ``fmt`` into ``out``; the parity result (raises when it fails)."""
    from importlib.metadata import version

    from llmspec.runtime.acceptance.stage import eval_records
    from llmspec.compiler.acceptance import build_suite

    if fmt not in FORMATS:
        raise LlmspecError(Diagnostic("export-format", f"unknown export format {fmt!r}; use {', '.join(FORMATS)}"))
    if dtype == "q8_0" and fmt != "gguf":
        raise LlmspecError(Diagnostic("export-dtype", "q8_0 is a GGUF quantization; safetensors exports take "
                                      "float32, bfloat16 or float16", hint="--format gguf --dtype q8_0"))
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise LlmspecError(Diagnostic("export-exists", f"{out} exists and is not empty", Pos(str(out)),
                                      hint="pick another --out, or --force to replace it"))
    acc = loaded.spec.acceptance
    holdout = acc.holdout.count if acc.holdout and run.dataset_dir else 0
    tests = build_suite(acc, loaded.base_dir, system=run.system,
                        eval_records=eval_records(run.dataset_dir, holdout) if holdout else [])
    if not tests:
        raise LlmspecError(Diagnostic("export-no-tests", "the parity check answers the acceptance prompts, and "
                                      "this spec has none", loaded.locate(("acceptance",)),
                                      hint="add acceptance.tests or acceptance.holdout"))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        model_dir = _write(run, fmt, staging, dtype=dtype, project=loaded.spec.project, say=say)
        say(f"parity: answering {len(tests)} acceptance prompts with the adapter as trained and with the export")
        prompt_format, budget = run.prompt_format, acc.max_new_tokens
        ref = run.model_ref()
        reference = answers(tests, model_path=ref.model_path, adapter_path=ref.adapter_path,
                            prompt_format=prompt_format, max_new_tokens=budget)
        if fmt == "adapter":
            exported = answers(tests, model_path=run.base_model_path, adapter_path=model_dir,
                               prompt_format=prompt_format, max_new_tokens=budget)
        elif fmt == "gguf":
            exported = gguf_answers(tests, model_dir / GGUF_FILE, prompt_format=prompt_format,
                                    max_new_tokens=budget)
        else:
            exported = answers(tests, model_path=model_dir, adapter_path=None, prompt_format=prompt_format,
                               max_new_tokens=budget)
        result = compare_answers(fmt, tests, reference, exported, min_identical)
        write_json_atomic(staging / "parity.json", result.to_dict())
        from .card import model_card

        write_text_atomic(model_dir / "README.md", model_card(run, fmt=fmt, project=loaded.spec.project,
                                                              parity=result.to_dict(),
                                                              version=version("llmspec-tune")))
        _check_portable(staging, run)
        if not result.passed:
            raise ExportParityFailed(Diagnostic(
                "export-parity", result.summary() + "; first difference: "
                + json.dumps(result.differing[0], ensure_ascii=False)[:400],
                hint="nothing was written; a reduced --dtype rounds weights: try --dtype float32, or accept "
                     "some difference with --min-identical"))
        _replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _replace(staging: Path, out: Path) -> None:
    """Move the finished export into place; an old ``out`` (with --force) goes only after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(run: RunModel, fmt: str, staging: Path, *, dtype: str, project: str, say) -> Path:
    if fmt == "adapter":
        if not run.adapter:
            raise LlmspecError(Diagnostic("export-not-adapter", f"run {run.run} is a full fine-tune, not an adapter",
                                          hint="export --format merged"))
        say(f"adapter: copying {run.model_dir.name} without llmspec's paths")
        _copy_adapter(run, staging)
        return staging
    if fmt == "gguf":
        say(f"gguf: {'merging the LoRA adapter into' if run.adapter else 'reading'} the base weights, "
            f"writing {GGUF_FILE} ({dtype})")
        _save_gguf(run, staging, dtype, project)
        return staging
    target = staging / "merged" if fmt == "ollama" else staging
    target.mkdir(exist_ok=True)
    say(f"merged: {'merging the LoRA adapter into' if run.adapter else 'saving'} the base weights ({dtype})")
    _save_merged(run, target, dtype)
    if fmt == "ollama":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(target), local_files_only=True)
        _write_modelfile(run, staging, project, tokenizer, source="./merged")
    return target


def _chat_template(run: RunModel) -> str | None:
    """The template the exported tokenizer carries: the training layout (see templates.py)."""
    if run.style == "alpaca":
        return ALPACA_CHAT_TEMPLATE
    path = run.model_dir / "chat_template.jinja"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    config = run.model_dir / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _copy_adapter(run: RunModel, staging: Path) -> None:
    for name in ADAPTER_FILES + TOKENIZER_FILES:
        src = run.model_dir / name
        if src.is_file():
            shutil.copy2(src, staging / name)
    config = json.loads((staging / "adapter_config.json").read_text(encoding="utf-8"))
    # Axolotl writes the absolute path of llmspec's cached copy here; the card names the real base.
    config["base_model_name_or_path"] = run.base_model_id
    if run.base_model_revision:
        config["revision"] = run.base_model_revision
    write_json_atomic(staging / "adapter_config.json", config)
    template = _chat_template(run)
    if template is not None:
        write_text_atomic(staging / "chat_template.jinja", template)


def _merged(run: RunModel):
    """(the run's model loaded on the CPU in float32, its network with the adapter merged in)."""
    from llmspec.runtime.acceptance.runner import load_model

    model = load_model(run.model_ref().model_path, adapter_path=run.model_ref().adapter_path, device="cpu",
                       prompt_format=run.prompt_format)
    return model, model.model.merge_and_unload() if run.adapter else model.model


def _save_gguf(run: RunModel, staging: Path, dtype: str, project: str) -> None:
    from .gguf_file import write_gguf

    kind = dtype if dtype == "q8_0" else str(_torch_dtype(dtype, run)).removeprefix("torch.")
    model, net = _merged(run)
    # Rounding to the GGUF type happens in the writer, from float32 weights.
    write_gguf(net, model.tokenizer, staging / GGUF_FILE, dtype=kind, name=project,
               chat_template=_chat_template(run) or model.chat_template, base_model=run.base_model_id)
    _write_modelfile(run, staging, project, model.tokenizer, source=f"./{GGUF_FILE}")
    model.close()


def _save_merged(run: RunModel, target: Path, dtype: str) -> None:
    model, net = _merged(run)
    torch_dtype = _torch_dtype(dtype, run)
    net = net.to(torch_dtype)
    net.config.dtype = str(torch_dtype).removeprefix("torch.")
    # Plain transformers must stop at the end of turn as the acceptance runner did.
    net.generation_config.eos_token_id = list(model.stop_ids)
    net.generation_config.pad_token_id = model.pad_id
    net.config.name_or_path = run.base_model_id
    net.save_pretrained(str(target), safe_serialization=True)
    template = _chat_template(run)
    if template is not None:
        model.tokenizer.chat_template = template
    model.tokenizer.name_or_path = run.base_model_id
    model.tokenizer.save_pretrained(str(target))
    model.close()


def _torch_dtype(dtype: str, run: RunModel):
    import torch

    if dtype == "auto":
        config = json.loads((Path(run.base_model_path) / "config.json").read_text(encoding="utf-8"))
        dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise LlmspecError(Diagnostic("export-dtype", f"unsupported dtype {dtype!r}; use float32, bfloat16 "
                                      "or float16")) from None


def _write_modelfile(run: RunModel, staging: Path, project: str, tokenizer, *, source: str) -> None:
    template = _chat_template(run)
    if template is None:
        raise LlmspecError(Diagnostic("ollama-template", "the model has no chat template to translate for Ollama"))
    layout = ollama_layout(template, bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "")
    lines = [f"# ollama create {project} -f Modelfile", f"FROM {source}", f'TEMPLATE """{layout.template}"""']
    if run.system:
        lines.append(f'SYSTEM """{run.system}"""')
    lines += [f'PARAMETER stop "{s}"' for s in layout.stops]
    # Greedy, as the acceptance tests judged the model.
    lines.append("PARAMETER temperature 0")
    write_text_atomic(staging / "Modelfile", "\n".join(lines) + "\n")


def _check_portable(staging: Path, run: RunModel) -> None:
    """No text file of the export may point into llmspec's state or model cache."""
    needles = {str(run.state_dir.resolve()), str(Path(run.base_model_path).resolve())}
    for path in staging.rglob("*"):
        if path.suffix in (".json", ".jinja", ".md", ".txt", "") and path.is_file() and path.stat().st_size < 50 << 20:
            text = path.read_text(encoding="utf-8", errors="replace")
            for needle in needles:
                if needle in text:
                    raise LlmspecError(Diagnostic("export-not-portable", f"{path.name} holds the local path "
                                                  f"{needle}; the export would not load elsewhere"))

