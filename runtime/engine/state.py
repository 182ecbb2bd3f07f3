"""Project state beside the spec.

- `.llmspec/state.json`: for each stage, the fingerprint, canonical config and output of its
  last successful build; the run history; the promoted run. Private to this machine.
- `llmspec.lock`: meant to be committed. Source content hashes, base model id and revision,
  and each stage's fingerprint at the last apply, so a pull request shows when data changed
  and `plan` works in CI without `.llmspec/`.
- `.llmspec/apply.lock`: an advisory file lock so two applies never run on one project.

Every write is atomic (temp file + rename). Every read is checked against a versioned model
(runtime/engine/artifacts.py): a damaged or newer file is a located error, never a traceback.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmspec.spec.errors import Diagnostic, Pos, StateError

from llmspec.runtime.engine import artifacts
from llmspec.runtime.engine.artifacts import (ApplyLockInfo, LockFile, Promotion, RunOutcome, RunRecord,
                                              StageRecord, StateFile)
from llmspec.runtime.engine.atomic import write_text_atomic

__all__ = ["ApplyLock", "RunOutcome", "StageRecord", "State", "check_state_root", "now_iso", "read_lockfile",
           "write_lockfile"]

RUN_HISTORY = 200


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def check_state_root(root: Path) -> None:
    """`.llmspec` is a folder, or not there yet."""
    if root.exists() and not root.is_dir():
        raise StateError(Diagnostic("state-corrupt", "a file where llmspec keeps its state folder", Pos(str(root)),
                                    hint="llmspec keeps its state in this folder: move the file away"))


@dataclass
class State:
    root: Path                     # the .llmspec folder
    stages: dict[str, StageRecord] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    promoted: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.root / "state.json"

    @classmethod
    def load(cls, root: Path) -> "State":
        check_state_root(root)
        path = root / "state.json"
        if not path.exists() and not path.is_symlink():
            return cls(root=root)
        data = artifacts.load(StateFile, path)
        return cls(root=root, stages=dict(data.stages),
                   runs=[r.model_dump(mode="json", exclude_none=True) for r in data.runs],
                   promoted=data.promoted.model_dump(mode="json") if data.promoted else None)

    def save(self) -> None:
        body = StateFile(stages=self.stages, runs=[RunRecord.model_validate(r) for r in self.runs[-RUN_HISTORY:]],
                         promoted=Promotion.model_validate(self.promoted) if self.promoted else None)
        artifacts.save(body, self.path)

    @property
    def last_run(self) -> dict[str, Any] | None:
        return self.runs[-1] if self.runs else None

    def record_run(self, run: dict[str, Any]) -> None:
        # Checked now, so a field the state file cannot hold fails where it is made, not at the next load.
        run = RunRecord.model_validate(run).model_dump(mode="json", exclude_none=True)
        for i, r in enumerate(self.runs):
            if r["run"] == run["run"]:
                self.runs[i] = run
                break
        else:
            self.runs.append(run)

    def fail_unfinished_run(self, run_id: str) -> bool:
        """Record `run_id` as failed if it is still shown `running` (its executor stopped on an
        error it did not record); whether it was."""
        for run in self.runs:
            if run["run"] == run_id and run.get("outcome") == RunOutcome.RUNNING:
                run["outcome"] = RunOutcome.FAILED.value
                run["finished_at"] = now_iso()
                return True
        return False

    def mark_interrupted_runs(self) -> list[str]:
        """Runs still shown `running` whose process is gone become `interrupted`; their ids.

        Call it holding the ApplyLock (then no other apply runs, so every `running` run is
        over), before recording a new run; save() afterwards."""
        ended = []
        for run in self.runs:
            if run.get("outcome") == RunOutcome.RUNNING:
                run["outcome"] = RunOutcome.INTERRUPTED.value
                ended.append(run["run"])
        return ended


def read_lockfile(path: Path) -> LockFile | None:
    """`llmspec.lock`, checked; None when there is none."""
    if not path.exists() and not path.is_symlink():
        return None
    return artifacts.load(LockFile, path)


def parse_lockfile(text: str, shown: str) -> LockFile:
    """A lock file's text from elsewhere (`git show REV:llmspec.lock`), checked; `shown` names it."""
    return artifacts.parse(LockFile, artifacts.read_json(shown, LockFile, text=text), shown)


def write_lockfile(path: Path, *, project: str, source_files: dict, base_model: dict, stages: dict[str, str],
                   source_rows: dict[str, int] | None = None, metadata: dict[str, Any] | None = None) -> None:
    lock = LockFile(
        project=project, base_model=base_model, stages=dict(sorted(stages.items())), metadata=metadata,
        sources={name: {"files": files, **({"rows": source_rows[name]} if source_rows and name in source_rows
                                           else {})}
                 for name, files in sorted(source_files.items())})
    write_text_atomic(path, lock.text())


class ApplyLock:
    """An exclusive, non-blocking lock on the project. The holder is written into the file.

    `held(root)` tells, without taking it, whether some apply holds it now."""

    def __init__(self, root: Path):
        self.path = root / "apply.lock"
        self._fh = None

    def _open(self):
        check_state_root(self.path.parent)
        if self.path.is_dir():
            raise StateError(Diagnostic("state-corrupt", "a folder where the apply lock file should be",
                                        Pos(str(self.path)), hint="move it away (no apply can run meanwhile)"))
        from llmspec.runtime.engine.writable import writing

        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+", encoding="utf-8")

    @staticmethod
    def _holder(text: str) -> dict | None:
        try:
            data = json.loads(text)
        except ValueError:
            return None  # a holder still writing, or a lock from before the holder was JSON
        return data if isinstance(data, dict) else None

    def __enter__(self) -> "ApplyLock":
        fh = self._open()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            text = fh.read().strip()
            fh.close()
            holder = "another process"
            data = self._holder(text)
            if data is not None:
                try:
                    holder = artifacts.parse(ApplyLockInfo, data, self.path).holder()
                except StateError:
                    pass  # who holds it is only shown; that someone does is what counts
            raise StateError(Diagnostic(
                "locked", f"another apply is running on this project ({holder})", Pos(str(self.path)),
                hint="wait for it to finish; the lock is released when that process exits")) from None
        try:
            fh.seek(0)
            left = self._holder(fh.read().strip())
            if left is not None:
                # Left by an apply that died holding it. One from a newer llmspec may mean a newer
                # locking scheme this one cannot honour: refuse rather than run beside it.
                artifacts.check_version(left, self.path, ApplyLockInfo)
            from llmspec.runtime.engine.writable import writing

            with writing(self.path):
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(ApplyLockInfo(pid=os.getpid(), host=socket.gethostname(),
                                                  since=now_iso()).dump(), sort_keys=True))
                fh.flush()
        except BaseException:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
            raise
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
            except OSError:
                pass  # a full disk cannot stop the release; the holder text is only informative
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @staticmethod
    def held(root: Path) -> bool:
        """Whether an apply holds the lock of the project at `root` right now."""
        path = root / "apply.lock"
        try:
            fh = open(path, "rb")
        except OSError:
            return False
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                return False
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
