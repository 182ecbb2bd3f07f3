"""`llmspec init` (scaffold a project) and `llmspec recipes` (list the built-in recipes).

The scaffold's files are Python string constants rather than package data, so an
installed llmspec can always write them. Nothing heavy is imported: both commands only
read the spec package and the recipes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click

from llmspec import DISTRIBUTION
from llmspec.spec.errors import Diagnostic, Pos, SpecError, did_you_mean

SPEC_FILE = "llmspec.yaml"
SCHEMA_FILE = ".llmspec.schema.json"
DATA_FILE = "data/examples.jsonl"
PRECOMMIT_FILE = ".pre-commit-config.yaml"
GITIGNORE_FILE = ".gitignore"
# Not `llmspec.yml`: the pre-commit hook validates every file of that name as a spec.
WORKFLOW_FILE = ".github/workflows/llmspec-plan.yml"
STATE_IGNORE = ".llmspec/"

# Kept equal to the `files` pattern of the repository's .pre-commit-hooks.yaml (a test checks).
HOOK_FILES_PATTERN = r"(^|/)(llmspec\.ya?ml|[^/]*\.llmspec\.ya?ml)$"

SPEC_HEAD = """\
# yaml-language-server: $schema={schema}
#
# {project}: one file for the whole fine-tuning job, in six steps:
# sources -> quality -> format -> training parameters -> retraining (Axolotl) -> acceptance.
#
#   llmspec validate {spec}     check it (also runs as a pre-commit hook)
#   llmspec plan {spec}         what an apply would rebuild, retrain and re-test, and why
#   llmspec apply {spec}        run only what changed; state goes to .llmspec/
#
# Your editor completes and documents every key from {schema}
# (regenerate it with `llmspec schema -o {schema}` after upgrading llmspec).
llmspec: 1
project: {project}
description: Fine-tuned on data/examples.jsonl. Replace it with your own data.
"""

SPEC_BASE_MODEL = """
base_model:
  # builtin:tiny is a tiny local model, built offline, for trying llmspec on a laptop CPU.
  # For real work give a Hugging Face id pinned to a commit, or a local folder:
  #   id: meta-llama/Llama-3.2-1B-Instruct
  #   revision: <commit hash>
  id: builtin:tiny
"""

SPEC_BODY = """
sources:                        # step 1: where the data is (paths relative to this file)
  examples:
    path: data/examples.jsonl
    format: jsonl               # jsonl | json | csv | parquet | text | markdown | mbox | eml | sqlite | postgres
    columns: {question: str, answer: str}    # the data contract: a missing column fails the source
    expect: {min_rows: 5}                    # volume check, fails before anything is trained

quality:                        # step 2: clean; every rule is a named, counted reason to drop a row
  rules:
    - drop_corrupt: {}                                  # control characters, undecodable bytes
    - normalize: {columns: [question, answer]}          # NFKC, whitespace collapsed
    - require: {columns: [question, answer]}            # empty or blank values
    - dedupe: {columns: [question], method: exact}      # exact | fingerprint | minhash
  gates:
    max_rejected_fraction: 0.5  # stop before training when cleaning throws away more than this

format:                         # step 3: rows -> training examples
  style: chat                   # chat | alpaca | completion | input_output
  system: You are a helpful assistant.
  map:
    examples: {user: question, assistant: answer}      # a column name or a Jinja template

split: {eval_fraction: 0.1, seed: 42}
"""

# Steps 4 and 5 without a training recipe: small enough to finish in minutes on a CPU.
SPEC_TRAINING = """
training:                       # steps 4 and 5: the parameters, then the Axolotl run
  method: lora                  # lora | qlora | full
  learning_rate: 2.0e-3
  epochs: 10
  sequence_len: 256
  batch: {micro: 2, accumulate: 1}
  hardware: cpu                 # auto | cpu | cuda, or {type: cuda, gpus: 8, strategy: fsdp}
"""

# With a training recipe the file still shows the two values a reviewer most often edits.
SPEC_TRAINING_FROM_RECIPE = """
training:                       # steps 4 and 5; everything else comes from {recipes}
  learning_rate: {learning_rate}
  epochs: {epochs}
"""

SPEC_ACCEPTANCE = """
acceptance:                     # step 6: tests the new model must pass, side by side with the base model
  max_new_tokens: 32
  tests:
    - name: opening-hours
      prompt: When is the support desk open?
      expect: [{icontains: monday to friday}]
  # Gates decide promotion; a failed gate makes `llmspec apply` exit 3 and keeps the
  # previously promoted model. Turn them on once your tests say what "good" means:
  # gates:
  #   pass_rate: ">= 0.9"
  #   beats_baseline: true
