"""Project state beside the spec.

- `.llmspec/state.json`: for each stage, the fingerprint, canonical config and output of its
  last successful build; the run history; the promoted run. Private to this machine.
- `llmspec.lock`: meant to be committed. Source content hashes, base model id and revision,
  and each stage's fingerprint at the last apply, so a pull request shows when data changed
  and `plan` works in CI without `.llmspec/`.
- `.llmspec/apply.lock`: an advisory file lock so two applies never run on one project.

Every write is atomic (temp file + rename).
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

from llmspec.runtime.engine.atomic import write_json_atomic, write_text_atomic

STATE_VERSION = 1
LOCK_VERSION = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class StageRecord:
    fingerprint: str
    config: dict[str, Any]
    run: str                       # the run that built it
    outputs: dict[str, Any]        # paths (relative to the state dir) and figures
    built_at: str


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
        path = root / "state.json"
        if not path.exists():
            return cls(root=root)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(Diagnostic("state-corrupt", f"cannot read {path}: {exc}", Pos(str(path)),
                                        hint="move it away; the next apply rebuilds every stage")) from None
        stages = {k: StageRecord(**v) for k, v in raw.get("stages", {}).items()}
        return cls(root=root, stages=stages, runs=raw.get("runs", []), promoted=raw.get("promoted"))

    def save(self) -> None:
        write_json_atomic(self.path, {
            "version": STATE_VERSION,
            "stages": {k: vars(v) for k, v in sorted(self.stages.items())},
            "runs": self.runs[-200:],
            "promoted": self.promoted,
        })

    @property
    def last_run(self) -> dict[str, Any] | None:
        return self.runs[-1] if self.runs else None

    def record_run(self, run: dict[str, Any]) -> None:
        for i, r in enumerate(self.runs):
            if r["run"] == run["run"]:
                self.runs[i] = run
                break
        else:
            self.runs.append(run)


def read_lockfile(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateError(Diagnostic("lockfile-corrupt", f"{path} is not valid JSON: {exc}", Pos(str(path)),
                                    hint="restore it from git, or delete it and run apply")) from None
    return data if isinstance(data, dict) else None


def write_lockfile(path: Path, *, project: str, source_files: dict, base_model: dict, stages: dict[str, str],
                   source_rows: dict[str, int] | None = None) -> None:
    body = {
        "lock_version": LOCK_VERSION,
        "project": project,
        "base_model": base_model,
        "sources": {name: {"files": files, **({"rows": source_rows[name]} if source_rows and name in source_rows
                                              else {})}
                    for name, files in sorted(source_files.items())},
        "stages": dict(sorted(stages.items())),
    }
    # Sorted, indented JSON: a lock file is reviewed in diffs.
    write_text_atomic(path, json.dumps(body, indent=2, sort_keys=True) + "\n")


class ApplyLock:
    """An exclusive, non-blocking lock on the project. The holder is written into the file."""

    def __init__(self, root: Path):
        self.path = root / "apply.lock"
        self._fh = None

    def __enter__(self) -> "ApplyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StateError(Diagnostic(
                "locked", f"another apply is running on this project ({holder})", Pos(str(self.path)),
                hint="wait for it to finish; the lock is released when that process exits")) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {now_iso()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
