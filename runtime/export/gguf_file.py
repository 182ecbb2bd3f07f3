"""A merged llama-architecture model as one GGUF file (llama.cpp, Ollama, LM Studio), written with
the `gguf` package: its ``GGUFWriter``, tensor-name map and quantizers, which llama.cpp maintains.

llama.cpp's own converter (``convert_hf_to_gguf.py``) is in no package on the registry; it ships
only inside llama.cpp's source tree (llama-cpp-python's sdist vendors it as a script that imports
the rest of that tree). This module does what that script does for ``LlamaForCausalLM``, and
refuses anything else with a located error rather than writing a file that loads but answers wrong:

- the llama architecture's metadata keys, from the model's config;
- Q and K projections permuted back into llama.cpp's rotary layout (Hugging Face checkpoints
  store them permuted; llama.cpp, and transformers' GGUF reader, undo it);
- the byte-level BPE vocabulary, merges, token types, special ids and the chat template the run
  trained with; the pre-tokenizer named as llama.cpp knows it;
- 1-D tensors (norms) in F32, matrices in the chosen type, as llama.cpp's converter does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmspec.spec.errors import Diagnostic, LlmspecError

# --dtype -> (GGML tensor type name, llama.cpp file type name)
GGUF_TYPES = {
    "float32": ("F32", "ALL_F32"),
    "float16": ("F16", "MOSTLY_F16"),
    "bfloat16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
}
ARCHITECTURE = "llama"
_GPT2_REGEX_NAME = "gpt-2"      # llama.cpp: GPT-2's split regex alone
_DIGITS_GPT2_NAME = "smollm"    # llama.cpp: each digit apart, then GPT-2's regex (SmolLM, StarCoder)


def _refuse(code: str, message: str, hint: str | None = None) -> LlmspecError:
    return LlmspecError(Diagnostic(code, message, hint=hint))


def write_gguf(net: Any, tokenizer: Any, path: Path, *, dtype: str, name: str, chat_template: str | None,
               base_model: str) -> None:
    """Write ``net`` (a merged ``LlamaForCausalLM``) with ``tokenizer`` to GGUF file ``path``."""
    import gguf

    config = net.config
    if getattr(config, "model_type", None) != ARCHITECTURE:
        raise _refuse("export-gguf-architecture",
                      f"--format gguf writes the llama architecture; this model is "
                      f"{getattr(config, 'model_type', type(net).__name__)!r}",
                      hint="export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")
    tensor_type, file_type = GGUF_TYPES[dtype]
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, base_model)
    _add_hyperparameters(writer, config)
    writer.add_file_type(getattr(gguf.LlamaFileType, file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocab(writer, tokenizer, config, chat_template)
    _add_tensors(writer, net, gguf.GGMLQuantizationType[tensor_type])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_hyperparameters(writer: Any, config: Any) -> None:
    # transformers 5 keeps theta and any scaling in rope_parameters (rope_scaling is its alias).
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise _refuse("export-gguf-rope", f"the model uses {rope_type!r} rope scaling, which this GGUF writer "
                      "does not carry", hint="export --format merged and convert it with llama.cpp")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(float(theta))
    writer.add_rope_dimension_count(head_dim)
    if head_dim * heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)


# ------------------------------------------------------------------ vocabulary


def _add_vocab(writer: Any, tokenizer: Any, config: Any, chat_template: str | None) -> None:
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise _refuse("export-gguf-tokenizer", f"the tokenizer is {model.get('type')!r}, not byte-level BPE; "
                      "this GGUF writer carries byte-level BPE vocabularies only",
                      hint="export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")
    if spec.get("normalizer") not in (None, {"type": "Sequence", "normalizers": []}):
        raise _refuse("export-gguf-tokenizer", "the tokenizer normalizes text before splitting it, which "
                      "llama.cpp's BPE vocabularies do not")
    pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    vocab = tokenizer.get_vocab()
    if len(vocab) > config.vocab_size:
        raise _refuse("export-gguf-tokenizer", f"the tokenizer has {len(vocab)} tokens, more than the model's "
                      f"{config.vocab_size} embeddings")
    special = {t["id"]: bool(t.get("special")) for t in spec.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(config.vocab_size):
        if i not in by_id:  # embedding rows no token uses, as llama.cpp's converter names them
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL if i not in special else
                         gguf.TokenType.CONTROL if special[i] else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    ids = _special_ids(tokenizer, config)
    probe = list(tokenizer("a")["input_ids"])
    add_bos = ids["bos"] is not None and probe[:1] == [ids["bos"]]
    if ids["bos"] is None:
        # transformers' GGUF reader fails on a llama vocabulary without a BOS id. add_bos_token
        # false (below) means it is never inserted, so naming EOS there changes no prompt.
        ids["bos"] = ids["eos"]
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        if ids[key] is not None:
            add(ids[key])
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(ids["eos"] is not None and probe[-1:] == [ids["eos"]])
    writer.add_add_space_prefix(False)
    if chat_template:
        writer.add_chat_template(chat_template)


def pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's name for a byte-level BPE pre-tokenizer (``tokenizer.ggml.pre``): it picks
    the split regexes by this name, so a wrong one tokenizes differently from training."""
    steps = (pre or {}).get("pretokenizers") if (pre or {}).get("type") == "Sequence" else [pre]
    steps = [s for s in steps or [] if s]

    def byte_level(step: dict) -> bool:
        return step.get("type") == "ByteLevel" and step.get("use_regex", True) and not step.get("add_prefix_space")

    if len(steps) == 1 and byte_level(steps[0]):
        return _GPT2_REGEX_NAME
    if (len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits")
            and byte_level(steps[1])):
        return _DIGITS_GPT2_NAME
    raise _refuse("export-gguf-tokenizer", "the tokenizer splits text in a way this GGUF writer cannot name for "
                  f"llama.cpp ({json.dumps(pre)[:200]})",
                  hint="export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")


