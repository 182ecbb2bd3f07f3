"""The last lines of ``apply`` / ``test`` on a terminal: gates and pass rates, a short summary
of what failed (one ``FAILED`` line per test and gate, like pytest's), then where the full
reports are. Meaning never rides on colour alone (every verdict is also a word), so the
output reads the same through a pipe or in a CI log."""

from __future__ import annotations

from typing import Any, Mapping

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .failures import failed_assertions, failed_gates, failed_tests

_OUTCOME = {"promoted": ("green", "promoted"),
            "gates_failed": ("red", "gates failed: not promoted"),
            "failed": ("red", "run failed"),
            "built": ("cyan", "built (no acceptance gates)"),
            "retest_passed": ("green", "tests re-run: every error gate passes"),
            "retest_failed": ("red", "tests re-run: an error gate fails")}
MAX_FAILED_TESTS = 10          # more than this and the rest are counted: the report has them all
GOT_CHARS = 80
_REPORT_FILES = (("report_html", "HTML report"), ("report_md", "Markdown summary"),
                 ("junit", "JUnit results"), ("model", "Model"), ("log", "Log"))


def print_summary(report: Mapping[str, Any], console: Console) -> None:
    """Print the outcome, a table of gates and pass rates, and the report paths."""
    outcome = str(report.get("outcome") or "")
    style, label = _OUTCOME.get(outcome, ("bold", outcome or "unknown"))
    title = escape(str(report.get("run") or report.get("project") or "run"))
    console.print(f"[bold]{title}[/bold]: [{style}]{escape(label)}[/{style}]", highlight=False)

    acc = report.get("acceptance") or {}
    if acc:
        console.print(_rates_line(acc), highlight=False)
        for line in retention_lines(acc.get("retention")):
            console.print(escape(line), highlight=False, soft_wrap=True)
        gates = acc.get("gates") or []
        if gates:
            console.print(_gates_table(gates))
        for line in short_summary(acc):
            console.print(escape(line), highlight=False, soft_wrap=True)
    elif report.get("sources"):
        rows_in = sum(int((s or {}).get("rows_in") or 0) for s in report["sources"].values())
        kept = sum(int((s or {}).get("rows_kept") or 0) for s in report["sources"].values())
        console.print(f"No acceptance tests ran. Data: {rows_in:,} rows in, {kept:,} kept.",
                      highlight=False)

    artifacts = report.get("artifacts") or {}
    for key, name in _REPORT_FILES:
        if artifacts.get(key):
            console.print(f"  {name + ':':<18}{escape(str(artifacts[key]))}", highlight=False,
                          soft_wrap=True)


def short_summary(acc: Mapping[str, Any]) -> list[str]:
    """``FAILED test: kind expected X, got Y`` for each failed test, then ``FAILED gate ...``
    (``WARNED`` for a failed warn gate): plain text, so a CI log says what to fix."""
    tests, gates = failed_tests(acc), failed_gates(acc)
    if not tests and not gates:
        return []
    lines = ["Short summary:"]
    for t in tests[:MAX_FAILED_TESTS]:
        bad = failed_assertions(t)
        why = "; ".join(f"{a.get('key', '')} expected {_one_line(a.get('expected'))!r}, "
                        f"got {_one_line(a.get('got'))!r}" for a in bad[:2]) or "failed"
        if len(bad) > 2:
            why += f"; +{len(bad) - 2} more"
        lines.append(f"FAILED {t.get('name', '')}: {why}")
    if len(tests) > MAX_FAILED_TESTS:
        lines.append(f"... and {len(tests) - MAX_FAILED_TESTS} more failed tests (see the report)")
    for g in gates:
        verdict = "WARNED" if g.get("severity") == "warn" else "FAILED"
        threshold = f" {g['threshold']}" if g.get("threshold") else ""
        lines.append(f"{verdict} gate {g.get('name', '')}{threshold}: {g.get('message') or 'failed'}")
    return lines


def retention_lines(ret: Mapping[str, Any] | None, *, lost: int = 5) -> list[str]:
    """The retention figures beside the domain pass rate, and the first prompts it lost."""
    if not ret:
        return []
    if not ret.get("enabled"):
        return [f"Retention: off ({ret.get('reason') or 'not run'})"]
    drift = ret.get("drift") or {}
    lines = [f"Retention ({ret.get('suite')}): fine-tuned {_pct(ret.get('pass_rate'))} "
             f"({ret.get('passed')}/{ret.get('tests')})   base model {_pct(ret.get('base_pass_rate'))} "
             f"({ret.get('base_passed')}/{ret.get('tests')})   drop {100 * float(ret.get('drop') or 0):+.1f} pts   "
             f"drift {float(drift.get('delta') or 0):+.3f} nats/token"]
    tags = ret.get("by_tag") or {}
    if tags:
        lines.append("  by tag: " + ", ".join(f"{t} {v['passed']}/{v['tests']} (base {v['base_passed']})"
                                               for t, v in tags.items()))
    for item in (ret.get("lost") or [])[:lost]:
        lines.append(f"  LOST {item.get('name')}: base {_one_line(item.get('base_output'))!r} -> "
                     f"fine-tuned {_one_line(item.get('output'))!r}")
    more = len(ret.get("lost") or []) - lost
    if more > 0:
        lines.append(f"  ... and {more} more lost prompts (see the report)")
    return lines


def _one_line(value: Any) -> str:
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= GOT_CHARS else text[: GOT_CHARS - 1] + "…"


def _rates_line(acc: Mapping[str, Any]) -> str:
    tests = [t for t in acc.get("tests") or [] if isinstance(t, Mapping)]
    n = len(tests)
    passed = sum(bool(t.get("passed")) for t in tests)
    line = f"Pass rate: fine-tuned [bold]{_pct(acc.get('pass_rate'))}[/bold]"
    line += f" ({passed}/{n})" if n else ""
    if acc.get("base_pass_rate") is not None:
        base = sum(bool((t.get("base") or {}).get("passed")) for t in tests)
        line += f"   base model {_pct(acc.get('base_pass_rate'))}" + (f" ({base}/{n})" if n else "")
    return line


def _gates_table(gates: list[Mapping[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("Gate")
    table.add_column("Severity")
    table.add_column("Threshold")
    table.add_column("Value", justify="right")
    table.add_column("Result")
    for g in gates:
        ok = bool(g.get("passed"))
        severity = str(g.get("severity") or "error")
        result = "[green]PASS[/green]" if ok else (
            "[yellow]WARN[/yellow]" if severity == "warn" else "[red]FAIL[/red]")
        table.add_row(escape(str(g.get("name", ""))), escape(severity),
                      escape(str(g.get("threshold") or "")), _num(g.get("value")), result)
    return table


def _pct(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) else f"{100 * x:.1f}%"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return escape(str(x))
    return f"{x:.4g}"
