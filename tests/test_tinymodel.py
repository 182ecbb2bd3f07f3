"""The built-in tiny model: deterministic bytes, loadable, chat-ready, cached safely."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from llmspec.runtime.models import tinymodel
from llmspec.spec.errors import LlmspecError


def _file_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return tinymodel.build_tiny_model(tmp_path_factory.mktemp("cache"))


def test_two_builds_are_byte_identical(tmp_path):
    a = tinymodel.build_tiny_model(tmp_path / "a")
    b = tinymodel.build_tiny_model(tmp_path / "b")
    assert a != b
    files_a, files_b = _file_bytes(a), _file_bytes(b)
    assert sorted(files_a) == sorted(tinymodel.MODEL_FILES)
    assert files_a == files_b
    assert tinymodel.fingerprint(tmp_path / "a") == tinymodel.fingerprint(tmp_path / "b")


# The bytes every machine must produce for this BUILDER_VERSION (pinned tokenizers,
# safetensors, numpy). If this fails after a change to the builder or a library
# upgrade, caches built elsewhere no longer match: bump BUILDER_VERSION and
# update the hash, never just the hash.
GOLDEN = {2: "8d791b13243cd9249bd2ecf47e3eff4c939429b3ff38e3e0d380030b15f47260"}


def test_matches_golden_fingerprint(tmp_path):
    assert tinymodel.fingerprint(tmp_path) == GOLDEN[tinymodel.BUILDER_VERSION]


def test_layout_under_cache_dir(tmp_path):
    path = tinymodel.build_tiny_model(tmp_path)
    assert path == tmp_path / "models" / f"tiny-v{tinymodel.BUILDER_VERSION}"
    # Nothing left behind from the temp-dir-then-rename build.
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]


def test_default_cache_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMSPEC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tinymodel.cache_root() == tmp_path / "xdg" / "llmspec"
    monkeypatch.setenv("LLMSPEC_CACHE_DIR", str(tmp_path / "explicit"))
    assert tinymodel.cache_root() == tmp_path / "explicit"
    path = tinymodel.build_tiny_model()
    assert path.parent.parent == tmp_path / "explicit"


def test_cached_build_is_reused(tmp_path):
    path = tinymodel.build_tiny_model(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    assert tinymodel.build_tiny_model(tmp_path) == path
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before


def test_incomplete_cache_is_rebuilt(tmp_path):
    path = tinymodel.build_tiny_model(tmp_path)
    reference = _file_bytes(path)
    (path / "model.safetensors").unlink()
    assert tinymodel.build_tiny_model(tmp_path) == path
    assert _file_bytes(path) == reference


def _build_in(cache: str) -> str:
    return tinymodel.fingerprint(Path(cache))


def test_concurrent_builders_agree(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        prints = pool.map(_build_in, [str(tmp_path)] * 4)
    assert len(set(prints)) == 1
    assert [p.name for p in (tmp_path / "models").iterdir()] == [f"tiny-v{tinymodel.BUILDER_VERSION}"]


def test_model_and_tokenizer_load(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert type(model).__name__ == "LlamaForCausalLM"
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == tinymodel.parameter_count()
    assert 100_000 <= n_params <= 300_000
    assert len(tok) == model.config.vocab_size
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert tok.pad_token_id != tok.eos_token_id


def test_tokenizer_learned_support_words(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    for word in [" refund", " password", " order", " subscription", " shipping"]:
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    text = "Hello, can I get a refund for my damaged order?"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_renders(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It ships today."},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhere is my order?<|im_end|>\n"
        "<|im_start|>assistant\nIt ships today.<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    # Special tokens must stay single ids, or label masking by turn breaks.
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3
    assert ids.count(tok.eos_token_id) == 3
    config = json.loads((built / "tokenizer_config.json").read_text())
    assert config["chat_template"] == tinymodel.CHAT_TEMPLATE


def test_generate_runs(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    enc = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_resolve_builtin(tmp_path):
    assert tinymodel.resolve_builtin(tinymodel.TINY_MODEL_ID, cache_dir=tmp_path) == tinymodel.model_dir(tmp_path)


@pytest.mark.parametrize("model_id", ["builtin:tiny2", "builtin:", "tiny", "builtin:TINY"])
def test_unknown_builtin_is_a_user_error(model_id, tmp_path):
    with pytest.raises(LlmspecError) as err:
        tinymodel.resolve_builtin(model_id, cache_dir=tmp_path)
    assert err.value.first.code == "unknown-builtin"
    assert model_id in err.value.first.message
    assert not (tmp_path / "models").exists()