"""

EXAMPLE_ROWS = """\
{"question": "When is the support desk open?", "answer": "The support desk is open Monday to Friday, 9am to 5pm."}
{"question": "How do I reset my password?", "answer": "Choose Forgot password on the sign-in page and follow the link we email you."}
{"question": "Can I return a product?", "answer": "Yes, you can return any product within 30 days of delivery for a full refund."}
{"question": "How long does delivery take?", "answer": "Orders arrive within 3 to 5 working days."}
{"question": "Do you ship abroad?", "answer": "We ship to every country in the European Union."}
{"question": "How do I change my delivery address?", "answer": "Open the order in your account and choose Change address before it ships."}
{"question": "Where is my invoice?", "answer": "Every invoice is in your account under Billing, as a PDF file."}
{"question": "How can I contact support?", "answer": "Write to support@example.com or use the chat in the app."}
{"question": "Is my payment information safe?", "answer": "We never store card numbers; payments go through our payment provider."}
{"question": "Can I cancel an order?", "answer": "You can cancel an order until it ships, from the order page in your account."}
"""

PRECOMMIT = """\
# Validates llmspec specs before every commit; errors come as path:line:col.
# Uses the llmspec installed in your environment (the distribution is {dist}; see the
# README's install line), then `pre-commit install` once in this repository.
repos:
  - repo: local
    hooks:
      - id: llmspec-validate
        name: llmspec validate
        entry: llmspec validate
        language: system
        files: {pattern}
        pass_filenames: true
"""

GITIGNORE = """\
# llmspec state: run folders, datasets, checkpoints and models. Machine-local, never committed.
# (llmspec.lock is meant to be committed: it records the data and stages of the last apply.)
{ignore}
"""

WORKFLOW = """\
# llmspec in pull requests: validate the spec, then post `llmspec plan` (what an apply would
# rebuild, retrain and re-test, and why) as a comment. Written by `llmspec init`.
# If this project is not at the root of its repository, move this file to the root's
# .github/workflows/ and set `working-directory` below to the project's folder.
name: llmspec

on:
  pull_request:

permissions:
  contents: read
  pull-requests: write

jobs:
  plan:
    runs-on: ubuntu-latest
    defaults:
      run:
        working-directory: .
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0          # `plan --against` reads the spec as it is on the base branch
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install llmspec
        env:
          # Where pip gets llmspec ({dist}) until it is on the package index: a VCS URL
          # pinned to a tag or commit. Replace the placeholder; the step refuses to run with it.
          LLMSPEC_SOURCE: git+https://github.com/YOUR-ORG/llmspec.git@YOUR-TAG
        run: |
          case "$LLMSPEC_SOURCE" in
            *YOUR-ORG*|*YOUR-TAG*)
              echo "::error::set LLMSPEC_SOURCE in this workflow to the llmspec repository you install from"
              exit 1 ;;
          esac
          # validate and plan need no GPU and no training extras
          pip install "{dist} @ $LLMSPEC_SOURCE"
      - name: Validate
        run: llmspec validate {spec}
      - name: Plan
        run: |
          base="origin/${{{{ github.base_ref }}}}"
          # Against the base branch when the spec exists there; a new project is planned from scratch.
          if git cat-file -e "$base:./{spec}" 2>/dev/null; then
            llmspec plan {spec} --against "$base" --format markdown > "$RUNNER_TEMP/plan.md"
          else
            llmspec plan {spec} --format markdown > "$RUNNER_TEMP/plan.md"
          fi
          cat "$RUNNER_TEMP/plan.md" >> "$GITHUB_STEP_SUMMARY"
      - name: Comment the plan on the pull request
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
        run: |
          gh pr comment "$PR" --body-file "$RUNNER_TEMP/plan.md" --edit-last \\
            || gh pr comment "$PR" --body-file "$RUNNER_TEMP/plan.md"
