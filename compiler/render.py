"""Plan output for people (text, markdown for pull requests) and machines (json)."""

from __future__ import annotations

import json
import re
from typing import Any

from .changes import ChangeOp, FieldChange
from .diff import SHOWN_BY_CHANGES, PlanAction, PlanDiff, Reason, ReasonCode, StageDiff

# 2: each reason is {code, message[, stage]} (was a sentence); each change has an `op`, and long
# text a `diff` (unified, without file headers).
PLAN_JSON_FORMAT_VERSION = 2
_STYLE = {"=": "dim", "~": "yellow", "+": "green", "-": "red", "?": "cyan"}


def _stage_line(s: StageDiff) -> str:
    if s.action == PlanAction.UNCHANGED:
        return f"  {s.symbol} {s.id}"
    if s.action == PlanAction.REMOVED:
        return f"  {s.symbol} {s.id}  (remove)"
    word = {PlanAction.NEW: f"{s.verb}, new", PlanAction.UNKNOWN: f"{s.verb}, read at apply"}.get(s.action, s.verb)
    return f"  {s.symbol} {s.id}  ({word})"


def shown_reasons(s: StageDiff) -> list[Reason]:
    """The reasons a person needs beside the stage line and its changes: "new" is in the stage
    line, and a changed config, data or base model is in the change lines when there are any."""
    return [r for r in s.reasons if r.code != ReasonCode.NEW and not (s.changes and r.code in SHOWN_BY_CHANGES)]


def render_text(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str, color: bool = False,
                notes: list[str] | tuple[str, ...] = ()) -> str:
    lines = [f"llmspec plan for {project} (compared with {diff.baseline})", ""]
    for s in diff.stages:
        line = _stage_line(s)
        if color:
            line = f"[{_STYLE[s.symbol]}]{_escape(line)}[/]"
        lines.append(line)
        for c in s.changes:
            lines += _change_lines(c, color)
        for r in shown_reasons(s):
            lines.append(f"      {_escape(r.message) if color else r.message}")
    if diff.metadata:
        lines.append("")
        lines.append("  Metadata only (changes no output):")
        for m in diff.metadata:
            lines += _change_lines(m, color)
    lines.append("")
    lines.append(diff.summary())
    if estimates:
        lines.append(_estimate_line(estimates))
    lines.extend(_escape(n) if color else n for n in notes)
    return "\n".join(lines)


_LINE_STYLE = {"+": "green", "-": "red", "@": "cyan"}
_OP_STYLE = {ChangeOp.ADDED: "green", ChangeOp.REMOVED: "red"}


def _change_lines(c: FieldChange, color: bool) -> list[str]:
    out = []
    for i, line in enumerate(c.lines()):
        text = f"      {_escape(line) if color else line}"
        # the first line by what happened to the item, diff lines by their unified-diff mark
        style = _OP_STYLE.get(c.op) if i == 0 or not c.is_long else _LINE_STYLE.get(line[2:3])
        if color and style:
            # a trailing backslash would escape the closing tag: rich would print "[/]"
            text = f"[{style}]{text}{' ' if text.endswith(chr(92)) else ''}[/]"
        out.append(text)
    return out


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _estimate_line(e: dict[str, Any]) -> str:
    parts = []
    if e.get("examples") is not None:
        parts.append(f"{e['examples']:,} examples")
    if e.get("tokens") is not None:
        approx = "~" if e.get("tokens_approximate") else ""
        parts.append(f"{approx}{e['tokens']:,} tokens")
    if e.get("steps") is not None:
        parts.append(f"{e['steps']:,} steps ({e.get('steps_per_epoch', '?')}/epoch)")
    times = e.get("time")
    if isinstance(times, dict) and times:
        parts.append(" / ".join(f"~{v['human']} on {k}" for k, v in times.items()))
    if not parts:
        return "Estimates: unknown until the data has been read once (run `llmspec clean`)."
    note = f" [{e['basis']}]" if e.get("basis") else ""
    return "Estimates: " + ", ".join(parts) + note


def render_markdown(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str, notes: list[str] | tuple[str, ...] = ()) -> str:
    icon = {"=": "⚪", "~": "🟡", "+": "🟢", "-": "🔴", "?": "🔵"}
    out = [f"### llmspec plan: `{project}`", "", f"**{diff.summary()}**", "",
           "| | stage | action | why |", "|---|---|---|---|"]
    details: list[FieldChange] = []
    for s in diff.stages:
        why = "<br>".join([f"`{_code(c.render())}`" for c in s.changes] + [r.message for r in shown_reasons(s)]) or (
            "new" if s.action == PlanAction.NEW else "unchanged")
        action = ("unchanged" if s.action == PlanAction.UNCHANGED else
                  "remove" if s.action == PlanAction.REMOVED else s.verb)
        why = why.replace("|", "\\|")
        out.append(f"| {icon[s.symbol]} | `{s.id}` | {action} | {why} |")
        details += [c for c in s.changes if c.detail()]
    if diff.metadata:
        out += ["", "Metadata only (changes no output): " + ", ".join(f"`{_code(m.render())}`" for m in diff.metadata)]
    for c in details:
        out += ["", _details(c)]
    if estimates:
        out += ["", _estimate_line(estimates)]
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    out += ["", f"<sub>compared with {diff.baseline}</sub>"]
    return "\n".join(out)


def _code(text: str) -> str:
    return text.replace("`", "'")


def _details(c: FieldChange) -> str:
    """A long change as a collapsed ```diff block under the table (a table cell cannot hold it);
    an added item's fields as added lines."""
    body = c.detail() if c.is_long else [f"+ {x}" for x in c.detail()]
    fence = "`" * max(3, 1 + max((len(run) for x in body for run in re.findall(r"`+", x)), default=0))
    what = c.render().split(": ", 1)[-1] if c.is_long else c.op.value
    return "\n".join([f"<details><summary><code>{_html(c.path)}</code>: {_html(what)}</summary>", "",
                      fence + "diff", *body, fence, "", "</details>"])


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_json(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str, plan: dict | None = None) -> str:
    return json.dumps({"format_version": PLAN_JSON_FORMAT_VERSION, "project": project, **diff.to_dict(),
                       "estimates": estimates, **({"plan": plan} if plan is not None else {})},
                      indent=2, default=str)