def _special_ids(tokenizer: Any, config: Any) -> dict[str, int | None]:
    def first(value: Any) -> int | None:
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return value if isinstance(value, int) and value >= 0 else None

    # The model's end of sequence (the end-of-turn token a chat model emits), not the tokenizer's:
    # a tokenizer rebuilt from a GGUF by transformers can name BOS there.
    eos = first(getattr(config, "eos_token_id", None))
    return {"bos": first(tokenizer.bos_token_id), "eos": eos if eos is not None else first(tokenizer.eos_token_id),
            "unk": first(tokenizer.unk_token_id),
            "pad": first(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None
            else first(getattr(config, "pad_token_id", None))}


# ------------------------------------------------------------------ tensors


def _add_tensors(writer: Any, net: Any, matrix_type: Any) -> None:
    import gguf
    import torch

    config = net.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    for hf_name, tensor in net.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads the output projection from token_embd when output is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise _refuse("export-gguf-tensor", f"the model has a tensor llama.cpp's llama architecture does not "
                          f"have: {hf_name}", hint="export --format merged")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _unpermute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _unpermute(data, kv_heads)
        _add_tensor(writer, name, data, matrix_type)


def _unpermute(weights: Any, heads: int) -> Any:
    """llama.cpp's rotary layout from Hugging Face's (convert_hf_to_gguf's ``LlamaModel.permute``)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _add_tensor(writer: Any, name: str, data: Any, matrix_type: Any) -> None:
    import gguf
    from gguf.quants import quantize

    qtype = matrix_type if data.ndim > 1 else gguf.GGMLQuantizationType.F32
    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        qtype = gguf.GGMLQuantizationType.F16  # rows Q8_0's 32-wide blocks cannot tile, as llama.cpp does
    # F32/F16 come back as float arrays; BF16 and Q8_0 as bytes, which raw_dtype names.
    writer.add_tensor(name, quantize(data, qtype), raw_dtype=None if qtype in (
        gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else qtype)
