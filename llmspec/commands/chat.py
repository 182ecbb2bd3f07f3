"""`llmspec chat`: talk to the promoted (or a given) run in the terminal, or get one answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("chat")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_id", help="Chat with this run instead of the promoted one.")
@click.option("--base", is_flag=True, help="Chat with the base model (same prompt layout), not the tuned one.")
@click.option("--compare", is_flag=True, help="Show the base model's answer beside the tuned one.")
@click.option("--prompt", "prompt", help="Answer this one prompt and exit (stdout: only the answer).")
@click.option("--json", "as_json", is_flag=True, help="With --prompt: print {run, prompt, answer[, base_answer]}.")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1), help="Longest answer.")
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(0, 2),
              help="0 answers greedily, as the acceptance tests judged the model.")
@click.option("--system", "system", help="Replace the system prompt the run trained with.")
def chat_command(spec: Path, run_id: str | None, base: bool, compare: bool, prompt: str | None, as_json: bool,
                 max_tokens: int, temperature: float, system: str | None) -> None:
    """Chat with the promoted model, with the system prompt and chat template it was trained
    with. Type /reset to start over, /exit (or Ctrl-D) to leave."""
    from llmspec.api import load_spec
    from llmspec.runtime.serve.chat import ChatSession
    from llmspec.runtime.serve.target import resolve_run

    if as_json and prompt is None:
        raise click.UsageError("--json needs --prompt")
    if base and compare:
        raise click.UsageError("--base and --compare: pick one")
    run = resolve_run(load_spec(spec), run_id)
    click.echo(f"Loading run {run.run}{' (base model)' if base else ''}...", err=True)
    model = run.load_base() if base else run.load()
    base_model = run.load_base() if compare and not run.adapter else None
    session = ChatSession(model, system=run.system if system is None else (system or None),
                          max_tokens=max_tokens, temperature=temperature, base=base_model)
    if prompt is not None:
        answer, base_answer = session.ask(prompt, compare=compare)
        if as_json:
            out = {"run": run.run, "prompt": prompt, "answer": answer}
            if compare:
                out["base_answer"] = base_answer
            click.echo(json.dumps(out, ensure_ascii=False))
        elif compare:
            click.echo(f"tuned: {answer}\nbase:  {base_answer}")
        else:
            click.echo(answer)
        return
    _interactive(session, compare, label="base" if base else "tuned")


def _interactive(session, compare: bool, label: str) -> None:
    color = sys.stdout.isatty()
    click.echo("Type a message; /reset starts over, /exit leaves.", err=True)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    while True:
        try:
            user = input("> " if color else "")
        except EOFError:
            click.echo("", err=True)
            return
        command = user.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            click.echo("(conversation cleared)", err=True)
            continue
        write(click.style(f"{label}: ", fg="green", bold=True) if color else f"{label}: ")
        started = []

        def base_delta(text: str) -> None:
            if not started:  # the tuned answer is complete once the base one starts
                started.append(True)
                write("\n" + (click.style("base:  ", fg="yellow", bold=True) if color else "base:  "))
            write(text)

        session.ask(user, on_delta=write, compare=compare, on_base_delta=base_delta)
        write("\n")
