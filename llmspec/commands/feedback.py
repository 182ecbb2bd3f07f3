"""`llmspec feedback SPEC list|show|export`: what people said about the served model's answers."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _store(spec: Path):
    from llmspec.api import load_spec
    from llmspec.runtime.feedback.location import store_target
    from llmspec.runtime.feedback.store import FeedbackStore

    loaded = load_spec(spec)
    return FeedbackStore.open(store_target(loaded.base_dir, loaded.spec.serve.log.store), create=False)


def _filters(f):
    f = click.option("--rating", type=click.Choice(["up", "down", "corrected"]),
                     help="Only this verdict (corrected: any entry with a correction).")(f)
    f = click.option("--run", "run_id", help="Only answers of this run.")(f)
    f = click.option("--since", help="Only exchanges at or after this ISO date/time (UTC), e.g. 2026-12-01.")(f)
    f = click.option("--until", help="Only exchanges before this ISO date/time (UTC).")(f)
    return f


@click.group("feedback")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def feedback_command(ctx: click.Context, spec: Path) -> None:
    """Review the ratings and corrections posted to `llmspec serve` (POST /v1/feedback):
    `llmspec feedback SPEC list|show ID|export --out FILE`."""
    ctx.obj = spec


@feedback_command.command("list")
@_filters
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_command(spec: Path, rating: str | None, run_id: str | None, since: str | None, until: str | None,
                 as_json: bool) -> None:
    """Exchanges with feedback, oldest first."""
    store = _store(spec)
    try:
        entries = store.entries(rating=rating, run=run_id, since=since, until=until)
        total = store.exchanges_count()
    finally:
        store.close()
    if as_json:
        for e in entries:
            click.echo(json.dumps(e.to_dict(), ensure_ascii=False))
        return
    for e in entries:
        prompt = next((m["content"] for m in reversed(e.messages) if m["role"] == "user"), "")
        verdict = (e.rating or "-") + (" +correction" if e.correction else "")
        click.echo(f"{e.id}  {e.created_at[:19]}  {verdict:<16} {_clip(prompt, 60)}")
    click.echo(f"{len(entries)} with feedback (of {total} logged exchanges)", err=True)


@feedback_command.command("show")
@click.argument("exchange_id")
@click.pass_obj
def show_command(spec: Path, exchange_id: str) -> None:
    """One exchange in full: the conversation, the answer, the feedback."""
    from llmspec.spec.errors import Diagnostic, LlmspecError

    store = _store(spec)
    try:
        entry = store.get(exchange_id)
    finally:
        store.close()
    if entry is None:
        raise LlmspecError(Diagnostic("unknown-exchange", f"no exchange has the id {exchange_id!r}",
                                      hint="`llmspec feedback SPEC list` shows the ids"))
    click.echo(f"exchange {entry.id}  run {entry.run}  at {entry.created_at}")
    for m in entry.messages:
        click.echo(f"[{m['role']}] {m['content']}")
    click.echo(f"[answer] {entry.answer}")
    click.echo(f"[rating] {entry.rating or '-'}")
    if entry.correction:
        click.echo(f"[correction] {entry.correction}")
    if entry.note:
        click.echo(f"[note] {entry.note}")


@feedback_command.command("export")
@_filters
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL file to write.")
@click.pass_obj
def export_command(spec: Path, rating: str | None, run_id: str | None, since: str | None, until: str | None,
                   out: Path) -> None:
    """Write the entries as JSONL (one exchange with its latest feedback per line)."""
    from llmspec.runtime.engine.atomic import write_text_atomic

    store = _store(spec)
    try:
        entries = store.entries(rating=rating, run=run_id, since=since, until=until)
    finally:
        store.close()
    write_text_atomic(out, "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in entries))
    click.echo(f"wrote {len(entries)} entries to {out}")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
