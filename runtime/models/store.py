"""The machine-wide model cache: where built and converted models live, and how a finished
folder is put in place so that no reader ever sees half of one.

Models are cached per user, not per project: the tiny model and a converted GGUF are pure
functions of their inputs (the builder version, the GGUF file's content hash), hundreds of MB
each, and shared by every project, example and test on the machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """Where llmspec caches things: $LLMSPEC_CACHE_DIR, else $XDG_CACHE_HOME/llmspec, else ~/.cache/llmspec."""
    explicit = os.environ.get("LLMSPEC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "llmspec"
    return Path.home() / ".cache" / "llmspec"


def build_folder(target: Path, is_complete: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Return ``target``, first building it with ``write(tmp)`` when it is not complete.

    Safe against concurrent builders: each builds in its own temp dir beside the target and
    renames it into place; a loser of the race discards its copy. A complete folder is never
    deleted in place. OSError propagates (the caller knows what it was building)."""
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        # mkdtemp makes 0700 and safetensors 0600: a shared cache must be readable.
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        _install(tmp, target, is_complete)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _install(tmp: Path, target: Path, is_complete: Callable[[Path], bool]) -> None:
    for _ in range(3):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if is_complete(target):
                return  # another builder won; its files are identical to ours
        # A damaged leftover (files removed by hand) is in the way: take it off the
        # path with one rename rather than deleting in place, so nobody ever sees
        # a half-deleted model there.
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.trash.", dir=target.parent))
        try:
            os.rename(target, trash / "old")
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(tmp, target)
