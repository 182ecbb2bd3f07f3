"""`llmspec init`: the scaffold validates as is, its hook and CI workflow work, nothing is
overwritten without --force, and --recipe lands in `extends`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from llmspec.commands.init import HOOK_FILES_PATTERN, WORKFLOW_FILE
from llmspec.spec.load import check_spec
from llmspec.spec.schema import schema_text

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCAFFOLD = ("llmspec.yaml", ".llmspec.schema.json", "data/examples.jsonl", ".pre-commit-config.yaml",
            ".gitignore", WORKFLOW_FILE)


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def llmspec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmspec.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=_env())


def _yaml(path: Path):
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path) -> Path:
    out = llmspec("init", str(tmp_path / "proj"))
    assert out.returncode == 0, out.stderr
    return tmp_path / "proj"


def test_init_writes_the_scaffold_and_it_validates(project):
    for rel in SCAFFOLD:
        assert (project / rel).is_file(), rel
    out = llmspec("validate", "llmspec.yaml", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "llmspec.yaml: ok" in out.stdout
    spec = check_spec(project / "llmspec.yaml").spec
    assert spec.project == "proj" and spec.base_model.id == "builtin:tiny"


def test_spec_points_editors_at_the_schema_init_wrote(project):
    first = (project / "llmspec.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=.llmspec.schema.json"
    assert (project / ".llmspec.schema.json").read_text() == schema_text()
    from jsonschema import Draft202012Validator

    schema = json.loads((project / ".llmspec.schema.json").read_text())
    Draft202012Validator(schema).validate(_yaml(project / "llmspec.yaml"))


def test_sample_data_fits_the_declared_columns(project):
    spec = check_spec(project / "llmspec.yaml").spec
    rows = [json.loads(line) for line in (project / "data/examples.jsonl").read_text().splitlines()]
    assert len(rows) >= spec.sources["examples"].expect.min_rows
    assert all(set(r) == set(spec.sources["examples"].columns) for r in rows)
    # The scaffold's acceptance test asks about something the sample data answers.
    test = spec.acceptance.tests[0]
    row = next(r for r in rows if r["question"] == test.prompt)
    assert test.expect[0]["icontains"] in row["answer"].lower()


def test_gitignore_keeps_state_out(project):
    assert ".llmspec/" in (project / ".gitignore").read_text().splitlines()


def test_precommit_hook_matches_the_published_hook(project):
    config = _yaml(project / ".pre-commit-config.yaml")
    (hook,) = [h for repo in config["repos"] for h in repo["hooks"]]
    assert hook["id"] == "llmspec-validate" and hook["entry"] == "llmspec validate"
    published = _yaml(REPO / ".pre-commit-hooks.yaml")
    (ours,) = [h for h in published if h["id"] == "llmspec-validate"]
    assert hook["files"] == HOOK_FILES_PATTERN == ours["files"]
    assert config["repos"][0]["hooks"][0]["pass_filenames"] is True


def _git(cwd: Path, *args: str) -> str:
    env = {**_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.mark.skipif(shutil.which("git") is None or not (BIN / "pre-commit").exists(), reason="needs git and pre-commit")
def test_precommit_hook_runs_validate(project, tmp_path):
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    env = {**_env(), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    run = lambda: subprocess.run([str(BIN / "pre-commit"), "run", "--all-files"], cwd=project, env=env,  # noqa: E731
                                 capture_output=True, text=True, timeout=300)
    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("\nproject:", "\nprojekt:"))
    bad = run()
    assert bad.returncode == 1
    assert "error[unknown-key]" in bad.stdout and "did you mean 'project'?" in bad.stdout
    # Only the spec is checked: the workflow file is not mistaken for one.
    assert "workflows" not in bad.stdout


def test_workflow_validates_and_posts_the_markdown_plan(project):
    wf = _yaml(project / WORKFLOW_FILE)
    assert "pull_request" in wf["on"]
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "llmspec validate llmspec.yaml" in runs
    assert "llmspec plan llmspec.yaml --against" in runs and "--format markdown" in runs
    assert "gh pr comment" in runs
    assert any(s.get("uses", "").startswith("actions/checkout") and s["with"]["fetch-depth"] == 0 for s in steps)


def _pyproject_distribution() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


def test_workflow_installs_the_distribution_pyproject_declares(project):
    from packaging.requirements import Requirement

    wf = _yaml(project / WORKFLOW_FILE)
    (step,) = [s for job in wf["jobs"].values() for s in job["steps"] if s.get("name") == "Install llmspec"]
    (line,) = [ln.strip() for ln in step["run"].splitlines() if ln.strip().startswith("pip install")]
    source = step["env"]["LLMSPEC_SOURCE"]
    req = Requirement(line.removeprefix("pip install ").strip('"').replace("$LLMSPEC_SOURCE", source))
    assert req.name == _pyproject_distribution() != "llmspec"  # "llmspec" on PyPI is someone else's
    # Until it is published: from a VCS URL the user sets, never the index by name.
    assert req.url and req.url.startswith("git+https://")


def test_workflow_install_step_refuses_the_placeholder(project, tmp_path):
    wf = _yaml(project / WORKFLOW_FILE)
    (step,) = [s for job in wf["jobs"].values() for s in job["steps"] if s.get("name") == "Install llmspec"]
    # `pip` is a stub here: the step must stop before it is reached.
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "pip").write_text("#!/bin/sh\necho pip-called $@\n")
    (stub / "pip").chmod(0o755)
    env = {**_env(), "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
    placeholder = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], capture_output=True, text=True,
                                 env={**env, "LLMSPEC_SOURCE": step["env"]["LLMSPEC_SOURCE"]})
    assert placeholder.returncode == 1 and "set LLMSPEC_SOURCE" in placeholder.stdout
    assert "pip-called" not in placeholder.stdout
    real = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], capture_output=True, text=True,
                          env={**env, "LLMSPEC_SOURCE": "git+https://example.org/acme/llmspec.git@v0.1.0"})
    assert real.returncode == 0, real.stdout + real.stderr
    assert f"pip-called install {_pyproject_distribution()} @ git+https://example.org/acme/llmspec.git@v0.1.0" \
        in real.stdout


def test_distribution_constant_and_readme_agree_with_pyproject():
    from llmspec import DISTRIBUTION

    assert DISTRIBUTION == _pyproject_distribution()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"pip install '{DISTRIBUTION}[train]" in readme or f'pip install "{DISTRIBUTION}' in readme
    assert "pip install llmspec " not in readme and "pip install 'llmspec[" not in readme


@pytest.mark.skipif(not (BIN / "check-jsonschema").exists(), reason="check-jsonschema is not installed")
def test_workflow_passes_the_github_workflow_schema(project):
    out = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                          str(project / WORKFLOW_FILE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _workflow_script(project: Path, step_name: str) -> str:
    wf = _yaml(project / WORKFLOW_FILE)
    (step,) = [s for job in wf["jobs"].values() for s in job["steps"] if s.get("name") == step_name]
    return step["run"].replace("${{ github.base_ref }}", "main")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_workflow_plan_step_runs_on_a_pull_request_branch(project, tmp_path):
    """The workflow's own Plan script, run as CI would: a clone, a branch that edits the spec."""
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "scaffold")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    _git(clone, "checkout", "-q", "-b", "tune")
    spec = clone / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("learning_rate: 2.0e-3", "learning_rate: 1.0e-3"))
    env = {**_env(), "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    out = subprocess.run(["bash", "-e", "-c", _workflow_script(clone, "Plan")], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    plan = (tmp_path / "plan.md").read_text()
    assert "learning_rate" in plan and "0.002" in plan and "0.001" in plan
    assert (tmp_path / "summary.md").read_text() == plan


def test_init_refuses_to_overwrite(project):
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text() + "# my edits\n")
    before = {rel: (project / rel).read_bytes() for rel in SCAFFOLD}
    out = llmspec("init", str(project))
    assert out.returncode == 1
    assert "error[file-exists]" in out.stderr and "llmspec.yaml" in out.stderr and "--force" in out.stderr
    assert {rel: (project / rel).read_bytes() for rel in SCAFFOLD} == before


