"""``report.md``: the run in a form fit for a pull-request comment.

Short on purpose (a reviewer reads it between other comments): outcome, gates, pass rates, the
data funnel, training figures and the failed tests. The full story is in ``report.html``.
Table cells are escaped so that model output cannot break a table or inject markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from llmspec.runtime.engine.atomic import write_text_atomic

from .failures import failed_assertions, failed_tests
from .html import format_date
from .usage import usage_commands

_ICON = {"promoted": "✅", "gates_failed": "❌", "failed": "💥", "built": "📦",
         "retest_passed": "✅", "retest_failed": "❌"}
_LABEL = {"promoted": "promoted", "gates_failed": "gates failed, not promoted",
          "failed": "run failed", "built": "built (no gates)",
          "retest_passed": "tests re-run, every error gate passes",
          "retest_failed": "tests re-run, an error gate fails"}
MAX_FAILED_TESTS = 10
CELL_CHARS = 80


def write_markdown_report(report: Mapping[str, Any], path: Path) -> Path:
    """Write ``render_markdown(report)`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    write_text_atomic(path, render_markdown(report))
    return path


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown summary of a RunReport dict; absent sections are left out."""
    lines = _header(report)
    for part in (_acceptance(report.get("acceptance")), _retention(report.get("acceptance")),
                 _comparison(report.get("comparison")), _feedback(report.get("feedback")),
                 _funnel(report.get("sources")),
                 _dataset(report.get("dataset")), _training(report.get("training")),
                 _use(report), _artifacts(report.get("artifacts"))):
        if part:
            lines += ["", *part]
    return "\n".join(lines).rstrip() + "\n"


def _header(report: Mapping[str, Any]) -> list[str]:
    outcome = str(report.get("outcome") or "")
    icon = _ICON.get(outcome, "ℹ️")
    label = _LABEL.get(outcome, outcome or "unknown outcome")
    title = f"## {icon} {_text(report.get('project') or 'llmspec')}"
    if report.get("run"):
        title += f" · run `{_code(report['run'])}`"
    meta = [x for x in (_text(format_date(report.get("created_at"))),
                        f"spec `{_code(report['spec_path'])}`" if report.get("spec_path") else "",
                        _text(report.get("plan_summary") or "")) if x]
    lines = [f"{title}: **{label}**"]
    if meta:
        lines += ["", " · ".join(meta)]
    return lines


def _acceptance(acc: Mapping[str, Any] | None) -> list[str]:
    if not acc:
        return []
    tests = [t for t in acc.get("tests") or [] if isinstance(t, Mapping)]
    n = len(tests)
    passed = sum(bool(t.get("passed")) for t in tests)
    line = f"**Pass rate:** fine-tuned **{_pct(acc.get('pass_rate'))}**"
    line += f" ({passed}/{n})" if n else ""
    if acc.get("base_pass_rate") is not None:
        base_passed = sum(bool((t.get("base") or {}).get("passed")) for t in tests)
        line += f" vs base model {_pct(acc.get('base_pass_rate'))}"
        line += f" ({base_passed}/{n})" if n else ""
    lines = ["### Acceptance", "", line]
    gates = acc.get("gates") or []
    if gates:
        lines += ["", "| Gate | Severity | Threshold | Value | Result |", "|---|---|---|---:|---|"]
        for g in gates:
            ok = bool(g.get("passed"))
            result = "✅ pass" if ok else ("⚠️ fail" if g.get("severity") == "warn" else "❌ fail")
            lines.append(f"| `{_code(g.get('name', ''))}` | {_cell(g.get('severity') or 'error')} "
                         f"| `{_code(g.get('threshold') or '')}` | {_num(g.get('value'))} "
                         f"| {result} |")
    failed = failed_tests(acc)
    if failed:
        lines += ["", f"**Failed tests ({len(failed)}):**"]
        for t in failed[:MAX_FAILED_TESTS]:
            bad = failed_assertions(t)
            why = "; ".join(f"`{_code(a.get('key', ''))}` expected `{_code(a.get('expected', ''), 40)}`"
                            f", got `{_code(a.get('got', ''), 60)}`" for a in bad[:2])
            if len(bad) > 2:
                why += f"; +{len(bad) - 2} more"
            lines.append(f"- **{_text(t.get('name', ''))}**: {why or 'failed'}")
        if len(failed) > MAX_FAILED_TESTS:
            lines.append(f"- … and {len(failed) - MAX_FAILED_TESTS} more (see report.html)")
    return lines


def _retention(acc: Mapping[str, Any] | None) -> list[str]:
    ret = (acc or {}).get("retention")
    if not ret:
        return []
    if not ret.get("enabled"):
        return ["### Retention", "", f"Off: {_text(ret.get('reason') or 'not run')}."]
    drift = ret.get("drift") or {}
    lines = ["### Retention", "",
             f"**{_text(ret.get('suite'))}:** fine-tuned **{_pct(ret.get('pass_rate'))}** "
             f"({ret.get('passed')}/{ret.get('tests')}) vs base model {_pct(ret.get('base_pass_rate'))} "
             f"({ret.get('base_passed')}/{ret.get('tests')}); drift {float(drift.get('delta') or 0):+.3f} "
             f"nats/token (the base model's own answers: {float(drift.get('base_nll') or 0):.3f} under the base, "
             f"{float(drift.get('tuned_nll') or 0):.3f} under the fine-tuned model)",
             "", "| Tag | Base | Fine-tuned | Drop |", "|---|---:|---:|---:|"]
    for tag, v in (ret.get("by_tag") or {}).items():
        lines.append(f"| {_text(tag)} | {v['base_passed']}/{v['tests']} | {v['passed']}/{v['tests']} "
                     f"| {100 * v['drop']:+.0f} pts |")
    lost = ret.get("lost") or []
    if lost:
        lines += ["", f"**Lost prompts ({len(lost)}), base right and fine-tuned wrong:**", "",
                  "| Prompt | Base model | Fine-tuned |", "|---|---|---|"]
        for item in lost[:MAX_FAILED_TESTS]:
            lines.append(f"| {_cell(_one(item.get('prompt')))} | {_cell(_one(item.get('base_output')))} "
                         f"| {_cell(_one(item.get('output')))} |")
    return lines


def _one(value: Any, limit: int = 120) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
def _comparison(cmp: Mapping[str, Any] | None) -> list[str]:
    if not cmp:
        return []
    lines = [f"### Since run `{_code(cmp.get('run') or '')}`", ""]
    rate = cmp.get("pass_rate") or {}
    if rate:
        lines.append(f"- Pass rate: {_pct(rate.get('before'))} → **{_pct(rate.get('now'))}**")
    tests = cmp.get("tests") or {}
    for key, label in (("fixed", "Now passing"), ("broken", "Now failing"), ("added", "New tests"),
                       ("removed", "Removed tests")):
        if tests.get(key):
            lines.append(f"- {label}: " + ", ".join(f"`{_code(n)}`" for n in tests[key]))
    for s in cmp.get("sources") or []:
        if s.get("changed"):
            (in_b, in_a), (kept_b, kept_a) = s["rows_in"], s["rows_kept"]
            rules = "; ".join(f"{_cell(r['rule'])} {r['before']:,} → {r['now']:,}" for r in s.get("rules") or [])
            lines.append(f"- Source {_text(s['source'])}: rows in {in_b:,} → {in_a:,}, kept {kept_b:,} → {kept_a:,}"
                         + (f" ({rules})" if rules else ""))
    return lines if len(lines) > 2 else lines + ["- No change in pass rate, tests or data funnel."]


def _feedback(fb: Mapping[str, Any] | None) -> list[str]:
    if not fb:
        return []
    lines = ["### Feedback from `llmspec serve`", ""]
    for name, src in (fb.get("sources") or {}).items():
        ratings = ", ".join(f"{_cell(r)} {n:,}" for r, n in (src.get("by_rating") or {}).items()) or "none"
        lines.append(f"- `{_code(name)}`: {src.get('read', 0):,} rated exchanges read, {src.get('kept', 0):,} "
                     f"became examples ({ratings})")
        for reason, n in (src.get("not_used") or {}).items():
            lines.append(f"  - not used, {n:,}: {_text(reason)}")
        for s in src.get("samples") or []:
            lines.append(f"  - `{_code(s.get('exchange'))}` ({_cell(s.get('rating'))}): {_cell(s.get('prompt'))} → "
                         f"learns {_cell(s.get('learned'))} (the model said {_cell(s.get('answer_was'))})")
    tests = fb.get("tests") or []
    if tests:
        lines += ["", f"Cases people corrected, on the new model: **{fb.get('fixed', 0)} of {len(tests)} now pass**.",
                  "", "| Test | Result | Prompt | Correction | Answer now |", "|---|---|---|---|---|"]
        for t in tests:
            lines.append(f"| `{_code(t['name'])}` | {'✅ pass' if t.get('passed') else '❌ fail'} | "
                         f"{_cell(t.get('prompt'))} | {_cell(t.get('correction'))} | {_cell(t.get('answer_now'))} |")
    return lines


def _funnel(sources: Mapping[str, Any] | None) -> list[str]:
    if not sources:
        return []
    lines = ["### Data", "", "| Source | Rows in | Rejected (by rule) | Kept |", "|---|---:|---|---:|"]
    total_in = total_kept = 0
    for name, src in sources.items():
        src = src or {}
        rows_in, kept = int(src.get("rows_in") or 0), int(src.get("rows_kept") or 0)
        total_in, total_kept = total_in + rows_in, total_kept + kept
        rejected = sorted((src.get("rejected") or {}).items(), key=lambda kv: -kv[1])
        detail = ", ".join(f"{_cell(rule)} {n:,}" for rule, n in rejected if n) or "none"
        share = f" ({100 * kept / rows_in:.1f}%)" if rows_in else ""
        fmt = f" ({_cell(src['format'])})" if src.get("format") else ""
        lines.append(f"| {_cell(name)}{fmt} | {rows_in:,} | {detail} | {kept:,}{share} |")
    if len(sources) > 1:
        lines.append(f"| **total** | {total_in:,} | {total_in - total_kept:,} | {total_kept:,} |")
    for name, src in sources.items():
        extra = (src or {}).get("extra_columns") or {}
        if extra:
            keys = ", ".join(f"`{_cell(k)}` ({n:,} rows)" for k, n in sorted(extra.items()))
            lines += ["", f"{_cell(name)}: keys the `columns` contract does not declare: {keys}"]
    return lines


def _dataset(ds: Mapping[str, Any] | None) -> list[str]:
    if not ds:
        return []
    parts = [f"{_int(ds.get('train'))} train", f"{_int(ds.get('eval'))} eval"]
    if ds.get("leakage_removed"):
        parts.append(f"{_int(ds['leakage_removed'])} leaked eval rows removed")
    parts += [f"{n:,} rejected by {_cell(rule)}" for rule, n in (ds.get("rejected") or {}).items()]
    lengths = sorted(x for x in ds.get("token_lengths") or [] if isinstance(x, int))
    if lengths:
        median = lengths[len(lengths) // 2]
        p95 = lengths[min(len(lengths) - 1, round(0.95 * (len(lengths) - 1)))]
        parts.append(f"tokens per example: median {median:,}, p95 {p95:,}, max {lengths[-1]:,}")
    style = f" ({_cell(ds['style'])})" if ds.get("style") else ""
    return [f"**Dataset{style}:** " + " · ".join(parts)]


def _training(tr: Mapping[str, Any] | None) -> list[str]:
    if not tr:
        return []
    final = tr.get("final") or {}
    head = " · ".join(x for x in (
        _cell(tr.get("method") or ""), f"`{_code(tr['base_model'])}`" if tr.get("base_model") else "",
        f"on {_cell(tr['hardware'])}" if tr.get("hardware") else "") if x)
    figures = [f"{_int(tr.get('steps'))} steps" if tr.get("steps") is not None else "",
               f"{_num(tr.get('epochs'))} epochs" if tr.get("epochs") is not None else "",
               _duration(tr.get("duration_s")),
               f"train loss {_num(final.get('train_loss'))}" if final.get("train_loss") is not None else "",
               f"eval loss {_num(final.get('eval_loss'))}" if final.get("eval_loss") is not None else "",
               f"{_num(final.get('tokens_per_second'))} tokens/s"
               if final.get("tokens_per_second") is not None else ""]
    pref = tr.get("preference") or {}
    if pref:
        # What shows the preference method ran: the rewards TRL's trainer logged at the last step.
        figures.append("last step: " + ", ".join(f"{_cell(k)} {_num(v)}" for k, v in sorted(pref.items())))
    return [f"**Training:** {head}", "", " · ".join(f for f in figures if f)]


def _use(report: Mapping[str, Any]) -> list[str]:
    # As the HTML report: a run that trained a model, whatever its gates said.
    commands = usage_commands(report) if report.get("outcome") in ("promoted", "built", "gates_failed") else []
    if not commands:
        return []
    lines = ["### Use this model", ""]
    for what, command in commands:
        lines += [f"- {_text(what)}: `{_code(command, 400)}`"]
    return lines


def _artifacts(art: Mapping[str, Any] | None) -> list[str]:
    if not art:
        return []
    return ["**Files:** " + " · ".join(f"{_cell(k)} `{_code(v)}`" for k, v in art.items() if v)]


# --------------------------------------------------------------------------- escaping & numbers

def _text(value: Any) -> str:
    """Prose-safe: no HTML a Markdown renderer would honour, no line breaks."""
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", " ").replace("\n", " "))


def _cell(value: Any, limit: int = CELL_CHARS) -> str:
    return _clip(_text(value), limit).replace("|", "\\|")


def _code(value: Any, limit: int = CELL_CHARS) -> str:
    """Text for inside a single-backtick span: backticks and newlines would end it early, and
    GitHub splits table cells on | even inside code."""
    text = " ".join(str(value).split())
    return _clip(text, limit).replace("`", "'").replace("|", "\\|")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pct(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) else f"{100 * x:.1f}%"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _cell(x)
    if isinstance(x, int) or (float(x).is_integer() and abs(x) >= 1):
        return f"{int(x):,}"
    return f"{x:.4g}"


def _int(x: Any) -> str:
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return "–"


def _duration(s: Any) -> str:
    if not isinstance(s, (int, float)):
        return ""
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m else f"{s:.1f} s"
