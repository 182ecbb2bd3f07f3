"""The run reports: report.md, report.html and the terminal summary, rendered from the sample
RunReport and from partial or hostile ones. The browser rendering is in test_report_browser.py."""

from __future__ import annotations

import copy
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from llmspec.runtime.reports import (print_summary, render_html, render_markdown,
                                     write_html_report, write_markdown_report)
from report_sample import sample_report

SCRIPT = "<script>alert(1)</script>"
HOSTILE = '<img src=x onerror="alert(2)">|`\n'
CHART_IDS = ("chart-funnel", "chart-lengths", "chart-loss", "chart-pass-rate")
SECTION_IDS = ("data", "dataset", "training", "acceptance", "artifacts")


class _Tags(HTMLParser):
    """Every start tag with its attributes; script and style bodies are not parsed as tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def _ids(html: str) -> set[str]:
    return {a["id"] for _, a in _tags(html) if a.get("id")}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


@pytest.fixture(scope="module")
def report() -> dict:
    return sample_report()


@pytest.fixture(scope="module")
def html(report: dict) -> str:
    return render_html(report)


# --------------------------------------------------------------------------- sample

def test_sample_report_is_complete_and_consistent(report: dict) -> None:
    assert len(report["sources"]) == 3
    for src in report["sources"].values():
        assert src["rows_in"] == src["rows_kept"] + sum(src["rejected"].values())
        assert set(src["samples"]) <= set(src["rejected"])
    tests = report["acceptance"]["tests"]
    assert len(tests) == 6
    assert any(not t["passed"] for t in tests)
    assert any(SCRIPT in t["output"] for t in tests)
    assert report["acceptance"]["pass_rate"] == sum(t["passed"] for t in tests) / len(tests)
    assert len({h["step"] for h in report["training"]["history"]}) == 50
    assert sample_report() == report, "the sample must be deterministic"


# --------------------------------------------------------------------------- markdown

def test_markdown_has_outcome_gates_and_pass_rates(report: dict) -> None:
    md = render_markdown(report)
    assert report["project"] in md.splitlines()[0] and "promoted" in md.splitlines()[0]
    for gate in report["acceptance"]["gates"]:
        row = next(line for line in md.splitlines() if f"`{gate['name']}`" in line)
        assert gate["threshold"] in row and gate["severity"] in row
        assert ("pass" if gate["passed"] else "fail") in row
    acc = report["acceptance"]
    assert _pct(acc["pass_rate"]) in md and _pct(acc["base_pass_rate"]) in md


def test_markdown_has_the_funnel_numbers_per_source(report: dict) -> None:
    md = render_markdown(report)
    for name, src in report["sources"].items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {name}"))
        assert f"| {src['rows_in']:,} |" in row
        assert f"| {src['rows_kept']:,} (" in row
        for rule, n in src["rejected"].items():
            assert f"{rule} {n:,}" in row


def test_markdown_lists_failed_tests_with_expected_and_got(report: dict) -> None:
    md = render_markdown(report)
    for test in report["acceptance"]["tests"]:
        listed = f"**{test['name']}**" in md
        assert listed == (not test["passed"])
        if not test["passed"]:
            bad = next(a for a in test["assertions"] if not a["passed"])
            line = next(x for x in md.splitlines() if f"**{test['name']}**" in x)
            assert f"expected `{bad['expected']}`" in line
            assert bad["got"][:30] in line


def test_markdown_is_concise_and_has_training_figures(report: dict) -> None:
    md = render_markdown(report)
    assert len(md.splitlines()) < 80
    final = report["training"]["final"]
    assert f"train loss {final['train_loss']:.4g}" in md
    assert f"eval loss {final['eval_loss']:.4g}" in md
    assert f"{report['training']['steps']} steps" in md


def test_markdown_cells_cannot_break_tables_or_inject_html(report: dict) -> None:
    hostile = copy.deepcopy(report)
    hostile["sources"] = {HOSTILE: hostile["sources"]["tickets"]}
    hostile["sources"][HOSTILE]["rejected"] = {HOSTILE: 44}
    hostile["acceptance"]["gates"][0]["name"] = HOSTILE
    hostile["acceptance"]["tests"][3]["assertions"][0]["got"] = HOSTILE * 3
    md = render_markdown(hostile)
    # Inside a code span Markdown shows HTML literally; everywhere else it must be escaped.
    assert "<img" not in re.sub(r"`[^`\n]*`", "", md)
    assert "&lt;img" in md
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.M):
        rows = table.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, f"ragged table:\n{table}"


def test_write_markdown_report_writes_the_rendered_text(report: dict, tmp_path: Path) -> None:
    path = write_markdown_report(report, tmp_path / "report.md")
    assert path.read_text(encoding="utf-8") == render_markdown(report)
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# --------------------------------------------------------------------------- html

def test_html_is_one_file_with_no_network_references(report: dict, tmp_path: Path) -> None:
    path = write_html_report(report, tmp_path / "run" / "report.html")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temp file left over
    html = path.read_text(encoding="utf-8")
    tags = _tags(html)
    assert not [t for t, a in tags if t == "link"], "stylesheets must be inline"
    assert not [a for t, a in tags if t == "script" and "src" in a], "scripts must be inline"
    refs = [v for _, a in tags for k, v in a.items() if k in ("src", "href", "action", "poster")
            and v]
    remote = [v for v in refs if re.match(r"\s*(https?:)?//", v, flags=re.I)]
    assert not remote, remote
    assert all(v.startswith("#") for v in refs), refs
    css = "".join(re.findall(r"<style>(.*?)</style>", html, flags=re.S))
    assert "url(" not in css and "@import" not in css
    csp = next(a["content"] for t, a in tags if t == "meta"
               and (a.get("http-equiv") or "").lower() == "content-security-policy")
    assert "default-src 'none'" in csp


def test_html_draws_every_chart_as_inline_svg_without_scripts(html: str) -> None:
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    # One small script (open details before printing); no chart library at all.
    assert sum(len(s) for s in scripts) < 2_000
    for chart in CHART_IDS:
        start = html.index(f'<svg id="{chart}"')
        body = html[start:html.index("</svg>", start)]
        assert 'viewBox="0 0 ' in body[:200]
        assert body.count("<rect") + body.count("<polyline") >= 2, chart


def test_html_report_size_stays_small(report: dict, tmp_path: Path) -> None:
    # Plotly inlined made every report 4.7 MB; the goal is under 500 KB, 1 MB fails.
    big = copy.deepcopy(report)
    # A long run: 5,000 logged steps and 20,000 training examples still draw small charts.
    big["training"]["history"] = [{"step": s, "epoch": s / 2000, "loss": 1 + 1 / s,
                                   "eval_loss": 1.1 if s % 500 == 0 else None,
                                   "learning_rate": 2e-4} for s in range(1, 5001)]
    big["dataset"]["token_lengths"] = [(i * 37) % 2000 + 20 for i in range(20_000)]
    for rep in (report, big):
        size = write_html_report(rep, tmp_path / "report.html").stat().st_size
        assert size < 1_000_000, size
    assert write_html_report(report, tmp_path / "report.html").stat().st_size < 500_000


def test_html_escapes_model_output(html: str) -> None:
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_escapes_every_user_derived_string(report: dict) -> None:
    hostile = copy.deepcopy(report)
    hostile["project"] = hostile["run"] = hostile["plan_summary"] = HOSTILE
    src = hostile["sources"].pop("tickets")
    src["rejected"] = {HOSTILE: 44}
    src["samples"] = {HOSTILE: [{"origin": HOSTILE, "detail": HOSTILE, "text": HOSTILE}]}
    src["modified"] = {HOSTILE: 1}
    src["profile"]["nulls"] = {HOSTILE: 1}
    hostile["sources"][HOSTILE] = src
    hostile["dataset"]["examples"][0] = {"source": HOSTILE, "origin": HOSTILE, "rendered": HOSTILE}
    hostile["training"]["base_model"] = HOSTILE
    test = hostile["acceptance"]["tests"][0]
    test.update(name=HOSTILE, prompt=HOSTILE, tags=[HOSTILE], output=HOSTILE)
    test["assertions"][0].update(key=HOSTILE, expected=HOSTILE, got=HOSTILE)
    test["base"]["output"] = HOSTILE
    hostile["acceptance"]["gates"][0].update(name=HOSTILE, threshold=HOSTILE, message=HOSTILE)
    hostile["artifacts"]["model"] = HOSTILE
    html = render_html(hostile)
    tags = _tags(html)
    assert not [t for t, _ in tags if t == "img"]
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]
    assert "&lt;img src=x onerror=" in html


def test_html_has_every_section_and_chart_of_a_full_report(report: dict, html: str) -> None:
    ids = _ids(html)
    for anchor in (*SECTION_IDS, *CHART_IDS):
        assert anchor in ids, anchor
    assert {f"test-{i + 1}" for i in range(len(report["acceptance"]["tests"]))} <= ids
    for name, src in report["sources"].items():
        assert f"{src['rows_in']:,} rows in" in html
        for rule, samples in src["samples"].items():
            assert f"<code>{rule}</code>" in html
            for s in samples:
                assert s["origin"] in html
    for test in report["acceptance"]["tests"]:
        assert f'<span class="name">{test["name"]}</span>' in html
    for gate in report["acceptance"]["gates"]:
        assert f"<code>{gate['name']}</code>" in html
    assert report["training"]["base_model"] in html
    assert "Base model" in html  # side-by-side answers


def test_html_report_with_only_sources(report: dict) -> None:
    partial = {k: report[k] for k in ("project", "run", "created_at", "outcome", "sources")}
    partial["outcome"] = "failed"
    html = render_html(partial)
    ids = _ids(html)
    assert "data" in ids and "chart-funnel" in ids
    for absent in ("dataset", "training", "acceptance", "artifacts", "chart-loss",
                   "chart-lengths", "chart-pass-rate"):
        assert absent not in ids, absent
    assert "Run failed" in html
    md = render_markdown(partial)
    assert "### Data" in md and "Acceptance" not in md


def test_html_report_of_an_empty_run_has_no_charts() -> None:
    html = render_html({"project": "p", "run": "r", "outcome": "failed"})
    assert "<svg" not in html
    assert len(html) < 50_000
    assert render_markdown({}).strip()


def test_html_without_eval_or_baseline(report: dict) -> None:
    r = copy.deepcopy(report)
    r["training"]["history"] = [dict(h, eval_loss=None) for h in r["training"]["history"]
                                if h["loss"] is not None]
    r["training"]["final"]["eval_loss"] = None
    r["acceptance"]["base_pass_rate"] = None
    for t in r["acceptance"]["tests"]:
        t["base"] = None
    r["acceptance"]["gates"] = [g for g in r["acceptance"]["gates"] if g["name"] != "beats_baseline"]
    html = render_html(r)
    loss_chart = html.split('id="chart-loss"')[1].split("</svg>")[0]
    assert "train loss" in loss_chart and "eval loss" not in loss_chart
    assert "Base model" in html and "not run" in html
    assert "base model" not in html.split('id="chart-pass-rate"')[1].split("</svg>")[0]
    md = render_markdown(r)
    assert "vs base" not in md and "eval loss" not in md


def test_html_tolerates_bad_numbers(report: dict) -> None:
    r = copy.deepcopy(report)
    r["training"]["history"][3]["loss"] = math.nan
    r["training"]["history"][4]["loss"] = None
    r["training"]["duration_s"] = None
    r["acceptance"]["gates"][0]["value"] = None
    r["dataset"]["token_lengths"] = [7]
    r["sources"]["tickets"]["rows_in"] = 0
    html = render_html(r)
    assert "chart-loss" in _ids(html) and "NaN" not in html.split('id="chart-loss"')[1][:20000]
    render_markdown(r)


def test_html_is_deterministic(report: dict, html: str) -> None:
    assert render_html(copy.deepcopy(report)) == html


# --------------------------------------------------------------------------- terminal

def _terminal(report: dict) -> str:
    buf = io.StringIO()
    print_summary(report, Console(file=buf, no_color=True, width=100))
    return buf.getvalue()


def test_terminal_summary_has_gates_pass_rates_and_report_paths(report: dict) -> None:
    out = _terminal(report)
    assert "\x1b[" not in out, "piped output must carry no escape codes"
    acc = report["acceptance"]
    assert _pct(acc["pass_rate"]) in out and _pct(acc["base_pass_rate"]) in out
    for gate in acc["gates"]:
        line = next(x for x in out.splitlines() if x.startswith(gate["name"]))
        verdict = "PASS" if gate["passed"] else ("WARN" if gate["severity"] == "warn" else "FAIL")
        assert verdict in line and gate["threshold"] in line
    for key in ("report_html", "report_md", "junit"):
        assert report["artifacts"][key] in out
    assert len(out.splitlines()) < 20


def test_terminal_summary_without_acceptance(report: dict) -> None:
    out = _terminal({"run": "r1", "outcome": "built", "sources": report["sources"]})
    rows_in = sum(s["rows_in"] for s in report["sources"].values())
    assert "r1" in out and f"{rows_in:,} rows in" in out
    assert _terminal({}).strip()


def test_terminal_summary_does_not_interpret_markup(report: dict) -> None:
    r = copy.deepcopy(report)
    r["acceptance"]["gates"][0]["name"] = "[red]x[/red]"
    assert "[red]x[/red]" in _terminal(r)


def test_terminal_short_summary_names_failed_tests_and_gates(report: dict) -> None:
    r = copy.deepcopy(report)
    r["acceptance"]["gates"][0].update(passed=False, message="fine-tuned passes 5/6 tests (0.833), needs >= 0.9",
                                       threshold=">= 0.9")
    lines = _terminal(r).splitlines()
    start = lines.index("Short summary:")
    summary = lines[start + 1:start + 4]
    # pytest's order: the failed tests with why, then the gates; the blocking gate before the warning
    assert summary == [
        "FAILED refund-window: contains expected '30 days', got 'Unused devices can be returned "
        "within 14 days for a full refund.'",
        "FAILED gate pass_rate >= 0.9: fine-tuned passes 5/6 tests (0.833), needs >= 0.9",
        "WARNED gate pass_rate_by_tag:refunds >= 1.0: refund-window failed: expected '30 days'",
    ]


def test_terminal_short_summary_caps_failed_tests_and_keeps_markup_literal(report: dict) -> None:
    from llmspec.runtime.reports.terminal import MAX_FAILED_TESTS

    r = copy.deepcopy(report)
    failing = copy.deepcopy(next(t for t in r["acceptance"]["tests"] if not t["passed"]))
    failing["assertions"][0]["got"] = "[bold]x[/bold]\nsecond line"
    r["acceptance"]["tests"] = [dict(failing, name=f"t{i}") for i in range(MAX_FAILED_TESTS + 3)]
    r["acceptance"]["gates"] = []
    out = _terminal(r)
    failed = [x for x in out.splitlines() if x.startswith("FAILED ")]
    assert len(failed) == MAX_FAILED_TESTS and failed[0].startswith("FAILED t0: contains expected")
    assert "got '[bold]x[/bold] second line'" in failed[0]
    assert "... and 3 more failed tests" in out


def test_terminal_short_summary_absent_when_everything_passed(report: dict) -> None:
    r = copy.deepcopy(report)
    for t in r["acceptance"]["tests"]:
        t["passed"] = True
    for g in r["acceptance"]["gates"]:
        g["passed"] = True
    assert "Short summary" not in _terminal(r) and "FAILED" not in _terminal(r)


def test_apply_ends_with_the_short_summary(report: dict, tmp_path: Path) -> None:
    """`llmspec apply`'s last lines (also after failed gates) carry the FAILED lines."""
    from types import SimpleNamespace

    from llmspec.commands.apply import _finish

    buf = io.StringIO()
    result = SimpleNamespace(report=report, run="r1", outcome="promoted", built=["train"], reused=[],
                             run_dir=tmp_path)
    _finish(Console(file=buf, no_color=True, width=100), result)
    assert "FAILED refund-window: contains expected '30 days'" in buf.getvalue()


def test_use_this_model_section_names_the_runs_commands():
    from llmspec.runtime.reports.html import render_html
    from llmspec.runtime.reports.markdown import render_markdown

    report = {"outcome": "promoted", "run": "20260101-000000-abc", "spec_path": "bots/my spec.yaml",
              "project": "bot", "artifacts": {"model": ".llmspec/stages/train-1/output"}}
    md, page = render_markdown(report), render_html(report)
    for text in (md, page):
        assert "Use this model" in text
        assert "llmspec serve 'bots/my spec.yaml' --run 20260101-000000-abc" in text.replace("&#39;", "'")
        assert "--format merged --out exports/20260101-000000-abc-merged" in text
        assert "llmspec test 'bots/my spec.yaml' --endpoint http://127.0.0.1:8000" in text.replace("&#39;", "'")
    no_model = {**report, "artifacts": {}}
    assert "Use this model" not in render_markdown(no_model) and "Use this model" not in render_html(no_model)
