"""The README and the user docs are executed, so they cannot drift from the code.

Fenced blocks are marked in their info string (GitHub shows only the first word):

- ```` ```bash runnable ````: a script run with ``bash -e -o pipefail``; must exit 0.
- ```` ```console runnable ````: ``$ `` lines are commands run in one shell, the other lines
  their expected output (stdout and stderr together), compared line by line; a line ``...``
  stands for any number of lines, and ``...`` inside a line for any text. A command may fail only when the next command is
  ``echo $?``, whose shown output then checks the exit code.
- ```` ```yaml runnable ````: a complete spec that must validate. ```` ```yaml runnable fragment ````:
  a part of a spec, validated merged over the last complete spec of the document, or over
  ``examples/support-bot/llmspec.yaml`` before the first (as `extends` merges). Specs are
  written beside the support-bot data (``at=DIR`` elsewhere).
- ``file=PATH`` on any block writes its text to PATH first (for a later block to use).
- ``slow``: trains or runs Axolotl; skipped unless ``LLMSPEC_RUN_SLOW_DOCS=1``.
- ``norun``: shown only (``make demo``, output excerpts). Every bash, console, sh and yaml
  block must say ``runnable`` or ``norun``, so nothing is left unchecked by accident.

Every document runs in its own temporary folder holding a copy of ``examples/``, with the
venv's ``bin`` first on PATH, so commands are written as from the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/spec-language.md", "docs/cli.md", "docs/gitops.md", "docs/gpu.md", "docs/state.md",
        "docs/troubleshooting.md", "docs/after-promotion.md"]
CHECKED_LANGS = {"bash", "console", "sh", "shell", "yaml", "yml"}
RUN_SLOW = os.environ.get("LLMSPEC_RUN_SLOW_DOCS") == "1"
MARK = "@@llmspec-docs-command-done@@"


@dataclass
class Block:
    doc: str
    line: int                      # 1-based line of the opening fence
    lang: str
    flags: set[str]
    attrs: dict[str, str]
    body: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def parse_blocks(doc: str, text: str) -> list[Block]:
    """Fenced blocks, also those indented inside list items (the indentation is removed)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^( *)(`{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).split()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        assert end is not None, f"{doc}:{i + 1}: unclosed code fence"
        body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:end]]
        lang = info[0] if info else ""
        flags = {w for w in info[1:] if "=" not in w}
        attrs = dict(w.split("=", 1) for w in info[1:] if "=" in w)
        blocks.append(Block(doc, i + 1, lang, flags, attrs, "\n".join(body) + "\n"))
        i = end + 1
    return blocks


def line_matches(expected: str, actual: str) -> bool:
    """Equality, where `...` inside a line stands for any text (a temporary path, a timing)."""
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line matching where an expected line `...` matches any number of lines."""
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(expected):
                memo[i, j] = j == len(actual)
            elif expected[i] == "...":
                memo[i, j] = any(go(i + 1, k) for k in range(j, len(actual) + 1))
            else:
                memo[i, j] = j < len(actual) and line_matches(expected[i], actual[j]) and go(i + 1, j + 1)
        return memo[i, j]

    return go(0, 0)


def _trim(lines: list[str]) -> list[str]:
    lines = [ln.rstrip() for ln in lines]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def parse_console(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) pairs. A command continues on lines after one ending in
    `\\`, and on `> ` lines right after it (the shell's continuation prompt, e.g. a heredoc)."""
    steps: list[tuple[str, list[str]]] = []
    open_cmd = False
    for line in body.splitlines():
        if open_cmd and (steps[-1][0].endswith("\\") or line.startswith("> ") or line == ">"):
            text = line[2:] if line.startswith("> ") else ("" if line == ">" else line)
            steps[-1] = (steps[-1][0] + "\n" + text, [])
        elif line.startswith("$ "):
            steps.append((line[2:], []))
            open_cmd = True
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
            open_cmd = False
    return steps


@dataclass
class DocRun:
    root: Path
    env: dict[str, str]
    last_spec: Path | None = None
    skipped: list[str] = field(default_factory=list)

    def run(self, block: Block) -> None:
        if "file" in block.attrs:
            target = self.root / block.attrs["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
        if "runnable" not in block.flags:
            return
        if "slow" in block.flags and not RUN_SLOW:
            self.skipped.append(block.where)
            return
        if block.lang in ("yaml", "yml"):
            self._spec(block)
        elif block.lang == "console":
            self._console(block)
        else:
            self._bash(block)

    def _spec(self, block: Block) -> None:
        from llmspec.spec.load import check_spec

        yaml = YAML(typ="safe", pure=True)
        if "fragment" in block.flags:
            if self.last_spec is None:
                self.last_spec = self.root / "examples/support-bot/llmspec.yaml"
            data = yaml.load(block.body) or {}
            data["extends"] = [self.last_spec.name] + list(data.get("extends") or [])
            path = self.last_spec.parent / f"_readme_{block.line}.yaml"
            with open(path, "w", encoding="utf-8") as fh:
                yaml.dump(data, fh)
        else:
            folder = self.root / block.attrs.get("at", "examples/support-bot")
            path = self.root / block.attrs["file"] if "file" in block.attrs else folder / f"_readme_{block.line}.yaml"
            path.write_text(block.body, encoding="utf-8")
        result = check_spec(path)
        assert not result.errors, f"{block.where}: the spec does not validate:\n" + "\n".join(
            d.render() for d in result.errors)
        if "fragment" not in block.flags:
            self.last_spec = path

    def _bash(self, block: Block) -> None:
        out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.body], cwd=self.root, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        assert out.returncode == 0, f"{block.where}: exit {out.returncode}\n{block.body}\n--- output:\n{out.stdout}"

    def _console(self, block: Block) -> None:
        steps = parse_console(block.body)
        script = "".join(f"{cmd}\n__rc=$?; printf '\\n{MARK} %d\\n' \"$__rc\"; (exit $__rc)\n" for cmd, _ in steps)
        out = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=self.root, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        chunks = out.stdout.split(f"\n{MARK} ")
        assert len(chunks) == len(steps) + 1, f"{block.where}: the shell stopped early:\n{out.stdout}"
        codes = [int(c.split("\n", 1)[0]) for c in chunks[1:]]
        outputs = [chunks[0]] + [c.split("\n", 1)[1] if "\n" in c else "" for c in chunks[1:-1]]
        for n, ((cmd, expected), code, actual) in enumerate(zip(steps, codes, outputs)):
            nxt = steps[n + 1][0].strip() if n + 1 < len(steps) else ""
            assert code == 0 or nxt == "echo $?", f"{block.where}: `{cmd}` exited {code}:\n{actual}"
            got = _trim(actual.splitlines())
            assert lines_match(_trim(expected), got), (
                f"{block.where}: output of `{cmd}` differs.\n--- expected:\n" + "\n".join(expected)
                + "\n--- got:\n" + "\n".join(got))


def _copy_examples(dest: Path) -> None:
    """The examples as committed (no state, no lock files an apply here left behind)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "examples"], cwd=REPO, capture_output=True, check=True
                               ).stdout.decode().split("\0")
        files = [f for f in files if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        shutil.copytree(REPO / "examples", dest / "examples",
                        ignore=shutil.ignore_patterns(".llmspec", "llmspec.lock", "__pycache__"))
        return
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMSPEC_", "PYTEST_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "TERM": "dumb", "NO_COLOR": "1",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1",
        "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false",
        "GIT_AUTHOR_NAME": "docs", "GIT_AUTHOR_EMAIL": "docs@example.com",
        "GIT_COMMITTER_NAME": "docs", "GIT_COMMITTER_EMAIL": "docs@example.com", "GIT_CONFIG_NOSYSTEM": "1",
        "PRE_COMMIT_HOME": str(tmp / ".pre-commit-home"),
    })
    return env


def _blocks(doc: str) -> list[Block]:
    return parse_blocks(doc, (REPO / doc).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the runner's own rules


def test_lines_match_wildcards():
    assert lines_match(["a", "...", "d"], ["a", "b", "c", "d"])
    assert lines_match(["a", "...", "b"], ["a", "b"])
    assert not lines_match(["a", "d"], ["a", "b", "d"])
    assert not lines_match(["a", "...", "d"], ["a", "b", "c"])
    assert lines_match(["looked in .../examples"], ["looked in /tmp/x/examples"])
    assert not lines_match(["looked in .../examples"], ["looked in /tmp/x/data"])


def test_console_parsing():
    steps = parse_console("$ llmspec plan x \\\n    --format json\n{}\n$ echo $?\n0\n")
    assert steps == [("llmspec plan x \\\n    --format json", ["{}"]), ("echo $?", ["0"])]
    steps = parse_console("$ cat > f <<'EOF'\n> a: 1\n> EOF\n$ cat f\na: 1\n> quoted output\n")
    assert steps == [("cat > f <<'EOF'\na: 1\nEOF", []), ("cat f", ["a: 1", "> quoted output"])]


# ----------------------------------------------------------------------------- the documents


@pytest.mark.parametrize("doc", DOCS)
def test_every_shell_and_yaml_block_is_marked(doc):
    unmarked = [b.where for b in _blocks(doc) if b.lang in CHECKED_LANGS and not b.flags & {"runnable", "norun"}]
    assert unmarked == [], "mark these blocks `runnable` (executed by this test) or `norun`"


def test_the_readme_runs_something():
    blocks = _blocks("README.md")
    runnable = [b for b in blocks if "runnable" in b.flags and "slow" not in b.flags]
    assert len([b for b in runnable if b.lang in ("bash", "console")]) >= 5
    assert len([b for b in runnable if b.lang == "yaml"]) >= 3
    # The two commands of the README are shown but never run here (they would run this test).
    shown = "\n".join(b.body for b in blocks if "norun" in b.flags)
    assert "make demo" in shown and "make test" in shown


@pytest.mark.parametrize("doc", DOCS)
def test_doc_blocks_run(doc, tmp_path):
    _copy_examples(tmp_path)
    run = DocRun(tmp_path, _env(tmp_path))
    for block in _blocks(doc):
        run.run(block)
    if run.skipped:
        print(f"skipped slow blocks (LLMSPEC_RUN_SLOW_DOCS=1 runs them): {', '.join(run.skipped)}")


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    text = (REPO / doc).read_text(encoding="utf-8")
    text = re.sub(r"^(`{3,}).*?^\1", "", text, flags=re.M | re.S)  # links inside code are not links
    base = (REPO / doc).parent
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (base / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert broken == []


def test_cli_reference_covers_every_verb_and_option():
    import click

    from llmspec.cli import _COMMANDS, cli

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    reference = (REPO / "docs/cli.md").read_text(encoding="utf-8")
    ctx = click.Context(cli)
    missing = []
    for name in _COMMANDS:
        command = cli.get_command(ctx, name)
        if command is None:
            continue
        if f"llmspec {name}" not in readme:
            missing.append(f"README: llmspec {name}")
        if f"## `llmspec {name}" not in reference:
            missing.append(f"docs/cli.md: a `## llmspec {name}` section")
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in reference:
                    missing.append(f"docs/cli.md: llmspec {name} {opt}")
    assert missing == []


def test_spec_language_reference_names_every_key():
    """Every key of the JSON Schema (generated from the models) is named in docs/spec-language.md."""
    from llmspec.spec.schema import json_schema

    def keys(node) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            found |= set(node.get("properties", {}))
            for value in node.values():
                found |= keys(value)
        elif isinstance(node, list):
            for value in node:
                found |= keys(value)
        return found

    reference = (REPO / "docs/spec-language.md").read_text(encoding="utf-8")
    missing = sorted(k for k in keys(json_schema()) if f"`{k}`" not in reference)
    assert missing == []


def test_docs_holds_only_the_user_docs_the_readme_links():
    # Contributor notes live in contributing/: a user browsing docs/ meets only documentation.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"docs/{doc.name} is not linked from the README"
