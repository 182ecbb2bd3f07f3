"""Content hashes of source files, cached by (path, size, mtime, inode) like git's index.

An unchanged 10 GB export is hashed once; later plans only stat it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos
from llmspec.spec.version import llmspec_version

from llmspec.runtime.engine.atomic import write_text_atomic

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stat: tuple[int, int, int]     # size, mtime_ns, inode
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _CacheFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    written_by: str | None = None
    entries: dict[str, _Entry]


class HashCache:
    """A stat-keyed cache of file hashes, stored as JSON (e.g. in .llmspec/hashes.json).

    Only a cache: one that is damaged, of another version or of the wrong shape is ignored and
    one that cannot be written (a read-only `.llmspec`) is not written. Either costs a re-hash,
    said in `warnings`, never a failed plan."""

    VERSION = 1

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self.entries: dict[str, dict] = {}
        self.dirty = False
        self.warnings: list[Diagnostic] = []
        if cache_file is not None and cache_file.exists():
            self._load(cache_file)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_bytes())
            if isinstance(raw, dict) and "version" not in raw:
                raw = {"version": 1, "entries": raw}  # the cache before it had a version
            data = _CacheFile.model_validate(raw)
        except (OSError, ValueError, RecursionError) as exc:  # pydantic's ValidationError is a ValueError
            problem = exc.strerror if isinstance(exc, OSError) else _first_problem(exc)
            self._warn(f"ignored the source hash cache ({problem}): its files are hashed again")
            self.dirty = True  # write a sound one back
            return
        self.entries = {k: {"stat": list(e.stat), "sha256": e.sha256} for k, e in data.entries.items()}

    def _warn(self, message: str) -> None:
        self.warnings.append(Diagnostic("hash-cache-ignored", message, Pos(str(self.cache_file)), severity="warning",
                                        hint="nothing to do: it is only a cache"))

    def hash(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self.entries.get(key)
        if entry and entry.get("stat") == stamp:
            return entry["sha256"]
        digest = sha256_file(path)
        self.entries[key] = {"stat": stamp, "sha256": digest}
        self.dirty = True
        return digest

    def save(self) -> None:
        """Best effort: a cache that cannot be written is reported in `warnings`, not raised."""
        if not (self.dirty and self.cache_file is not None):
            return
        body = {"version": self.VERSION, "written_by": llmspec_version(), "entries": self.entries}
        try:
            write_text_atomic(self.cache_file, json.dumps(body, sort_keys=True))
        except LlmspecError as exc:
            self._warn(f"could not update the source hash cache: {exc.first.message}; the next plan hashes "
                       "changed files again")
            return
        self.dirty = False


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        return f"{where}: {first['msg']}"
    return str(exc)


def hash_tree(paths: list[Path], base_dir: Path, cache: HashCache) -> dict[str, str]:
    """{relative path: sha256} for the given files, relative to base_dir."""
    out = {}
    for p in paths:
        try:
            rel = p.resolve().relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            rel = os.fspath(p)
        out[rel] = cache.hash(p)
    return dict(sorted(out.items()))
