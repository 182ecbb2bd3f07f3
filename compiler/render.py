"""Plan output for people (text, markdown for pull requests) and machines (json)."""

from __future__ import annotations

import json
from typing import Any

from .diff import PlanDiff, StageDiff

PLAN_JSON_FORMAT_VERSION = 1
_STYLE = {"=": "dim", "~": "yellow", "+": "green", "-": "red", "?": "cyan"}


def _stage_line(s: StageDiff) -> str:
    if s.action == "unchanged":
        return f"  {s.symbol} {s.id}"
    if s.action == "removed":
        return f"  {s.symbol} {s.id}  (remove)"
    word = {"new": f"{s.verb}, new", "unknown": f"{s.verb}, read at apply"}.get(s.action, s.verb)
    return f"  {s.symbol} {s.id}  ({word})"


def render_text(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str, color: bool = False) -> str:
    lines = [f"llmspec plan for {project} (compared with {diff.baseline})", ""]
    for s in diff.stages:
        line = _stage_line(s)
        if color:
            line = f"[{_STYLE[s.symbol]}]{_escape(line)}[/]"
        lines.append(line)
        for c in s.changes:
            lines.append(f"      {_escape(c.render()) if color else c.render()}")
        for r in s.reasons:
            lines.append(f"      {_escape(r) if color else r}")
    if diff.metadata:
        lines.append("")
        lines.append("  Metadata only (no stage changes):")
        for m in diff.metadata:
            lines.append(f"      {m.render()}")
    lines.append("")
    lines.append(diff.summary())
    if estimates:
        lines.append(_estimate_line(estimates))
    return "\n".join(lines)


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


def render_markdown(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str) -> str:
    icon = {"=": "⚪", "~": "🟡", "+": "🟢", "-": "🔴", "?": "🔵"}
    out = [f"### llmspec plan: `{project}`", "", f"**{diff.summary()}**", "",
           "| | stage | action | why |", "|---|---|---|---|"]
    for s in diff.stages:
        why = "<br>".join([f"`{c.render()}`" for c in s.changes] + s.reasons) or (
            "new" if s.action == "new" else "unchanged")
        action = "unchanged" if s.action == "unchanged" else ("remove" if s.action == "removed" else s.verb)
        why = why.replace("|", "\\|")
        out.append(f"| {icon[s.symbol]} | `{s.id}` | {action} | {why} |")
    if diff.metadata:
        out += ["", "Metadata only (no stage changes): " + ", ".join(f"`{m.render()}`" for m in diff.metadata)]
    if estimates:
        out += ["", _estimate_line(estimates)]
    out += ["", f"<sub>compared with {diff.baseline}</sub>"]
    return "\n".join(out)


def render_json(diff: PlanDiff, estimates: dict[str, Any] | None, *, project: str, plan: dict | None = None) -> str:
    return json.dumps({"format_version": PLAN_JSON_FORMAT_VERSION, "project": project, **diff.to_dict(),
                       "estimates": estimates, **({"plan": plan} if plan is not None else {})},
                      indent=2, default=str)