"""


@dataclass
class ScaffoldFile:
    path: str
    text: str
    what: str


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:64]
    return slug if slug and slug[0].isalnum() else "my-project"


def _recipe_refs(names: tuple[str, ...]) -> list[str]:
    """`recipe:NAME` for each requested recipe; unknown names fail with a did-you-mean."""
    from llmspec.spec.recipes import RECIPE_PREFIX, builtin_recipes

    known = builtin_recipes()
    refs, diags = [], []
    for raw in names:
        name = raw[len(RECIPE_PREFIX):] if raw.startswith(RECIPE_PREFIX) else raw
        if name not in known:
            diags.append(Diagnostic("unknown-recipe", f"there is no built-in recipe '{name}'", Pos("--recipe"),
                                    hint=did_you_mean(name, known) or f"built-in recipes: {', '.join(known)}"))
        elif f"{RECIPE_PREFIX}{name}" not in refs:
            refs.append(f"{RECIPE_PREFIX}{name}")
    if diags:
        raise SpecError(diags)
    return refs


def _recipe_training(refs: list[str]) -> dict | None:
    """The `training` mapping the recipes merge to, or None when none of them sets training."""
    from llmspec.spec.recipes import RECIPE_PREFIX, builtin_recipes, merge
    from llmspec.spec.yamlload import Positions, load_yaml_text

    texts = builtin_recipes()
    data, pos = {}, Positions(key={}, value={})
    for ref in refs:
        name = ref[len(RECIPE_PREFIX):]
        loaded = load_yaml_text(texts[name], f"recipes/{name}.yaml")
        data, pos = merge(data, pos, loaded.data, loaded.positions)
    return data.get("training")


def spec_text(project: str, recipes: list[str]) -> str:
    from llmspec.spec.models import TrainingSpec

    parts = [SPEC_HEAD.format(schema=SCHEMA_FILE, project=project, spec=SPEC_FILE)]
    if recipes:
        parts.append(f"extends: [{', '.join(recipes)}]    # built-in recipes, merged under this file "
                     "(`llmspec recipes` lists them)\n")
    parts += [SPEC_BASE_MODEL, SPEC_BODY]
    training = _recipe_training(recipes)
    if training is None:
        parts.append(SPEC_TRAINING)
    else:
        defaults = TrainingSpec()
        parts.append(SPEC_TRAINING_FROM_RECIPE.format(
            recipes=", ".join(recipes),
            learning_rate=training.get("learning_rate", defaults.learning_rate),
            epochs=training.get("epochs", defaults.epochs)))
    parts.append(SPEC_ACCEPTANCE)
    return "".join(parts)


def scaffold(project: str, recipes: list[str]) -> list[ScaffoldFile]:
    from llmspec.spec.schema import schema_text

    return [
        ScaffoldFile(SPEC_FILE, spec_text(project, recipes), "the spec: the whole job in one file"),
        ScaffoldFile(SCHEMA_FILE, schema_text(), "JSON Schema, so editors complete and check the spec offline"),
        ScaffoldFile(DATA_FILE, EXAMPLE_ROWS, "sample data; replace it with your own"),
        ScaffoldFile(PRECOMMIT_FILE, PRECOMMIT.format(pattern=HOOK_FILES_PATTERN, dist=DISTRIBUTION),
                     "pre-commit hook running `llmspec validate`"),
        ScaffoldFile(GITIGNORE_FILE, GITIGNORE.format(ignore=STATE_IGNORE), "keeps .llmspec/ (state) out of git"),
        ScaffoldFile(WORKFLOW_FILE, WORKFLOW.format(spec=SPEC_FILE, dist=DISTRIBUTION),
                     "CI: validate, and post the plan as a pull-request comment"),
    ]


def _gitignore_has_state(text: str) -> bool:
    return any(line.strip() in (".llmspec", ".llmspec/", "/.llmspec", "/.llmspec/") for line in text.splitlines())


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--recipe", "recipes", multiple=True, metavar="NAME",
              help="Add a built-in recipe to `extends` (repeatable); `llmspec recipes` lists them.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_command(directory: Path, recipes: tuple[str, ...], force: bool) -> None:
    """Scaffold a new project in DIRECTORY (default: the current folder).

    Writes a commented llmspec.yaml that validates as is, its JSON Schema for editors,
    sample data, a pre-commit hook, a .gitignore for the state folder and a CI workflow
    that validates and posts the plan on pull requests. Existing files are never
    overwritten without --force; an existing .gitignore only ever gets the state folder added.
    """
    refs = _recipe_refs(recipes)
    project = _slug(directory.resolve().name)
    files = scaffold(project, refs)
    # A .gitignore is the user's: it only ever gets the state folder added, even with --force.
    keep_gitignore = (directory / GITIGNORE_FILE).is_file()
    existing = [f.path for f in files if (directory / f.path).exists()
                and not (f.path == GITIGNORE_FILE and keep_gitignore)]
    if existing and not force:
        raise SpecError(Diagnostic("file-exists", "refusing to overwrite existing files: " + ", ".join(existing),
                                   Pos(str(directory)), hint="pass --force to replace them"))
    from llmspec.runtime.engine.atomic import write_text_atomic

    written = []
    for f in files:
        target = directory / f.path
        if f.path == GITIGNORE_FILE and keep_gitignore:
            text = target.read_text(encoding="utf-8")
            if _gitignore_has_state(text):
                continue
            f = ScaffoldFile(f.path, text + ("" if text.endswith("\n") or not text else "\n") + f.text,
                             "added .llmspec/ to your .gitignore")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, f.text)
        written.append(f)
    spec = directory / SPEC_FILE
    click.echo(f"Created project '{project}' in {directory}:")
    width = max(len(f.path) for f in written)
    for f in written:
        click.echo(f"  {f.path:<{width}}  {f.what}")
    click.echo("\nNext:")
    for verb in ("validate", "plan", "apply"):
        click.echo(f"  llmspec {verb} {spec}")


@click.command("recipes")
def recipes_command() -> None:
    """List the built-in recipes and when to use each (`extends: [recipe:NAME]`)."""
    from rich.console import Console

    from llmspec.spec.recipes import builtin_recipes, recipe_description

    rows = [(name, recipe_description(text)) for name, text in builtin_recipes().items()]
    console = Console(highlight=False)
    if not console.is_terminal:
        for name, desc in rows:
            click.echo(f"recipe:{name}\t{desc}")
        return
    from rich.table import Table

    table = Table(title="Built-in recipes: use as `extends: [recipe:NAME]`", show_lines=True)
    table.add_column("recipe", style="bold", no_wrap=True)
    table.add_column("when to use it")
    for name, desc in rows:
        table.add_row(f"recipe:{name}", desc)
    console.print(table)
