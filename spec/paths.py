"""Which files a source reads, and the promise that none of them lies outside the project.

The spec's folder is the project. A path in a spec is relative and stays inside it, and so
does every file actually opened: links are resolved and checked (``ln -s /etc/passwd
data/p.txt`` is refused, not trained on), links to folders are followed only while they stay
inside the project and each real folder and file is visited once (``ln -s .. docs/loop``
reads nothing twice), and only regular files are read (a FIFO would block for ever).

Globs follow the shell's rules: ``*``, ``?`` and ``[...]`` match within one path part, ``**``
any number of folders; names starting with a dot are only matched by a pattern part that
starts with a dot.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path, PurePosixPath

from llmspec.spec.errors import DataError, Diagnostic, Pos

_GLOB_CHARS = set("*?[")

# When a path names a folder, these are the files a glob-based format reads from it.
FOLDER_DEFAULTS = {"eml": "*.eml", "text": "**/*.txt", "markdown": "**/*.md", "html": "**/*.html",
                   "pdf": "**/*.pdf", "docx": "**/*.docx"}

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _error(message: str, shown: str, code: str, hint: str | None = None) -> DataError:
    return DataError(Diagnostic(code=code, message=message, pos=Pos(shown), hint=hint))


def _check_relative(pattern: str) -> None:
    p = PurePosixPath(pattern.replace("\\", "/"))
    # Validation refuses these too; checked again because a reader must never open files
    # outside the project whatever called it.
    if p.is_absolute() or (len(pattern) > 1 and pattern[1] == ":") or ".." in p.parts:
        raise _error(f"path {pattern!r} must be relative to the spec's folder and stay inside it", pattern,
                     "path-escape", "data paths are relative to the spec's folder and stay inside it")


def _inside(real: Path, root: Path) -> bool:
    return real == root or root in real.parents


def check_inside(path: Path, base_dir: Path, shown: str) -> Path:
    """``path`` itself when it is a regular file whose real location is inside ``base_dir``;
    a DataError naming it otherwise (missing, outside through a link, or not a regular file)."""
    root = Path(base_dir).resolve()
    try:
        real = Path(path).resolve(strict=True)
    except FileNotFoundError:
        raise _error(f"{shown}: no such file", shown, "file-not-found") from None
    except (OSError, RuntimeError) as exc:  # a link loop
        raise _error(f"{shown}: cannot be resolved ({getattr(exc, 'strerror', None) or exc})", shown,
                     "unsafe-path") from None
    if not _inside(real, root):
        raise _error(f"{shown} resolves to {real}, outside the project folder (through a link); nothing outside "
                     "it is read", shown, "unsafe-path", "copy the file into the project, or point the source at the copy")
    mode = real.stat().st_mode
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else next((w for test, w in _KINDS if test(mode)), "not a regular file")
        raise _error(f"{shown} is {what}, not a regular file", shown, "not-a-file")
    return Path(path)


def _split_glob(pattern: str) -> tuple[str, list[str]]:
    """(the folder before the first part with a wildcard, the parts from there on)."""
    parts = [p for p in pattern.replace("\\", "/").split("/") if p not in ("", ".")]
    i = next((i for i, part in enumerate(parts) if _GLOB_CHARS.intersection(part)), len(parts) - 1)
    return "/".join(parts[:i]), parts[i:]


def _part_matches(name: str, part: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)


def _matches(parts: tuple[str, ...], pat: list[str]) -> bool:
    """Whether a relative path (as parts) matches the glob parts."""
    if not pat:
        return not parts
    if pat[0] == "**":
        for i in range(len(parts) + 1):
            if i and parts[i - 1].startswith("."):
                return False
            if _matches(parts[i:], pat[1:]):
                return True
        return False
    return bool(parts) and _part_matches(parts[0], pat[0]) and _matches(parts[1:], pat[1:])


def _may_hold_matches(parts: tuple[str, ...], pat: list[str]) -> bool:
    """Whether a folder (as parts) can hold a file matching the glob parts."""
    if not parts:
        return bool(pat)
    if not pat:
        return False
    if pat[0] == "**":
        return (not parts[0].startswith(".") and _may_hold_matches(parts[1:], pat)) or _may_hold_matches(parts, pat[1:])
    return _part_matches(parts[0], pat[0]) and _may_hold_matches(parts[1:], pat[1:])


def _glob(top: Path, top_shown: str, pat: list[str], root: Path) -> list[tuple[Path, str]]:
    """Files under ``top`` matching ``pat``. Real folders are walked before linked ones, and a
    folder reached again (through a link, or a link loop) is not walked twice."""
    found: list[tuple[Path, tuple[str, ...]]] = []
    links: list[tuple[Path, tuple[str, ...]]] = []
    seen: set[Path] = set()

    def walk(folder: Path, rel: tuple[str, ...]) -> None:
        real = folder.resolve()
        if real in seen:
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            sub = rel + (entry.name,)
            if entry.is_dir(follow_symlinks=True):
                if not _may_hold_matches(sub, pat):
                    continue
                if entry.is_symlink():
                    links.append((Path(entry.path), sub))  # after every real folder: real paths win
                else:
                    walk(Path(entry.path), sub)
            elif _matches(sub, pat):
                found.append((Path(entry.path), sub))

    walk(top, ())
    while links:
        path, rel = links.pop(0)
        real = path.resolve()
        if not _inside(real, root):
            shown = "/".join((top_shown, *rel)) if top_shown else "/".join(rel)
            raise _error(f"{shown} is a link to the folder {real}, outside the project folder; nothing outside "
                         "it is read", shown, "unsafe-path", "move the data into the project or narrow the glob")
        walk(path, rel)
    return [(p, "/".join((top_shown, *rel)) if top_shown else "/".join(rel)) for p, rel in found]


def resolve_files(pattern: str, base_dir: Path, fmt: str, *, must_exist: bool = True) -> list[Path]:
    """The files a source reads: one file, a folder (with the format's default glob) or a glob.

    Every file is a regular file whose real location is inside ``base_dir`` (see the module
    docstring), listed once, sorted by path so that row order, origins and fingerprints do not
    depend on the file system. Nothing found: a DataError naming the path, or [] with
    ``must_exist=False``.
    """
    _check_relative(pattern)
    base_dir = Path(base_dir)
    root = base_dir.resolve()
    if not _GLOB_CHARS.intersection(pattern):
        path = base_dir / pattern
        if path.is_dir():
            check_folder_inside(path, root, pattern)
            default = FOLDER_DEFAULTS.get(fmt)
            if default is None:
                raise _error(f"{pattern} is a folder; a {fmt} source reads one file", pattern, "not-a-file")
            pattern = f"{pattern.rstrip('/')}/{default}"
        elif not os.path.lexists(path) and not must_exist:
            return []
        elif not os.path.lexists(path):
            raise _error(f"{pattern}: no such file (looked in {base_dir})", pattern, "file-not-found")
        else:
            return [check_inside(path, base_dir, pattern)]
    prefix, pat = _split_glob(pattern)
    top = base_dir / prefix if prefix else base_dir
    files: list[tuple[Path, str]] = []
    if top.is_dir():
        check_folder_inside(top, root, prefix or ".")
        files = _glob(top, prefix, pat, root)
    unique: dict[Path, tuple[Path, str]] = {}
    for path, shown in sorted(files, key=lambda f: f[1]):
        check_inside(path, base_dir, shown)
        unique.setdefault(path.resolve(), (path, shown))  # a file linked twice is read once
    if not unique and must_exist:
        raise _error(f"{pattern}: no files match (looked in {base_dir})", pattern, "file-not-found")
    return sorted((p for p, _ in unique.values()), key=lambda p: p.relative_to(base_dir).as_posix())


def check_folder_inside(folder: Path, root: Path, shown: str) -> None:
    real = folder.resolve()
    if not _inside(real, root):
        raise _error(f"{shown} is a link to the folder {real}, outside the project folder; nothing outside it "
                     "is read", shown, "unsafe-path", "move the data into the project")


__all__ = ["FOLDER_DEFAULTS", "check_inside", "resolve_files"]
