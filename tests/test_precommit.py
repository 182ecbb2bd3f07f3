"""The `llmspec-validate` hook under real `pre-commit`, in a temporary git repository.

pre-commit installs hooks from a git commit, so the repository under test is snapshotted as
it is on disk (tracked and untracked, ignored files left out) into a throwaway repo and
committed there: the hook that runs is the code being tested, uncommitted edits included,
and /work/main's own git state is never touched. pre-commit then builds its own virtualenv
with `pip install .` (the core package only), as it would for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINIMAL_SPEC, REPO_ROOT

# the hook's virtualenv takes ~30 s to build; one xdist worker builds it once for the module
pytestmark = pytest.mark.slow

pytest.importorskip("pre_commit", reason="pre-commit is a dev dependency: pip install -e '.[dev]'")
if shutil.which("git") is None:
    pytest.skip("git is not installed", allow_module_level=True)

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def snapshot(dest: Path) -> str:
    """Copy the working tree (minus ignored files) into a new repo at dest; return its commit."""
    try:
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT)
    except subprocess.CalledProcessError:
        pytest.skip(f"{REPO_ROOT} is not a git checkout; pre-commit installs hooks from git")
    for name in filter(None, listed.split("\0")):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "snapshot of the repository under test", cwd=dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("precommit")
    hook_repo, proj = root / "hook-repo", root / "project"
    hook_repo.mkdir()
    proj.mkdir()
    rev = snapshot(hook_repo)
    git("init", "-q", cwd=proj)
    (proj / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n      - id: llmspec-validate\n",
        encoding="utf-8")
    (proj / ".home").mkdir()
    return proj


def pre_commit(project: Path, *files: str) -> subprocess.CompletedProcess:
    git("add", "-A", cwd=project)
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(project / ".home"), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run([sys.executable, "-m", "pre_commit", "run", "--files", *files], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)


def write(project: Path, name: str, text: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_good_spec_passes(project):
    write(project, "llmspec.yaml", MINIMAL_SPEC)
    proc = pre_commit(project, "llmspec.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "llmspec validate" in proc.stdout and "Passed" in proc.stdout


def test_bad_spec_fails_with_file_and_line(project):
    text = MINIMAL_SPEC + "training:\n  learnig_rate: 0.001\n"
    write(project, "llmspec.yaml", text)
    proc = pre_commit(project, "llmspec.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = text.splitlines().index("  learnig_rate: 0.001") + 1
    assert f"llmspec.yaml:{line}:3: error[unknown-key]" in proc.stdout
    assert "did you mean 'learning_rate'?" in proc.stdout
    assert "Failed" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_hook_checks_named_spec_files_and_skips_other_yaml(project):
    bad = MINIMAL_SPEC.replace("format: jsonl", "format: jsonlines")
    write(project, "configs/support.llmspec.yaml", bad)
    write(project, "configs/other.yaml", bad)
    write(project, "llmspec.yaml", MINIMAL_SPEC)
    proc = pre_commit(project, "configs/support.llmspec.yaml", "configs/other.yaml", "llmspec.yaml")
    assert proc.returncode == 1
    line = bad.splitlines().index("    format: jsonlines") + 1
    assert f"configs/support.llmspec.yaml:{line}:13: error[invalid-value]" in proc.stdout
    assert "other.yaml" not in proc.stdout

    proc = pre_commit(project, "configs/other.yaml")
    assert proc.returncode == 0
    assert "(no files to check)Skipped" in proc.stdout
