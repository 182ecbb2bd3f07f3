"""Read-only state folders, unwritable lock files and full disks (issue 13, class 5).

- `plan` and `status` only read: a read-only `.llmspec` must not fail them (the hash cache is
  written best-effort, with a warning).
- `apply` checks before any work that it can write `.llmspec/` and `llmspec.lock`, and fails
  naming the path.
- A disk that fills during a run gives `disk-full` naming the path, and the run is not shown
  `running` forever: status shows it interrupted, and the next apply records it so.

Each fault is made for real where the machine allows it (a tmpfs mounted read-only, or one of a
few kilobytes, which needs root and mount rights), else by making the same system calls fail
with the same errno."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from project_state import make_project, no_axolotl_check, run_cli, write_built_state  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_axolotl_check", "no_training")


@pytest.fixture
def no_training(monkeypatch):
    """Every apply here must stop before training; if one got there, that is the failure."""
    import llmspec.runtime.train.run as train_run

    def refuse(*args, **kwargs):
        pytest.fail("an apply in a fault test reached training")

    monkeypatch.setattr(train_run, "train", refuse)


def _mount(path: Path, *options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=4m",) + options), "tmpfs", str(path)],
                          capture_output=True)
    return proc.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


class _Fault:
    """Writes under `root` fail with `code`, through the calls llmspec writes with."""

    def __init__(self, monkeypatch, root: Path, code: int):
        self.root, self.code, self.on = str(root), code, False
        real_mkstemp, real_replace, real_open = tempfile.mkstemp, os.replace, open
        import builtins

        import polars as pl

        real_parquet = pl.DataFrame.write_parquet

        def under(p) -> bool:
            return self.on and os.path.abspath(os.fspath(p)).startswith(self.root)

        def fail(p):
            raise OSError(self.code, os.strerror(self.code), os.fspath(p))

        def mkstemp(*a, dir=None, **kw):
            if dir is not None and under(dir):
                fail(dir)
            return real_mkstemp(*a, dir=dir, **kw)

        def replace(src, dst, **kw):
            if under(dst):
                fail(dst)
            return real_replace(src, dst, **kw)

        def open_(file, mode="r", *a, **kw):
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and under(file):
                fail(file)
            return real_open(file, mode, *a, **kw)

        def write_parquet(df, file, *a, **kw):
            if isinstance(file, (str, os.PathLike)) and under(file):
                # what Polars raises: its own error, the OS error only in the text
                raise pl.exceptions.ComputeError(f"parquet: underlying IO error: {os.strerror(self.code)} "
                                                 f"(os error {self.code})")
            return real_parquet(df, file, *a, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(pl.DataFrame, "write_parquet", write_parquet)


@pytest.fixture(params=["tmpfs", "patched"])
def state_fs(request, tmp_path, monkeypatch):
    """(spec, make_readonly(), fill(), free()) for a project whose .llmspec can be made
    read-only or full, really (tmpfs) or by failing the system calls."""
    spec = make_project(tmp_path)
    root = tmp_path / ".llmspec"
    root.mkdir()
    if request.param == "tmpfs":
        if not _mount(root):
            pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
        request.addfinalizer(lambda: _umount(root))
        filler = root / "filler"

        def readonly():
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)

        def fill():
            with open(filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC

        def free():
            filler.unlink()

        return spec, readonly, fill, free
    fault = {}

    def readonly():
        fault["f"] = _Fault(monkeypatch, root, errno.EROFS)
        fault["f"].on = True

    def fill():
        fault.setdefault("f", _Fault(monkeypatch, root, errno.ENOSPC)).on = True

    def free():
        fault["f"].on = False

    return spec, readonly, fill, free


def test_read_only_state_folder_plan_and_status_work_apply_refuses(state_fs, monkeypatch, capsys):
    spec, readonly, _, _ = state_fs
    write_built_state(spec)
    (spec.parent / "data/qa.jsonl").touch()  # a new mtime: plan re-hashes and wants to update its cache
    readonly()
    rc, out, err = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 0, err
    assert "6 unchanged" in out and "warning[hash-cache-ignored]" in err and "internal error" not in err
    rc, out, err = run_cli(monkeypatch, capsys, "status", spec)
    assert rc == 0 and "promoted: 20260101-000000-abcdef" in out, err
    (spec.parent / "data/qa.jsonl").write_text('{"question": "q?", "answer": "a."}\n' * 5)
    rc, out, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    root = spec.parent / ".llmspec"
    assert rc == 1 and f"{root}: error[not-writable]" in err and "hint:" in err, err
    assert "sources.qa ..." not in out  # refused before any stage started


def test_unwritable_lock_file_fails_before_any_work(tmp_path, monkeypatch, capsys):
    spec = make_project(tmp_path)
    lock = tmp_path / "llmspec.lock"
    lock.mkdir()  # what no permission bit can hide from root
    rc, out, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    assert rc == 1 and f"{lock}: error[not-writable]" in err and "folder" in err, err
    assert not (tmp_path / ".llmspec/stages").exists() and "sources.qa ..." not in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_read_only_lock_file_fails_before_any_work(tmp_path, monkeypatch, capsys):
    spec = make_project(tmp_path)
    lock = tmp_path / "llmspec.lock"
    lock.write_text("{}")
    lock.chmod(0o444)
    rc, _, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    assert rc == 1 and f"{lock}: error[not-writable]" in err and "read-only" in err, err
    assert not (tmp_path / ".llmspec/stages").exists()


def test_full_disk_during_a_run_is_a_clear_error_and_the_run_is_not_left_running(state_fs, monkeypatch, capsys):
    spec, _, fill, free = state_fs
    import llmspec.runtime.clean.run as clean_run

    real = clean_run.clean_to_files

    def cleaning_on_a_full_disk(*args, **kwargs):
        fill()  # the disk fills up while the run is cleaning
        return real(*args, **kwargs)

    monkeypatch.setattr(clean_run, "clean_to_files", cleaning_on_a_full_disk)
    rc, out, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    root = spec.parent / ".llmspec"
    assert rc == 1 and "error[disk-full]" in err and "internal error" not in err, err
    assert err.startswith(str(root)), err  # names the path it could not write
    monkeypatch.setattr(clean_run, "clean_to_files", real)

    runs = json.loads((root / "state.json").read_text())["runs"]
    assert [r["outcome"] for r in runs] == ["running"]  # the disk was too full to record more
    rc, out, _ = run_cli(monkeypatch, capsys, "status", spec)
    assert rc == 0 and f"last run: {runs[0]['run']} interrupted" in out, out

    free()
    spec.write_text(spec.read_text().replace("min_rows: 3", "min_rows: 1000"))
    rc, _, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    assert rc == 1 and "error[expect-min-rows]" in err, err
    outcomes = [r["outcome"] for r in json.loads((root / "state.json").read_text())["runs"]]
    assert outcomes == ["interrupted", "failed"], outcomes
