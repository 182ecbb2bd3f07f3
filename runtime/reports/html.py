"""``report.html``: one self-contained page showing a whole run, charts included.

The page must open from a CI artifact store or an email attachment with no network, so the
charts are inline SVG drawn here (``svg.py``), with no script library at all, and a
Content-Security-Policy forbids every fetch: a stray remote reference fails loudly in the
browser console instead of leaking silently.

Every string that came from the user's data or a model is escaped: the page is rendered by
jinja2 with autoescaping and the SVG helpers escape their labels. jinja2 is imported inside
the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmspec.runtime.engine.atomic import write_text_atomic
from llmspec.runtime.reports.usage import usage_commands

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
KEPT_COLOUR = "#3f9b57"
TUNED_COLOUR = "#3867d6"
BASE_COLOUR = "#a5adba"
TRAIN_COLOUR = "#3867d6"
EVAL_COLOUR = "#e8710a"
LR_COLOUR = "#9aa5b1"
# Warm and purple hues only, so no rejection reason reads as the green of "kept".
REJECT_COLOURS = ("#e4572e", "#f3a712", "#a8201a", "#7b4fa0", "#ff8c61", "#8c564b",
                  "#d64f8a", "#b8860b", "#5c6bc0", "#37474f", "#e377c2", "#6d4c41",
                  "#f06292", "#ffb74d", "#9c27b0", "#a1887f")
OUTCOMES = {
    "promoted": ("Promoted", "ok", "Every error gate passed; this run is now the promoted model."),
    "gates_failed": ("Gates failed", "bad", "An error gate failed, so this run was not promoted; "
                                            "the previously promoted run stays in place."),
    "failed": ("Run failed", "bad", "The run stopped with an error before it finished."),
    "built": ("Built", "neutral", "Built without acceptance gates; nothing was promoted."),
}
ARTIFACT_LABELS = {"model": "Model", "junit": "JUnit results", "report_md": "Markdown summary",
                   "report_html": "This report", "log": "Log"}
# Locks the page to itself: scripts and styles inline, images as data: URIs, nothing fetched.
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:")


def write_html_report(report: Mapping[str, Any], path: Path) -> Path:
    """Render ``report`` (a RunReport dict; any section may be missing) to one HTML file at
    ``path``, written atomically. Returns ``path``."""
    path = Path(path)
    write_text_atomic(path, render_html(report))
    return path


def render_html(report: Mapping[str, Any]) -> str:
    """The report page as a string. Deterministic: the same report gives the same bytes."""
    import jinja2

    view = build_view(report)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE).render(
        v=view, css=jinja2.utils.markupsafe.Markup(_CSS), csp=_CSP)


# --------------------------------------------------------------------------- view model

def build_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise the report into what the template shows; absent sections become None."""
    outcome = str(report.get("outcome") or "")
    label, tone, explain = OUTCOMES.get(outcome, (outcome or "Unknown", "neutral", ""))
    view: dict[str, Any] = {
        "project": report.get("project") or "llmspec project",
        "run": report.get("run") or "",
        "created": format_date(report.get("created_at")),
        "spec_path": report.get("spec_path") or "",
        "plan_summary": report.get("plan_summary") or "",
        "outcome": {"label": label, "tone": tone, "explain": explain},
        "data": _data_view(report.get("sources") or {}),
        "dataset": _dataset_view(report.get("dataset")),
        "training": _training_view(report.get("training")),
        "acceptance": _acceptance_view(report.get("acceptance")),
        "retention": _retention_view((report.get("acceptance") or {}).get("retention")),
        "artifacts": [(ARTIFACT_LABELS.get(k, k), str(v))
                      for k, v in (report.get("artifacts") or {}).items() if v],
    }
    view["comparison"] = _comparison_view(report.get("comparison"))
    view["feedback"] = _feedback_view(report.get("feedback"))
    view["usage"] = usage_commands(report) if report.get("outcome") in ("promoted", "built",
                                                                        "gates_failed") else []
    view["cards"] = _headline_cards(view)
    view["nav"] = [(anchor, title) for anchor, title, key in (
        ("data", "Data", "data"), ("dataset", "Dataset", "dataset"),
        ("training", "Training", "training"), ("acceptance", "Acceptance", "acceptance"),
        ("previous", "Since last run", "comparison"), ("feedback", "Feedback", "feedback"),
        ("use", "Use this model", "usage"),
        ("artifacts", "Files", "artifacts")) if view[key]]
    return view


def _headline_cards(view: Mapping[str, Any]) -> list[dict[str, str]]:
    cards = []
    if view["data"]:
        d = view["data"]
        cards.append({"label": "Rows kept", "value": _fmt_int(d["kept"]),
                      "sub": f"of {_fmt_int(d['rows_in'])} in ({_fmt_pct(d['kept_share'])})"})
    if view["dataset"]:
        d = view["dataset"]
        cards.append({"label": "Training examples", "value": d["train"],
                      "sub": f"+ {d['eval']} eval"})
    if view["training"]:
        t = view["training"]
        cards.append({"label": "Final train loss", "value": t["final_train_loss"],
                      "sub": f"eval loss {t['final_eval_loss']}"})
    if view["acceptance"]:
        a = view["acceptance"]
        cards.append({"label": "Pass rate", "value": a["pass_rate"],
                      "sub": f"base model {a['base_pass_rate']}" if a["has_base"]
                      else "no base-model comparison"})
    return cards


def _data_view(sources: Mapping[str, Any]) -> dict[str, Any] | None:
    if not sources:
        return None
    rows = []
    for name, src in sources.items():
        src = src or {}
        rows_in = _int(src.get("rows_in"))
        kept = _int(src.get("rows_kept"))
        rejected = {str(k): _int(v) for k, v in (src.get("rejected") or {}).items()}
        samples = src.get("samples") or {}
        # Rules that rejected nothing are one line, not a row each: 15 rows of "0" hide the
        # rules that did something.
        rules = [{"rule": rule, "count": _fmt_int(n), "share": _fmt_pct(_ratio(n, rows_in)),
                  "samples": [{"origin": s.get("origin", ""), "detail": s.get("detail", ""),
                               "parts": _marked(s.get("text", ""), s.get("match"), 600)}
                              for s in (samples.get(rule) or [])[:5]]}
                 for rule, n in sorted(rejected.items(), key=lambda kv: -kv[1]) if n]
        modified = {str(k): _int(v) for k, v in (src.get("modified") or {}).items()}
        rows.append({
            "name": str(name), "format": src.get("format") or "",
            "rows_in": rows_in, "kept": kept, "rejected_total": sum(rejected.values()),
            "kept_share": _fmt_pct(_ratio(kept, rows_in)),
            "rules": rules, "rejected": rejected,
            "idle_rules": sorted(rule for rule, n in rejected.items() if not n),
            "modified": [(k, _fmt_int(v)) for k, v in modified.items() if v],
            "idle_modifiers": sorted(k for k, v in modified.items() if not v),
            "profile": _profile_view(src.get("profile")),
        })
    rules = list(dict.fromkeys(rule for r in rows for rule, n in r["rejected"].items() if n))
    colours = {"kept": KEPT_COLOUR, **{rule: REJECT_COLOURS[i % len(REJECT_COLOURS)]
                                       for i, rule in enumerate(rules)}}
    total_in = sum(r["rows_in"] for r in rows)
    total_kept = sum(r["kept"] for r in rows)
    for r in rows:
        r["rows_in_fmt"], r["kept_fmt"] = _fmt_int(r["rows_in"]), _fmt_int(r["kept"])
        r["rejected_fmt"] = _fmt_int(r["rejected_total"])
    return {"sources": rows, "rows_in": total_in, "kept": total_kept,
            "rows_in_fmt": _fmt_int(total_in), "kept_fmt": _fmt_int(total_kept),
            "kept_share": _ratio(total_kept, total_in),
            # An HTML legend reflows at any width; one inside the SVG would eat into the bars.
            "legend": [("kept", KEPT_COLOUR)] + [(rule, colours[rule]) for rule in rules],
            "chart": _funnel_chart(rows, rules, colours)}


