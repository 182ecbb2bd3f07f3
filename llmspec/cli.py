"""The `llmspec` command line.

Subcommands are imported only when they run: `llmspec validate` (the pre-commit hook) must
stay fast and must never import polars, torch, transformers or axolotl.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from llmspec.spec.errors import Diagnostic, LlmspecError

# command name -> "module:attribute"; help text kept here so `llmspec --help` imports nothing.
_COMMANDS = {
    "validate": ("llmspec.commands.validate:validate_command", "Check spec files; errors as path:line:col."),
    "schema": ("llmspec.commands.validate:schema_command", "Print or write the spec's JSON Schema."),
    "clean": ("llmspec.commands.clean:clean_command", "Read sources and run the quality rules only."),
    "compile": ("llmspec.commands.compile:compile_command", "Write the Axolotl config, datasets and plan, no training."),
    "plan": ("llmspec.commands.plan:plan_command", "Show what an apply would rebuild, retrain and re-test."),
    "apply": ("llmspec.commands.apply:apply_command", "Run the stale stages: clean, dataset, train, test, promote."),
    "status": ("llmspec.commands.status:status_command", "The promoted run, the last run, fresh and stale stages."),
    "test": ("llmspec.commands.test:test_command", "Re-run acceptance tests on the promoted (or a given) run."),
    "chat": ("llmspec.commands.chat:chat_command", "Chat with the promoted model in the terminal, or get one answer."),
    "export": ("llmspec.commands.export:export_command", "Export the promoted model: adapter, merged weights or Ollama."),
    "serve": ("llmspec.commands.serve:serve_command", "Serve the promoted model over an OpenAI-compatible HTTP API."),
    "feedback": ("llmspec.commands.feedback:feedback_command", "Review ratings and corrections posted to `llmspec serve`."),
    "init": ("llmspec.commands.init:init_command", "Scaffold a new project."),
    "recipes": ("llmspec.commands.init:recipes_command", "List the built-in recipes."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name in _COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = _COMMANDS[name][0].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx, name):
        if name not in _COMMANDS or not self._available(name):
            return None
        module_name, attr = _COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmspec")
def cli() -> None:
    """llmspec: one spec file for fine-tuning an LLM on your own data.

    sources -> quality -> format -> training (Axolotl) -> acceptance, reviewed as a plan.
    """


def print_diagnostics(diags: list[Diagnostic], *, err: bool = True) -> None:
    color = sys.stderr.isatty() if err else sys.stdout.isatty()
    for d in diags:
        head, _, rest = d.render().partition("\n")
        if color:
            style = {"error": "red", "warning": "yellow"}.get(d.severity, "white")
            head = head.replace(f"{d.severity}[", click.style(f"{d.severity}", fg=style, bold=True) + "[", 1)
        click.echo(head, err=err)
        if rest:
            click.echo(rest, err=err)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except LlmspecError as exc:
        print_diagnostics(exc.diagnostics)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # a traceback reaching a user is a bug: say so, and how to report it
        import traceback

        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("This is a bug in llmspec. Run with LLMSPEC_DEBUG=1 for the traceback.", err=True)
        import os

        if os.environ.get("LLMSPEC_DEBUG"):
            traceback.print_exc()
        sys.exit(70)


if __name__ == "__main__":
    main()