def test_init_refuses_even_one_existing_file_and_writes_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "examples.jsonl").write_text("mine\n")
    out = llmspec("init", str(tmp_path))
    assert out.returncode == 1 and "data/examples.jsonl" in out.stderr
    assert not (tmp_path / "llmspec.yaml").exists()
    assert (tmp_path / "data" / "examples.jsonl").read_text() == "mine\n"


def test_force_overwrites(project):
    spec = project / "llmspec.yaml"
    spec.write_text("garbage: true\n")
    out = llmspec("init", str(project), "--force")
    assert out.returncode == 0, out.stderr
    assert check_spec(spec).spec is not None


def test_existing_gitignore_gets_the_state_folder_added(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules/")
    out = llmspec("init", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[0] == "node_modules/" and ".llmspec/" in lines
    again = llmspec("init", str(tmp_path), "--force")
    assert again.returncode == 0
    text = (tmp_path / ".gitignore").read_text()
    assert text.startswith("node_modules/\n") and text.count(".llmspec/\n") == 1


@pytest.mark.parametrize("recipes", [["qlora-7b-1gpu"], ["recipe:lora-small", "support-email"],
                                     ["instruction-hygiene"], ["full-8gpu-fsdp"]])
def test_recipe_goes_into_extends_and_still_validates(tmp_path, recipes):
    args = [a for r in recipes for a in ("--recipe", r)]
    out = llmspec("init", str(tmp_path / "p"), *args)
    assert out.returncode == 0, out.stderr
    loaded = check_spec(tmp_path / "p" / "llmspec.yaml")
    assert not loaded.errors, [d.render() for d in loaded.errors]
    assert loaded.data["extends"] == [r if r.startswith("recipe:") else f"recipe:{r}" for r in recipes]
    recipe_training = {"qlora-7b-1gpu": ("qlora", "cuda"), "full-8gpu-fsdp": ("full", "cuda")}
    for r in recipes:
        if r in recipe_training:  # the recipe's method and hardware are not overridden by the scaffold
            assert (loaded.spec.training.method, loaded.spec.training.hw.type) == recipe_training[r]


def test_unknown_recipe_is_refused_with_a_suggestion(tmp_path):
    out = llmspec("init", str(tmp_path / "p"), "--recipe", "qlora-7b")
    assert out.returncode == 1
    assert "error[unknown-recipe]" in out.stderr and "did you mean 'qlora-7b-1gpu'?" in out.stderr
    assert not (tmp_path / "p").exists()
