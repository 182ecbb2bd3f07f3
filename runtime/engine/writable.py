"""Failed writes as located errors: a full disk, a read-only folder, a folder where a file should be.

`apply` checks up front that it can write what it must write at the end (the state folder, the
lock file), so an unwritable `llmspec.lock` fails before training rather than after promotion.
A write that fails anyway (the disk fills during a run) becomes an error naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from llmspec.spec.errors import Diagnostic, Pos, StateError

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def write_error(exc: OSError, path: Path | str) -> StateError:
    """The error a user sees for an OSError raised while writing `path`."""
    where = str(path)
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return StateError(Diagnostic("disk-full", f"cannot write: {reason}", Pos(where),
                                     hint="free space on that disk (or move the project), then apply again; "
                                          "a run that stopped here is shown as interrupted"))
    if exc.errno == errno.EISDIR:
        hint = "a folder is where llmspec writes a file: move it away"
    elif exc.errno == errno.ENOTDIR:
        hint = "a file is where llmspec needs a folder: move it away"
    elif exc.errno == errno.EROFS:
        hint = "the file system is mounted read-only"
    else:
        hint = "check the permissions of the file and its folder"
    return StateError(Diagnostic("not-writable", f"cannot write: {reason}", Pos(where), hint=hint))


# Polars (Rust) reports an I/O failure as its own exception, the OS error only in the text:
# "... underlying IO error: No space left on device (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_of(exc: BaseException) -> OSError | None:
    """The OS error behind `exc`: itself, or the one a Rust-backed library (Polars) names."""
    if isinstance(exc, OSError):
        return exc
    match = _RUST_OS_ERROR.search(str(exc)) if isinstance(exc, Exception) else None
    if match:
        code = int(match.group(1))
        return OSError(code, os.strerror(code))
    return None


@contextlib.contextmanager
def writing(path: Path | str, *, only_full: bool = False) -> Iterator[None]:
    """Turn an OS error raised inside (also one Polars reports) into a located `not-writable` /
    `disk-full` error, naming the file the OS names, else `path`.

    `only_full`: around code that also reads (a whole run), only the errors no read can raise
    (a full disk, a read-only file system) are translated; others stay what they are."""
    try:
        yield
    except Exception as exc:
        os_exc = os_error_of(exc)
        if os_exc is None or only_full and os_exc.errno not in _FULL | {errno.EROFS}:
            raise
        raise write_error(os_exc, os_exc.filename if os_exc.filename is not None else path) from None


def check_folder_writable(folder: Path) -> None:
    """`folder` exists (or can be made) and a file can be created in it. Permissions alone
    do not tell (root ignores them; a read-only mount does not show in the mode bits), so
    this creates a file and removes it."""
    if folder.exists() and not folder.is_dir():
        raise StateError(Diagnostic("not-writable", "a file where llmspec keeps a folder", Pos(str(folder)),
                                    hint="llmspec keeps its state in this folder: move the file away"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise write_error(exc, folder) from None


def check_file_writable(path: Path) -> None:
    """`path` can be replaced by an atomic write: its folder takes new files and it is not a
    folder itself, nor a file its owner made read-only."""
    if path.is_dir():
        raise StateError(Diagnostic("not-writable", "a folder where llmspec writes a file", Pos(str(path)),
                                    hint="move the folder away"))
    if path.exists() and not os.access(path, os.W_OK):
        raise StateError(Diagnostic("not-writable", "the file is read-only", Pos(str(path)),
                                    hint=f"make it writable (chmod u+w {path.name}); apply rewrites it at the end"))
    check_folder_writable(path.parent)
