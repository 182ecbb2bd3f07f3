"""Content hashes of source files, cached by (path, size, mtime, inode) like git's index.

An unchanged 10 GB export is hashed once; later plans only stat it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from llmspec.runtime.engine.atomic import write_text_atomic

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """A stat-keyed cache of file hashes, stored as JSON (e.g. in .llmspec/hashes.json)."""

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self.entries: dict[str, dict] = {}
        self.dirty = False
        if cache_file is not None and cache_file.is_file():
            try:
                self.entries = json.loads(cache_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}  # a damaged cache only costs a re-hash

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
        if self.dirty and self.cache_file is not None:
            write_text_atomic(self.cache_file, json.dumps(self.entries, sort_keys=True))
            self.dirty = False


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