def _comparison_view(cmp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not cmp:
        return None
    rate = cmp.get("pass_rate") or {}
    delta = rate.get("delta")
    tests = cmp.get("tests") or {}
    sources = []
    for s in cmp.get("sources") or []:
        if not s.get("changed"):
            continue
        (in_b, in_a), (kept_b, kept_a) = s["rows_in"], s["rows_kept"]
        sources.append({"source": s["source"], "status": s["status"],
                        "rows_in": f"{_fmt_int(in_b)} → {_fmt_int(in_a)}",
                        "kept": f"{_fmt_int(kept_b)} → {_fmt_int(kept_a)}",
                        "rules": [(r["rule"], f"{_fmt_int(r['before'])} → {_fmt_int(r['now'])}")
                                  for r in s.get("rules") or []]})
    return {
        "run": str(cmp.get("run") or ""), "created": format_date(cmp.get("created_at")),
        "outcome": OUTCOMES.get(str(cmp.get("outcome") or ""), (str(cmp.get("outcome") or ""),))[0],
        "pass_rate": None if not rate else {
            "before": _fmt_pct(rate.get("before")), "now": _fmt_pct(rate.get("now")),
            "delta": "" if delta is None else ("no change" if abs(delta) < 5e-4 else
                                               f"{'+' if delta > 0 else '−'}{abs(100 * delta):.1f} points"),
            "tone": "neutral" if not delta else ("ok" if delta > 0 else "bad")},
        "fixed": [str(n) for n in tests.get("fixed") or []],
        "broken": [str(n) for n in tests.get("broken") or []],
        "added": [str(n) for n in tests.get("added") or []],
        "removed": [str(n) for n in tests.get("removed") or []],
        "unchanged": _fmt_int(tests.get("unchanged") or 0),
        "sources": sources,
        "sources_same": not sources and bool(cmp.get("sources")),
    }


def _feedback_view(fb: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not fb:
        return None
    sources = [{"name": name, "read": _fmt_int(src.get("read")), "kept": _fmt_int(src.get("kept")),
                "ratings": [(r, _fmt_int(n)) for r, n in (src.get("by_rating") or {}).items()],
                "not_used": [(reason, _fmt_int(n)) for reason, n in (src.get("not_used") or {}).items()],
                "samples": list(src.get("samples") or [])}
               for name, src in (fb.get("sources") or {}).items()]
    tests = list(fb.get("tests") or [])
    return {"sources": sources, "tests": tests, "fixed": fb.get("fixed", 0), "total": len(tests)}


def _profile_view(profile: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not profile:
        return None
    lengths = profile.get("lengths") or {}
    nulls = profile.get("nulls") or {}
    columns = list(dict.fromkeys([*lengths, *nulls]))
    return {
        "rows": _fmt_int(profile.get("rows")),
        "duplicate_rate": _fmt_pct(profile.get("duplicate_rate")),
        "non_text_share": _fmt_pct(profile.get("non_text_share")),
        "columns": [{"name": str(c), "nulls": _fmt_int(nulls.get(c)),
                     **{k: _fmt_int((lengths.get(c) or {}).get(k))
                        for k in ("min", "median", "p95", "max")}} for c in columns],
    }


def _dataset_view(ds: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not ds:
        return None
    lengths = sorted(int(x) for x in (ds.get("token_lengths") or []) if x is not None)
    approx = ds.get("token_lengths_basis")
    stats = None
    if lengths:
        stats = {"n": _fmt_int(len(lengths)), "min": _fmt_int(lengths[0]),
                 "median": _fmt_int(_quantile(lengths, 0.5)),
                 "p95": _fmt_int(_quantile(lengths, 0.95)), "max": _fmt_int(lengths[-1])}
    return {
        "style": ds.get("style") or "",
        "chat_template": str(ds.get("chat_template") or ""),
        "train": _fmt_int(ds.get("train")), "eval": _fmt_int(ds.get("eval")),
        "leakage_removed": _fmt_int(ds.get("leakage_removed")),
        "rejected": [(str(k), _fmt_int(v)) for k, v in (ds.get("rejected") or {}).items()],
        "length_basis": f"approximate: {approx}" if approx else "tokens",
        "stats": stats,
        "examples": [{"source": e.get("source") or "", "origin": e.get("origin") or "",
                      "rendered": _clip(e.get("rendered") or "", 4000)}
                     for e in (ds.get("examples") or [])],
        "chart": _length_chart(lengths, approx) if lengths else None,
    }


def _training_view(tr: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not tr:
        return None
    final = tr.get("final") or {}
    history = [h for h in (tr.get("history") or []) if isinstance(h, Mapping)]
    facts = [("Method", tr.get("method")), ("Base model", tr.get("base_model")),
             ("Hardware", tr.get("hardware")), ("Steps", _fmt_int(tr.get("steps"))),
             ("Epochs", _fmt_epoch(tr.get("epochs"))),
             ("Duration", _fmt_duration(tr.get("duration_s"))),
             ("Throughput", f"{_fmt_num(final.get('tokens_per_second'))} tokens/s"
              if final.get("tokens_per_second") is not None else None),
             ("Resumed", "yes, from an interrupted run's checkpoint"
              if tr.get("resumed") else None),
             ("Axolotl config", tr.get("config_path"))]
    # A preference run's evidence: the rewards TRL's trainer logged at its last step.
    facts += [(f"Last step {k}", _fmt_num(v)) for k, v in sorted((tr.get("preference") or {}).items())]
    return {
        "facts": [(k, str(v)) for k, v in facts if v not in (None, "")],
        "final_train_loss": _fmt_num(final.get("train_loss")),
        "final_eval_loss": _fmt_num(final.get("eval_loss")),
        "chart": _loss_chart(history) if any(_finite(h.get("loss")) or _finite(h.get("eval_loss"))
                                             for h in history) else None,
    }


def _acceptance_view(acc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not acc:
        return None
    tests = [t for t in (acc.get("tests") or []) if isinstance(t, Mapping)]
    has_base = acc.get("base_pass_rate") is not None or any(t.get("base") for t in tests)
    n_pass = sum(bool(t.get("passed")) for t in tests)
    n_base = sum(bool((t.get("base") or {}).get("passed")) for t in tests)
    gates = [{"name": str(g.get("name", "")), "threshold": str(g.get("threshold") or ""),
              "value": _gate_value(g), "passed": bool(g.get("passed")),
              "severity": str(g.get("severity") or "error"), "message": str(g.get("message") or "")}
             for g in (acc.get("gates") or [])]
    # A long suite would bury the failures; open cards only where a reader needs to look.
    open_all = len(tests) <= 20
    test_views = []
    for i, t in enumerate(tests):
        base = t.get("base")
        test_views.append({
            "anchor": f"test-{i + 1}", "name": str(t.get("name") or f"test {i + 1}"),
            "prompt": _clip(t.get("prompt") or "", 4000),
            "tags": [str(x) for x in t.get("tags") or []],
            "passed": bool(t.get("passed")), "score": _fmt_num(t.get("score")),
            "output": _clip(t.get("output") or "", 4000),
            "assertions": [{"key": str(a.get("key", "")),
                            "expected": _clip(a.get("expected", ""), 400),
                            "got": _clip(a.get("got", ""), 400), "passed": bool(a.get("passed"))}
                           for a in (t.get("assertions") or [])],
            "base": None if not base else {"passed": bool(base.get("passed")),
                                           "score": _fmt_num(base.get("score")),
                                           "output": _clip(base.get("output") or "", 4000)},
            "open": open_all or not t.get("passed"),
        })
    rate = acc.get("pass_rate")
    if rate is None and tests:
        rate = n_pass / len(tests)
    base_rate = acc.get("base_pass_rate")
    return {
        "pass_rate": _fmt_pct(rate), "base_pass_rate": _fmt_pct(base_rate),
        "counts": f"{n_pass}/{len(tests)}" if tests else "",
        "base_counts": f"{n_base}/{len(tests)}" if tests and has_base else "",
        "has_base": has_base, "gates": gates, "tests": test_views,
        "failed": [tv for tv in test_views if not tv["passed"]],
        "chart": _pass_rate_chart(tests, rate, base_rate, has_base)
        if tests or rate is not None else None,
    }


def _retention_view(ret: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not ret:
        return None
    if not ret.get("enabled"):
        return {"enabled": False, "reason": str(ret.get("reason") or "not run")}
    drift = ret.get("drift") or {}
    return {
        "enabled": True, "suite": str(ret.get("suite") or ""),
        "pass_rate": _fmt_pct(ret.get("pass_rate")), "base_pass_rate": _fmt_pct(ret.get("base_pass_rate")),
        "counts": f"{ret.get('passed')}/{ret.get('tests')}", "base_counts": f"{ret.get('base_passed')}/{ret.get('tests')}",
        "drift": f"{float(drift.get('delta') or 0):+.3f}", "base_nll": _fmt_num(drift.get("base_nll")),
        "tuned_nll": _fmt_num(drift.get("tuned_nll")),
        "tags": [{"tag": str(t), "base": f"{v['base_passed']}/{v['tests']}", "tuned": f"{v['passed']}/{v['tests']}",
                  "drop": f"{100 * float(v['drop']):+.0f} pts", "worse": float(v["drop"]) > 0}
                 for t, v in (ret.get("by_tag") or {}).items()],
        "lost": [{"name": str(x.get("name") or ""), "prompt": _clip(x.get("prompt") or "", 2000),
                  "base_output": _clip(x.get("base_output") or "", 2000), "output": _clip(x.get("output") or "", 2000)}
                 for x in (ret.get("lost") or [])],
    }


# --------------------------------------------------------------------------- charts

def _funnel_chart(rows: Sequence[Mapping[str, Any]], rules: Sequence[str],
                  colours: Mapping[str, str]) -> str:
    from llmspec.runtime.reports import svg

    row_h, bar_h, top, bottom = 58, 30, 8, 44
    left = min(280, 24 + max(svg.CHAR_W * max(len(str(r["name"])), len(f"{_fmt_int(r['rows_in'])} rows in"))
                             for r in rows))
    right = svg.WIDTH - 14
    plot_w = right - left
    height = top + row_h * len(rows) + bottom
    body: list[str] = []
    axis_y = top + row_h * len(rows)
    for pct in range(0, 101, 20):
        x = left + plot_w * pct / 100
        body.append(svg.line(x, top, x, axis_y, svg.GRID))
        body.append(svg.text(x, axis_y + 14, f"{pct}%", anchor="middle", fill=svg.MUTED, size=12))
    body.append(svg.text(left + plot_w / 2, axis_y + 34, "share of rows in (%)", anchor="middle"))
    for i, r in enumerate(rows):
        y = top + i * row_h + (row_h - bar_h) / 2
        body.append(svg.text(left - 12, y + bar_h / 2 - 8, r["name"], anchor="end", weight="600"))
        body.append(svg.text(left - 12, y + bar_h / 2 + 9, f"{_fmt_int(r['rows_in'])} rows in",
                             anchor="end", fill=svg.MUTED, size=12))
        if not r["rows_in"]:
            body.append(svg.text(left + 6, y + bar_h / 2, "no rows", fill=svg.MUTED))
            continue
        # Share of rows in, not raw counts: a 40-row mailbox next to a 40,000-row export would
        # otherwise be an invisible sliver.
        x = left
        parts = [("kept", r["kept"], f"kept: {_fmt_int(r['kept'])} rows ({r['kept_share']})")]
        parts += [(rule, r["rejected"].get(rule, 0),
                   f"rejected by {rule}: {_fmt_int(r['rejected'].get(rule, 0))} rows "
                   f"({_fmt_pct(_ratio(r['rejected'].get(rule, 0), r['rows_in']))})") for rule in rules]
        for name, count, tip in parts:
            if not count:
                continue
            w = plot_w * count / r["rows_in"]
            body.append(svg.rect(x, y, w, bar_h, colours[name], tip))
            label = _fmt_int(count)
            if svg.fits(label, w):
                body.append(svg.text(x + w / 2, y + bar_h / 2, label, anchor="middle", fill="#fff"))
            x += w
    body.append(svg.line(left, top, left, axis_y, svg.AXIS))
    return svg.svg("chart-funnel", height, body, "Rows kept and rejected per source")


def _length_chart(lengths: Sequence[int], approx: str | None) -> str:
    from llmspec.runtime.reports import svg

    lo, hi = lengths[0], lengths[-1]
    width = _nice_step(max(hi - lo, 1) / 30)
    start = math.floor(lo / width) * width
    counts: dict[int, int] = {}
    for x in lengths:
        b = int((x - start) // width)
        counts[b] = counts.get(b, 0) + 1
    nbins = max(counts) + 1
    left, right, top, bottom, height = 58, svg.WIDTH - 16, 28, 48, 300
    base_y = height - bottom
    x_lo, x_hi = start, start + nbins * width
    sx, sy, body = svg.xy_axes(left, right, top, base_y, x_lo, x_hi,
                               svg.nice_ticks(0, max(counts.values()) * 1.1, 4))
    for b in range(nbins):
        n = counts.get(b, 0)
        if n:
            left_edge = start + b * width
            x0, x1 = sx(left_edge), sx(left_edge + width)
            body.append(svg.rect(x0 + 0.5, sy(n), x1 - x0 - 1, base_y - sy(n), TUNED_COLOUR,
                                 f"{_fmt_int(left_edge)}–{_fmt_int(left_edge + width)} tokens: "
                                 f"{_fmt_int(n)} examples"))
    for q, label, dash in ((0.5, "median", "6 4"), (0.95, "p95", "2 3")):
        value = _quantile(lengths, q)
        body.append(svg.line(sx(value), top - 4, sx(value), base_y, svg.INK, 1.5, dash))
        body.append(svg.text(sx(value) + 4, top - 10, f"{label} {value:,}", size=12))
    body.append(svg.line(left, base_y, right, base_y, svg.AXIS))
    basis = f" ({approx})" if approx else ""
    body.append(svg.text((left + right) / 2, height - 12, f"tokens per training example{basis}",
                         anchor="middle"))
    body.append(svg.vertical_text(16, (top + base_y) / 2, "examples"))
    return svg.svg("chart-lengths", height, body, "Length of training examples")


def _loss_chart(history: Sequence[Mapping[str, Any]]) -> str:
    from llmspec.runtime.reports import svg

    def series(key: str) -> list[tuple[float, float, Any]]:
        return [(float(h["step"]), float(h[key]), h.get("epoch")) for h in history
                if _finite(h.get(key)) and _finite(h.get("step"))]

    train, evals, lr = series("loss"), series("eval_loss"), series("learning_rate")
    steps = [p[0] for p in train + evals + lr]
    x_lo, x_hi = min(steps), max(steps)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    left, top, bottom, height = 58, 34, 48, 340
    right = svg.WIDTH - (74 if lr else 16)
    base_y = height - bottom
    sx, sy, body = svg.xy_axes(left, right, top, base_y, x_lo, x_hi,
                               svg.nice_ticks(0, max(p[1] for p in train + evals) * 1.05 or 1.0, 5))
    if lr:
        lr_ticks = svg.nice_ticks(0, max(p[1] for p in lr) or 1.0, 4)
        sl = lambda v: base_y - v / lr_ticks[-1] * (base_y - top)  # noqa: E731
        for t in lr_ticks:
            body.append(svg.text(right + 8, sl(t), svg.tick_label(t), fill=LR_COLOUR, size=12))
        body.append(svg.polyline([(sx(s), sl(v)) for s, v, _ in _thin(lr)], LR_COLOUR, 1.5, "2 4",
                                 cls="series lr"))
        body.append(svg.vertical_text(svg.WIDTH - 8, (top + base_y) / 2, "learning rate", angle=90,
                                      fill=LR_COLOUR))
    if train:
        body.append(svg.polyline([(sx(s), sy(v)) for s, v, _ in _thin(train)], TRAIN_COLOUR, 2,
                                 cls="series train"))
        for s, v, ep in _thin(train, 120):
            body.append(f'<circle class="hover" cx="{svg.coord(sx(s))}" cy="{svg.coord(sy(v))}" r="4" '
                        f'fill="{TRAIN_COLOUR}" fill-opacity="{1 if len(train) < 3 else 0}">'
                        f'<title>step {_fmt_int(s)}{_epoch_note(ep)}: train loss {v:.4f}</title></circle>')
    if evals:
        body.append(svg.polyline([(sx(s), sy(v)) for s, v, _ in evals], EVAL_COLOUR, 2, cls="series eval"))
        for s, v, ep in _thin(evals, 120):
            body.append(f'<circle cx="{svg.coord(sx(s))}" cy="{svg.coord(sy(v))}" r="4" fill="{EVAL_COLOUR}">'
                        f'<title>step {_fmt_int(s)}{_epoch_note(ep)}: eval loss {v:.4f}</title></circle>')
    body.append(svg.line(left, base_y, right, base_y, svg.AXIS))
    body.append(svg.text((left + right) / 2, height - 12, "step", anchor="middle"))
    body.append(svg.vertical_text(16, (top + base_y) / 2, "loss"))
    keys = [(name, colour, kind) for name, colour, kind, pts in (
        ("train loss", TRAIN_COLOUR, "line", train), ("eval loss", EVAL_COLOUR, "dot", evals),
        ("learning rate", LR_COLOUR, "dash", lr)) if pts]
    body += svg.legend(keys, right, 12)
    return svg.svg("chart-loss", height, body, "Training and evaluation loss by step")


def _thin(points: Sequence[tuple], limit: int = 600) -> list[tuple]:
    """At most ``limit`` evenly spaced points, the last always kept: a long run's curve stays
    a few kilobytes and looks the same at page width."""
    if len(points) <= limit:
        return list(points)
    every = math.ceil(len(points) / limit)
    out = list(points[::every])
    if out[-1] is not points[-1]:
        out.append(points[-1])
    return out


def _epoch_note(epoch: Any) -> str:
    return f" (epoch {_fmt_epoch(epoch)})" if _finite(epoch) else ""


def _pass_rate_chart(tests: Sequence[Mapping[str, Any]], rate: float | None,
                     base_rate: float | None, has_base: bool) -> str:
    from llmspec.runtime.reports import svg

    groups: list[tuple[str, list[Mapping[str, Any]]]] = [("all tests", list(tests))]
    for tag in sorted({str(tag) for t in tests for tag in t.get("tags") or []}):
        groups.append((f"tag: {tag}", [t for t in tests if tag in (t.get("tags") or [])]))
    bar_h = 18
    group_h = (2 * bar_h + 4 if has_base else bar_h) + 16
    top, bottom = 30, 44
    left = min(260, 24 + svg.CHAR_W * max(len(label) for label, _ in groups))
    right = svg.WIDTH - 110  # room for "100% (12/12)" outside the longest bar
    plot_w = right - left
    height = top + group_h * len(groups) + bottom
    axis_y = top + group_h * len(groups)
    body: list[str] = []
    for pct in range(0, 101, 20):
        x = left + plot_w * pct / 100
        body.append(svg.line(x, top, x, axis_y, svg.GRID))
        body.append(svg.text(x, axis_y + 14, f"{pct}%", anchor="middle", fill=svg.MUTED, size=12))
    body.append(svg.text(left + plot_w / 2, axis_y + 34, "tests passed", anchor="middle"))
    for i, (label, members) in enumerate(groups):
        y = top + i * group_h + 8
        n = len(members)
        ok = sum(bool(t.get("passed")) for t in members)
        bars = [("fine-tuned", ok / n if n else (rate or 0.0), ok, TUNED_COLOUR)]
        if has_base:
            b_ok = sum(bool((t.get("base") or {}).get("passed")) for t in members)
            bars.append(("base", b_ok / n if n else (base_rate or 0.0), b_ok, BASE_COLOUR))
        mid = y + (len(bars) * (bar_h + 4) - 4) / 2
        body.append(svg.text(left - 12, mid, label, anchor="end"))
        for j, (who, r, k, colour) in enumerate(bars):
            by = y + j * (bar_h + 4)
            shown = f"{_fmt_pct(r)} ({k}/{n})" if n else _fmt_pct(r)
            body.append(svg.rect(left, by, plot_w * r, bar_h, colour, f"{who}: {shown}"))
            body.append(svg.text(left + plot_w * r + 6, by + bar_h / 2, shown, size=12))
    body.append(svg.line(left, top, left, axis_y, svg.AXIS))
    keys = [("fine-tuned", TUNED_COLOUR, "box")] + ([("base model", BASE_COLOUR, "box")] if has_base else [])
    body += svg.legend(keys, svg.WIDTH - 14, 12)
    return svg.svg("chart-pass-rate", height, body,
                   "Pass rate, fine-tuned vs base model" if has_base else "Pass rate")


# --------------------------------------------------------------------------- formatting

def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> int:
    try:
        return int(x or 0)
    except (TypeError, ValueError):
        return 0


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _quantile(sorted_values: Sequence[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def _nice_step(raw: float) -> int:
    """The smallest 1/2/5 x 10^k integer at least ``raw``: bin edges a reader can add up."""
    for exp in range(0, 9):
        for m in (1, 2, 5):
            if m * 10 ** exp >= raw:
                return m * 10 ** exp
    return 10 ** 9


def _fmt_int(x: Any) -> str:
    if x is None:
        return "–"
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return str(x)


def _fmt_num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.1f}"


def _gate_value(gate: Mapping[str, Any]) -> str:
    """A pass-rate gate's value as a percentage (83.3%, not 0.8333); others (a loss, a test
    count) as numbers."""
    name = str(gate.get("name") or "")
    if name.startswith("pass_rate"):
        return _fmt_pct(gate.get("value"))
    return _fmt_num(gate.get("value"))


def _fmt_epoch(x: Any) -> str | None:
    """Epochs as a reader counts them: 0.06, 1.5, 3 (the Trainer reports 0.05658)."""
    if not _finite(x):
        return None
    return f"{x:.2f}".rstrip("0").rstrip(".") if x < 10 else f"{x:,.1f}".removesuffix(".0")


def _fmt_pct(x: Any) -> str:
    if x is None or not _finite(x):
        return "–"
    return f"{100 * x:.1f}%".replace(".0%", "%")


def _fmt_duration(s: Any) -> str | None:
    if not _finite(s):
        return None
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def format_date(value: Any) -> str:
    """An ISO timestamp as ``2026-01-24 10:15 UTC``; anything unparsable verbatim."""
    if not value:
        return ""
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    tz = dt.strftime("%Z") or ""
    return dt.strftime("%Y-%m-%d %H:%M") + (f" {'UTC' if tz in ('UTC', 'UTC+00:00') else tz}"
                                            if tz else "")


def _marked(text: Any, match: Any, limit: int) -> list[tuple[str, bool]]:
    """``text`` as (piece, highlighted) parts: the span ``match`` = [start, end] marked."""
    text = str(text)
    try:
        start, end = (int(match[0]), int(match[1])) if match else (0, 0)
    except (TypeError, ValueError, IndexError):
        start = end = 0
    if not 0 <= start < end <= len(text) or end > limit:
        return [(_clip(text, limit), False)]
    return [(text[:start], False), (text[start:end], True), (_clip(text[end:], limit - end), False)]


def _clip(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit:,} more chars]"


# --------------------------------------------------------------------------- page

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#dde2e8; --soft:#f5f7fa; --ok:#1e7b3c;
  --ok-bg:#e3f4e8; --bad:#b3261e; --bad-bg:#fbe6e4; --warn:#8a5a00; --warn-bg:#fff3d6;
  --neutral:#3e4c59; --neutral-bg:#e8ecf1; --accent:#3867d6; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #eef1f5; font: 15px/1.5 %FONT%; }
main { max-width: 1120px; margin: 0 auto; padding: 0 20px 48px; }
header.top { background: #1f2933; color: #fff; }
header.top .inner { max-width: 1120px; margin: 0 auto; padding: 22px 20px 18px; }
header.top h1 { margin: 0; font-size: 26px; font-weight: 650; letter-spacing: -.01em; }
header.top .run { color: #c3cbd5; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 14px; }
header.top .meta { color: #c3cbd5; margin-top: 6px; font-size: 14px; }
header.top .meta span + span::before { content: "·"; margin: 0 8px; color: #7b8794; }
header.top .explain { margin: 10px 0 0; color: #e4e7eb; }
nav { margin-top: 14px; display: flex; gap: 6px; flex-wrap: wrap; }
nav a { color: #fff; text-decoration: none; font-size: 13px; padding: 3px 10px; border: 1px solid #52606d; border-radius: 999px; }
nav a:hover { background: #323f4b; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; vertical-align: middle; margin-left: 10px; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.neutral { background: var(--neutral-bg); color: var(--neutral); }
.pill { display: inline-block; min-width: 44px; text-align: center; padding: 0 8px; border-radius: 4px; font-size: 12px; font-weight: 700; letter-spacing: .03em; text-transform: uppercase; }
.pill.ok { background: var(--ok-bg); color: var(--ok); }
.pill.bad { background: var(--bad-bg); color: var(--bad); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.pill.neutral { background: var(--neutral-bg); color: var(--neutral); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; margin: 20px 0 4px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 26px; font-weight: 650; line-height: 1.2; }
.card .sub { color: var(--muted); font-size: 13px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px 22px 20px; margin-top: 20px; }
h2 { font-size: 20px; margin: 16px 0 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
h3 .fmt { color: var(--muted); font-weight: 400; font-size: 14px; }
p.lead { color: var(--muted); margin: 0 0 10px; }
.chart { margin: 8px 0 4px; }
.chart svg { display: block; width: 100%; height: auto; overflow: visible; }
.chart svg rect.bar:hover, .chart svg circle:hover { opacity: .8; }
.chart svg circle.hover:hover { fill-opacity: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 10px 0 0; font-size: 13px; }
.legend .swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 6px 0 10px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; color: #3e4c59; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td { background: #fff7f6; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; line-height: 1.45; }
pre.sample { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; margin: 2px 0 6px; max-height: 9em; overflow: auto; }
.samples .origin { font-size: 12px; color: var(--muted); }
mark { background: #ffe08a; color: inherit; border-radius: 2px; padding: 0 1px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; align-content: start; margin: 8px 0 12px; font-size: 14px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; word-break: break-word; }
.split { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.muted { color: var(--muted); }
details.test { border: 1px solid var(--line); border-left: 4px solid var(--ok); border-radius: 6px; margin: 12px 0; background: #fff; }
details.test.failed { border-left-color: var(--bad); }
details.test > summary { cursor: pointer; padding: 10px 14px; list-style: none; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
details.test > summary::-webkit-details-marker { display: none; }
details.test > summary::before { content: "▸"; color: var(--muted); width: 10px; }
details.test[open] > summary::before { content: "▾"; }
details.test .name { font-weight: 650; }
.tag { font-size: 12px; color: #3e4c59; background: var(--neutral-bg); border-radius: 4px; padding: 0 6px; }
details.test .body { padding: 0 14px 12px; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin: 8px 0; }
.answer { border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.answer .head { display: flex; justify-content: space-between; align-items: center; padding: 5px 10px; background: var(--soft); border-bottom: 1px solid var(--line); font-size: 13px; font-weight: 600; }
.answer.ok .head { background: var(--ok-bg); }
.answer.bad .head { background: var(--bad-bg); }
.answer pre { padding: 8px 10px; }
.prompt { background: #f0f4ff; border: 1px solid #d5def5; border-radius: 6px; padding: 8px 10px; }
.label-sm { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; margin: 10px 0 4px; }
details.example { margin: 6px 0; }
details.example summary { cursor: pointer; color: var(--accent); }
details.example pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px; margin-top: 6px; }
footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 28px; }
a { color: var(--accent); }
@media (max-width: 800px) { .answers, .split { grid-template-columns: 1fr; } }
@media print {
  body { background: #fff; font-size: 12px; }
  header.top { background: #fff; color: var(--fg); border-bottom: 2px solid var(--fg); }
  header.top .run, header.top .meta, header.top .explain { color: var(--muted); }
  nav { display: none !important; }
  main { padding: 0; max-width: none; }
  section, .card { border: none; padding: 0; }
  section { break-before: auto; }
  details.test, table, .chart, .card, .answer { break-inside: avoid; }
  pre.sample { max-height: none; overflow: visible; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
""".replace("%FONT%", FONT)

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="llmspec">
<title>{{ v.project }} · {{ v.run }} · {{ v.outcome.label }}</title>
<style>{{ css }}</style>
</head>
<body>
<header class="top"><div class="inner">
  <h1>{{ v.project }} <span class="badge {{ v.outcome.tone }}" id="outcome">{{ v.outcome.label }}</span></h1>
  {% if v.run %}<div class="run">run {{ v.run }}</div>{% endif %}
  <div class="meta">
    {% if v.created %}<span>{{ v.created }}</span>{% endif %}
    {% if v.spec_path %}<span>spec {{ v.spec_path }}</span>{% endif %}
    {% if v.plan_summary %}<span>{{ v.plan_summary }}</span>{% endif %}
  </div>
  {% if v.outcome.explain %}<p class="explain">{{ v.outcome.explain }}</p>{% endif %}
  {% if v.nav %}<nav>{% for anchor, title in v.nav %}<a href="#{{ anchor }}">{{ title }}</a>{% endfor %}</nav>{% endif %}
</div></header>
<main>
{% if v.cards %}
<div class="cards">
  {% for c in v.cards %}
  <div class="card"><div class="label">{{ c.label }}</div><div class="value">{{ c.value }}</div><div class="sub">{{ c.sub }}</div></div>
  {% endfor %}
</div>
{% endif %}

{% if v.data %}
<section id="data">
  <h2>Data: what went in and what was thrown away</h2>
  <p class="lead">{{ v.data.rows_in_fmt }} rows read from {{ v.data.sources|length }} source{{ "s" if v.data.sources|length != 1 }}; {{ v.data.kept_fmt }} kept after cleaning. Each bar is one source: kept rows and the rows each rule rejected.</p>
  <div class="legend">{% for name, colour in v.data.legend %}<span><span class="swatch" style="background: {{ colour }}"></span>{{ name }}</span>{% endfor %}</div>
  <div class="chart">{{ v.data.chart|safe }}</div>
  {% for s in v.data.sources %}
  <h3 id="source-{{ loop.index }}">{{ s.name }} {% if s.format %}<span class="fmt">({{ s.format }})</span>{% endif %}</h3>
  <p class="lead">{{ s.rows_in_fmt }} rows in → {{ s.rejected_fmt }} rejected → <strong>{{ s.kept_fmt }} kept</strong> ({{ s.kept_share }})</p>
  {% if s.rules %}
  <table class="rejects">
    <thead><tr><th>Rejected by</th><th class="num">Rows</th><th class="num">Share</th><th>Sample rows</th></tr></thead>
    <tbody>
    {% for r in s.rules %}
      <tr><td><code>{{ r.rule }}</code></td><td class="num">{{ r.count }}</td><td class="num">{{ r.share }}</td>
        <td class="samples">{% for x in r.samples %}<div class="origin">{{ x.origin }}{% if x.detail %} · {{ x.detail }}{% endif %}</div><pre class="sample">{% for piece, hit in x.parts %}{% if hit %}<mark>{{ piece }}</mark>{% else %}{{ piece }}{% endif %}{% endfor %}</pre>{% else %}<span class="muted">no samples kept</span>{% endfor %}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% else %}<p class="muted">No rows rejected.</p>{% endif %}
  {% if s.idle_rules %}<p class="muted idle">Rejected nothing: {% for rule in s.idle_rules %}<code>{{ rule }}</code>{{ ", " if not loop.last }}{% endfor %}.</p>{% endif %}
  <div class="split">
    {% if s.modified %}
    <div><div class="label-sm">Rows modified</div>
      <table><thead><tr><th>Rule</th><th class="num">Rows changed</th></tr></thead><tbody>
      {% for rule, n in s.modified %}<tr><td><code>{{ rule }}</code></td><td class="num">{{ n }}</td></tr>{% endfor %}
      </tbody></table>
      {% if s.idle_modifiers %}<div class="muted idle">Changed nothing: {% for rule in s.idle_modifiers %}<code>{{ rule }}</code>{{ ", " if not loop.last }}{% endfor %}.</div>{% endif %}</div>
    {% elif s.idle_modifiers %}
    <div><div class="label-sm">Rows modified</div><div class="muted idle">None: {% for rule in s.idle_modifiers %}<code>{{ rule }}</code>{{ ", " if not loop.last }}{% endfor %} changed nothing.</div></div>
    {% endif %}
    {% if s.profile %}
    <div><div class="label-sm">Profile of kept rows</div>
      <table><thead><tr><th>Column</th><th class="num">Nulls</th><th class="num">Min</th><th class="num">Median</th><th class="num">p95</th><th class="num">Max</th></tr></thead><tbody>
      {% for c in s.profile.columns %}<tr><td><code>{{ c.name }}</code></td><td class="num">{{ c.nulls }}</td><td class="num">{{ c.min }}</td><td class="num">{{ c.median }}</td><td class="num">{{ c.p95 }}</td><td class="num">{{ c.max }}</td></tr>{% endfor %}
      </tbody></table>
      <div class="muted">{{ s.profile.rows }} rows · duplicate rate {{ s.profile.duplicate_rate }} · non-text share {{ s.profile.non_text_share }} · lengths in characters</div></div>
    {% endif %}
  </div>
  {% endfor %}
</section>
{% endif %}

{% if v.dataset %}
<section id="dataset">
  <h2>Dataset</h2>
  <dl class="facts">
    {% if v.dataset.style %}<dt>Format</dt><dd>{{ v.dataset.style }}</dd>{% endif %}
    <dt>Split</dt><dd>{{ v.dataset.train }} train · {{ v.dataset.eval }} eval</dd>
    <dt>Leakage removed</dt><dd>{{ v.dataset.leakage_removed }} eval examples that also appeared in train</dd>
    {% for rule, n in v.dataset.rejected %}<dt>Rejected: <code>{{ rule }}</code></dt><dd>{{ n }}</dd>{% endfor %}
  </dl>
  {% if v.dataset.chart %}
  <h3>Length of training examples</h3>
  <p class="lead">{{ v.dataset.stats.n }} examples · min {{ v.dataset.stats.min }} · median {{ v.dataset.stats.median }} · p95 {{ v.dataset.stats.p95 }} · max {{ v.dataset.stats.max }} {{ v.dataset.length_basis }}</p>
  <div class="chart">{{ v.dataset.chart|safe }}</div>
  {% endif %}
  {% if v.dataset.examples %}
  <h3>Rendered examples</h3>
  {% if v.dataset.chat_template %}
  <p class="lead">The training records as llmspec writes them for Axolotl, one <code>role: text</code> line per turn; Axolotl wraps each turn in the chat template ({{ v.dataset.chat_template }}) when it tokenizes them.</p>
  {% else %}
  <p class="lead">What the model trains on, as written for Axolotl.</p>
  {% endif %}
  {% for e in v.dataset.examples %}
  <details class="example"{% if loop.first %} open{% endif %}><summary>{{ e.source or "example" }}{% if e.origin %} · {{ e.origin }}{% endif %}</summary><pre>{{ e.rendered }}</pre></details>
  {% endfor %}
  {% endif %}
</section>
{% endif %}

{% if v.training %}
<section id="training">
  <h2>Training</h2>
  <div class="split">
    <dl class="facts">{% for k, val in v.training.facts %}<dt>{{ k }}</dt><dd>{{ val }}</dd>{% endfor %}</dl>
    <dl class="facts"><dt>Final train loss</dt><dd><strong>{{ v.training.final_train_loss }}</strong></dd><dt>Final eval loss</dt><dd><strong>{{ v.training.final_eval_loss }}</strong></dd></dl>
  </div>
  {% if v.training.chart %}<div class="chart">{{ v.training.chart|safe }}</div>{% else %}<p class="muted">No loss history was recorded.</p>{% endif %}
</section>
{% endif %}

{% if v.acceptance %}
{% set a = v.acceptance %}
<section id="acceptance">
  <h2>Acceptance</h2>
  <p class="lead">Fine-tuned model: <strong>{{ a.pass_rate }}</strong>{% if a.counts %} ({{ a.counts }} tests){% endif %}{% if a.has_base %} · base model on the same prompts: <strong>{{ a.base_pass_rate }}</strong>{% if a.base_counts %} ({{ a.base_counts }}){% endif %}{% endif %}</p>
  {% if a.gates %}
  <h3>Gates</h3>
  <table class="gates">
    <thead><tr><th>Result</th><th>Gate</th><th>Severity</th><th>Threshold</th><th class="num">Value</th><th>Detail</th></tr></thead>
    <tbody>
    {% for g in a.gates %}
      <tr class="{{ 'pass' if g.passed else 'fail' }}">
        <td><span class="pill {{ 'ok' if g.passed else ('bad' if g.severity == 'error' else 'warn') }}">{{ 'pass' if g.passed else 'fail' }}</span></td>
        <td><code>{{ g.name }}</code></td><td>{{ g.severity }}</td><td><code>{{ g.threshold }}</code></td><td class="num">{{ g.value }}</td><td>{{ g.message }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
  {% if a.chart %}
  <h3>Pass rate{% if a.has_base %}: fine-tuned vs base model{% endif %}</h3>
  <div class="chart">{{ a.chart|safe }}</div>
  {% endif %}
  {% if a.tests %}
  <h3>Tests{% if a.has_base %}, side by side with the base model{% endif %}</h3>
  <table class="test-index">
    <thead><tr><th>Test</th><th>Tags</th><th>Fine-tuned</th>{% if a.has_base %}<th>Base</th>{% endif %}<th class="num">Score</th></tr></thead>
    <tbody>
    {% for t in a.tests %}
      <tr class="{{ 'pass' if t.passed else 'fail' }}"><td><a href="#{{ t.anchor }}">{{ t.name }}</a></td><td>{% for tag in t.tags %}<span class="tag">{{ tag }}</span> {% endfor %}</td>
        <td><span class="pill {{ 'ok' if t.passed else 'bad' }}">{{ 'pass' if t.passed else 'fail' }}</span></td>
        {% if a.has_base %}<td>{% if t.base %}<span class="pill {{ 'ok' if t.base.passed else 'bad' }}">{{ 'pass' if t.base.passed else 'fail' }}</span>{% else %}<span class="muted">–</span>{% endif %}</td>{% endif %}
        <td class="num">{{ t.score }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% for t in a.tests %}
  <details class="test {{ 'passed' if t.passed else 'failed' }}" id="{{ t.anchor }}"{% if t.open %} open{% endif %}>
    <summary><span class="pill {{ 'ok' if t.passed else 'bad' }}">{{ 'pass' if t.passed else 'fail' }}</span><span class="name">{{ t.name }}</span>{% for tag in t.tags %}<span class="tag">{{ tag }}</span>{% endfor %}<span class="muted">score {{ t.score }}</span></summary>
    <div class="body">
      <div class="label-sm">Prompt</div>
      <pre class="prompt">{{ t.prompt }}</pre>
      <div class="answers">
        <div class="answer {{ 'ok' if t.passed else 'bad' }}"><div class="head"><span>Fine-tuned model</span><span class="pill {{ 'ok' if t.passed else 'bad' }}">{{ 'pass' if t.passed else 'fail' }}</span></div><pre class="output">{{ t.output }}</pre></div>
        {% if t.base %}
        <div class="answer {{ 'ok' if t.base.passed else 'bad' }}"><div class="head"><span>Base model · score {{ t.base.score }}</span><span class="pill {{ 'ok' if t.base.passed else 'bad' }}">{{ 'pass' if t.base.passed else 'fail' }}</span></div><pre class="output">{{ t.base.output }}</pre></div>
        {% else %}
        <div class="answer"><div class="head"><span>Base model</span></div><pre class="muted">not run</pre></div>
        {% endif %}
      </div>
      {% if t.assertions %}
      <table class="assertions">
        <thead><tr><th>Assertion</th><th>Expected</th><th>Got (fine-tuned)</th><th>Result</th></tr></thead>
        <tbody>
        {% for x in t.assertions %}
          <tr class="{{ 'pass' if x.passed else 'fail' }}"><td><code>{{ x.key }}</code></td><td><pre>{{ x.expected }}</pre></td><td><pre>{{ x.got }}</pre></td><td><span class="pill {{ 'ok' if x.passed else 'bad' }}">{{ 'pass' if x.passed else 'fail' }}</span></td></tr>
        {% endfor %}
        </tbody>
      </table>
      {% endif %}
    </div>
  </details>
  {% endfor %}
  {% endif %}
</section>
{% endif %}

{% if v.retention %}
{% set r = v.retention %}
<section id="retention">
  <h2>Retention</h2>
  {% if not r.enabled %}
  <p class="muted">Off: {{ r.reason }}.</p>
  {% else %}
  <p class="lead">General suite <code>{{ r.suite }}</code>: fine-tuned <strong>{{ r.pass_rate }}</strong> ({{ r.counts }}) · base model <strong>{{ r.base_pass_rate }}</strong> ({{ r.base_counts }}) · drift <strong>{{ r.drift }}</strong> nats/token (the base model's own answers cost {{ r.base_nll }} under the base, {{ r.tuned_nll }} under the fine-tuned model)</p>
  <table class="gates">
    <thead><tr><th>Tag</th><th class="num">Base</th><th class="num">Fine-tuned</th><th class="num">Drop</th></tr></thead>
    <tbody>{% for t in r.tags %}<tr class="{{ 'fail' if t.worse else 'pass' }}"><td>{{ t.tag }}</td><td class="num">{{ t.base }}</td><td class="num">{{ t.tuned }}</td><td class="num">{{ t.drop }}</td></tr>{% endfor %}</tbody>
  </table>
  {% if r.lost %}
  <h3>Lost prompts: the base model right, the fine-tuned model wrong ({{ r.lost|length }})</h3>
  {% for x in r.lost %}
  <details class="test failed"{% if loop.index <= 5 %} open{% endif %}>
    <summary><span class="pill bad">lost</span><span class="name">{{ x.name }}</span></summary>
    <div class="body">
      <pre class="prompt">{{ x.prompt }}</pre>
      <div class="answers">
        <div class="answer ok"><div class="head"><span>Base model</span></div><pre class="output">{{ x.base_output }}</pre></div>
        <div class="answer bad"><div class="head"><span>Fine-tuned model</span></div><pre class="output">{{ x.output }}</pre></div>
      </div>
    </div>
  </details>
  {% endfor %}
  {% endif %}
  {% endif %}
</section>
{% endif %}

{% if v.comparison %}
{% set c = v.comparison %}
<section id="previous">
  <h2>Since the previous run</h2>
  <p class="lead">Compared with run <code>{{ c.run }}</code>{% if c.created %} ({{ c.created }}){% endif %}{% if c.outcome %}, {{ c.outcome|lower }}{% endif %}.</p>
  {% if c.pass_rate %}
  <dl class="facts"><dt>Pass rate</dt><dd>{{ c.pass_rate.before }} → <strong>{{ c.pass_rate.now }}</strong>{% if c.pass_rate.delta %} <span class="pill {{ c.pass_rate.tone }}">{{ c.pass_rate.delta }}</span>{% endif %}</dd></dl>
  {% endif %}
  <table class="test-changes"><tbody>
    <tr><th>Now passing</th><td>{% for n in c.fixed %}<code>{{ n }}</code>{{ ", " if not loop.last }}{% else %}<span class="muted">none</span>{% endfor %}</td></tr>
    <tr><th>Now failing</th><td>{% for n in c.broken %}<code>{{ n }}</code>{{ ", " if not loop.last }}{% else %}<span class="muted">none</span>{% endfor %}</td></tr>
    {% if c.added %}<tr><th>New tests</th><td>{% for n in c.added %}<code>{{ n }}</code>{{ ", " if not loop.last }}{% endfor %}</td></tr>{% endif %}
    {% if c.removed %}<tr><th>Removed tests</th><td>{% for n in c.removed %}<code>{{ n }}</code>{{ ", " if not loop.last }}{% endfor %}</td></tr>{% endif %}
    <tr><th>Same result</th><td>{{ c.unchanged }} tests</td></tr>
  </tbody></table>
  {% if c.sources %}
  <h3>Data funnel changes</h3>
  <table class="funnel-changes">
    <thead><tr><th>Source</th><th class="num">Rows in</th><th class="num">Kept</th><th>Rejections that changed</th></tr></thead>
    <tbody>
    {% for s in c.sources %}
      <tr><td><code>{{ s.source }}</code>{% if s.status != "kept" %} <span class="tag">{{ s.status }}</span>{% endif %}</td><td class="num">{{ s.rows_in }}</td><td class="num">{{ s.kept }}</td>
        <td>{% for rule, change in s.rules %}<code>{{ rule }}</code> {{ change }}{{ "; " if not loop.last }}{% else %}<span class="muted">–</span>{% endfor %}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% elif c.sources_same %}<p class="muted">The data funnel is unchanged: same rows in, kept and rejected per rule.</p>{% endif %}
</section>
{% endif %}

{% if v.feedback %}
{% set f = v.feedback %}
<section id="feedback">
  <h2>Feedback from <code>llmspec serve</code></h2>
  {% for s in f.sources %}
  <p class="lead"><code>{{ s.name }}</code>: {{ s.read }} rated exchanges read, <strong>{{ s.kept }}</strong> became examples{% if s.ratings %} ({% for r, n in s.ratings %}{{ r }} {{ n }}{{ ", " if not loop.last }}{% endfor %}){% endif %}.</p>
  {% if s.not_used %}<ul>{% for reason, n in s.not_used %}<li>not used, {{ n }}: {{ reason }}</li>{% endfor %}</ul>{% endif %}
  {% if s.samples %}
  <table class="feedback-samples">
    <thead><tr><th>Exchange</th><th>Rating</th><th>Prompt</th><th>The model said</th><th>Learned</th></tr></thead>
    <tbody>{% for x in s.samples %}<tr><td><code>{{ x.exchange }}</code></td><td>{{ x.rating }}</td><td>{{ x.prompt }}</td><td>{{ x.answer_was }}</td><td>{{ x.learned }}</td></tr>{% endfor %}</tbody>
  </table>
  {% endif %}
  {% endfor %}
  {% if f.tests %}
  <h3>Corrected cases on the new model: {{ f.fixed }} of {{ f.total }} pass</h3>
  <table class="feedback-tests">
    <thead><tr><th>Result</th><th>Test</th><th>Prompt</th><th>Correction</th><th>Answer before</th><th>Answer now</th></tr></thead>
    <tbody>{% for t in f.tests %}<tr class="{{ 'pass' if t.passed else 'fail' }}"><td><span class="pill {{ 'ok' if t.passed else 'bad' }}">{{ 'pass' if t.passed else 'fail' }}</span></td><td><code>{{ t.name }}</code></td><td>{{ t.prompt }}</td><td>{{ t.correction }}</td><td>{{ t.answer_was }}</td><td>{{ t.answer_now }}</td></tr>{% endfor %}</tbody>
  </table>
  {% endif %}
</section>
{% endif %}

{% if v.usage %}
<section id="use">
  <h2>Use this model</h2>
  <p class="lead">From the project's folder; <a href="#artifacts">Files</a> lists where the model is. More in llmspec's docs/after-promotion.md.</p>
  <table class="usage"><tbody>
  {% for what, cmd in v.usage %}<tr><th>{{ what }}</th><td><pre class="cmd">{{ cmd }}</pre></td></tr>{% endfor %}
  </tbody></table>
</section>
{% endif %}

{% if v.artifacts %}
<section id="artifacts">
  <h2>Files</h2>
  <table><tbody>{% for k, p in v.artifacts %}<tr><th>{{ k }}</th><td><code>{{ p }}</code></td></tr>{% endfor %}</tbody></table>
</section>
{% endif %}
<footer>Generated by llmspec{% if v.created %} · {{ v.created }}{% endif %}. This page is self-contained and works offline.</footer>
</main>
<script>
// Collapsed tests would print as one line each: open them all for paper.
window.addEventListener('beforeprint', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
});
</script>
</body>
</html>
"""
