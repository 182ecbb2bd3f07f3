"""`llmspec clean SPEC`: read the sources and run the quality rules, nothing else.

Prints a funnel per source (rows in, rejected per rule with sample rows, modified, kept), or
with ``--json`` the counts as ``{"sources": {NAME: {rows_in, rows_kept, rejected, modified,
profile, ...}}, "gates": [...]}``. ``--out DIR`` writes ``DIR/NAME.parquet`` (kept rows) and
``DIR/NAME.rejects.parquet`` (every rejected row). Failed gates exit 1 with the numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from llmspec.spec.errors import Diagnostic, LlmspecError, SpecError, did_you_mean

SAMPLES_PER_RULE = 3
SAMPLE_CHARS = 70


@click.command("clean")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", "only", multiple=True, metavar="NAME",
              help="Clean only this source (repeatable). Overall gates then do not apply.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON on standard output.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write NAME.parquet (kept rows) and NAME.rejects.parquet (rejected rows) here.")
def clean_command(spec: Path, only: tuple[str, ...], as_json: bool, out_dir: Path | None) -> None:
    """Read the sources and run the quality rules only: counts, samples, cleaned files."""
    try:
        code = _clean(spec, only, as_json, out_dir)
    except LlmspecError as exc:
        from llmspec.cli import print_diagnostics

        print_diagnostics(exc.diagnostics)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code)


def _load(path: Path):
    try:
        from llmspec.api import load_spec
    except ImportError:  # the API module is optional; the loader underneath is not
        from llmspec.spec.load import load_spec
    return load_spec(path)


def _clean(spec_path: Path, only: tuple[str, ...], as_json: bool, out_dir: Path | None) -> int:
    """The Plan's sources and cleaning stages, run by apply's executor (nothing after them)."""
    from rich.console import Console

    from llmspec.api import make_plan, run_stages
    from llmspec.runtime.clean.run import StreamResult, check_gates
    from llmspec.spec.models import QualitySpec

    # cleaning never trains: Axolotl's schema check (its import: torch, seconds, ~600 MiB) is not paid
    report = make_plan(spec_path, for_apply=True, check_training=False)
    plan = report.plan
    names = [s.name for s in plan.stages if s.kind == "sources"]
    for name in only:
        if name not in names:
            raise SpecError(Diagnostic("unknown-source", f"no source named '{name}'",
                                       hint=did_you_mean(name, names) or f"sources: {', '.join(names)}"))
    selected = [n for n in names if not only or n in only]
    err = Console(stderr=True)
    show_progress = err.is_terminal and not os.environ.get("CI")
    with _Progress(err, enabled=show_progress) as bar:
        def progress(event: str, data: dict) -> None:
            if event == "stage-start" and data["stage"].startswith(("sources.", "clean.")):
                bar.start(data["stage"].split(".", 1)[1])
            elif event == "rows" and hasattr(data.get("rows"), "reason"):
                bar.step(data["rows"])
        executor = run_stages(report, [f"clean.{n}" for n in selected], label="clean", progress=progress)
    results, profiles, files, extras = {}, {}, {}, {}
    for name in selected:
        built = executor.stage_dir(f"clean.{name}")
        result = StreamResult.load(built)
        source = json.loads((executor.stage_dir(f"sources.{name}") / "source.json").read_text())
        results[name], files[name], extras[name] = result, source["files"], source.get("extra_columns") or {}
        profiles[name] = result.profile
        if out_dir is not None:
            _write_outputs(out_dir, name, built)
    _check_mapping(report.loaded, {n: r.columns for n, r in results.items()})
    # Source gates ran in each clean stage (a failure stopped it); the overall ones belong to the
    # dataset stage, and are checked here too when every source was cleaned.
    overall = plan.stage("dataset").compiled["quality_gates"]
    quality = QualitySpec.model_validate({"gates": overall if not only else {}})
    failures = [d for d in check_gates(results, quality) if d.severity == "error"]
    warnings = extra_warnings(report.loaded, extras)
    if warnings:
        from llmspec.cli import print_diagnostics

        print_diagnostics(warnings)
    if as_json:
        doc = {"sources": {n: {**_counts(r), "profile": profiles[n], "extra_columns": extras[n]}
                           for n, r in results.items()},
               "gates": [d.to_json() for d in failures]}
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        from ._console import make_console

        out = make_console(highlight=False, soft_wrap=False)
        for name, result in results.items():
            _funnel(out, name, result, files[name], out_dir)
    if failures:
        from llmspec.cli import print_diagnostics

        print_diagnostics(failures)
        return 1
    return 0


def _check_mapping(loaded, columns: dict[str, list[str]]) -> None:
    """``format.map`` against the columns the cleaned rows really have: a value that names no
    column and is no template fails here, before any example is rendered."""
    from llmspec.compiler.formatting import compile_format

    fmt = loaded.spec.format
    subset = fmt.model_copy(update={"map": {n: m for n, m in fmt.map.items() if n in columns}})
    compile_format(subset, {n: [c for c in cols if c != "_origin"] for n, cols in columns.items()},
                   locate=loaded.locate, method=loaded.spec.training.method)


def extra_warnings(loaded, extras: dict[str, dict[str, int]]) -> list[Diagnostic]:
    """One warning per source whose rows hold keys its `columns` contract does not declare."""
    out = []
    for name, keys in extras.items():
        if keys and loaded.spec.sources[name].extra_policy == "warn":
            listed = ", ".join(f"'{k}' ({n} rows)" for k, n in sorted(keys.items()))
            out.append(Diagnostic("extra-columns", f"{name}: keys the columns contract does not declare: {listed}",
                                  loaded.locate(("sources", name, "columns")), severity="warning",
                                  hint="declare them, or set `extra: reject` (drop such rows) or `extra: ignore` "
                                  "under `columns`"))
    return out


def _counts(result) -> dict[str, Any]:
    d = result.to_dict()
    return {"rows_in": d["rows_in"], "rows_kept": d["rows_kept"], "rejected": d["rejected"],
            "modified": d["modified"], "notes": d["notes"]}


# ----------------------------------------------------------------------------- pieces


def _write_outputs(out_dir: Path, name: str, built: Path) -> None:
    """The clean stage's kept rows and rejects, copied (each atomically) to where --out says."""
    import shutil
    import tempfile

    out_dir.mkdir(parents=True, exist_ok=True)
    for source, target in ((built / "kept.parquet", out_dir / f"{name}.parquet"),
                           (built / "rejects.parquet", out_dir / f"{name}.rejects.parquet")):
        if not source.exists():  # quality.keep_rejects: false
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class _Progress:
    """A transient rich progress bar on a terminal; nothing at all in pipes."""

    def __init__(self, console, *, enabled: bool):
        self.enabled = enabled
        self.console = console
        self.progress = None
        self.task = None
        self.name = ""

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start(self, name: str) -> None:
        self.name = name
        if self.progress is not None:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(f"{name}: reading", total=None)

    def step(self, p) -> None:
        if self.progress is not None:
            what = "done" if p.reason == "done" else p.reason
            self.progress.update(self.task, total=p.total, completed=p.done,
                                 description=f"{self.name}: {what} ({int(p):,} rows in play)")


def _sample_line(row: dict[str, Any], data_cols: list[str]) -> str:
    """origin: reason  column='value', showing the column the reason names, else the longest text."""
    detail = row.get("_detail") or ""
    named = [c for c in data_cols if detail.startswith((f"{c} ", f"{c}:"))]
    values = {c: row.get(c) for c in data_cols if isinstance(row.get(c), str) and row.get(c).strip()}
    pick = next((c for c in named if c in values), None) or max(values, key=lambda c: len(values[c]), default=None)
    text = f"{pick}={values[pick]!r}" if pick else ""
    if not text and row.get("_raw") is not None:
        text = f"raw={bytes(row['_raw'])[:SAMPLE_CHARS]!r}"
    if len(text) > SAMPLE_CHARS:
        text = text[:SAMPLE_CHARS - 1] + "…"
    if len(detail) > SAMPLE_CHARS:
        detail = detail[:SAMPLE_CHARS - 1] + "…"
    return f"{row.get('_origin')}: {detail}" + (f"  {text}" if text else "")


def _funnel(console, name: str, result, files: list[str], out_dir: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    pct = (lambda n: f"{n / result.rows_in:.1%}") if result.rows_in else (lambda n: "-")
    table = Table(title=f"[bold]{escape(name)}[/bold]" + (f"  {escape(', '.join(files[:3]))}"
                                                         + (" …" if len(files) > 3 else "") if files else ""),
                  title_justify="left", show_edge=False, pad_edge=False, box=None)
    table.add_column("step")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    table.add_column("sample rows (origin: reason  value)", overflow="fold")
    table.add_row("rows in", f"{result.rows_in:,}", "", "")
    data_cols = [c for c in result.samples.columns if not c.startswith("_")]
    reader = [r for r in result.rejected if r not in result.order]
    for rule in reader + result.order:
        if rule in result.modified:
            n = result.modified[rule]
            table.add_row(f"[yellow]~ {escape(rule)}[/yellow]", f"{n:,}", pct(n), "modified in place")
            if rule not in result.rejected:
                continue
        n = result.rejected.get(rule, 0)
        if not n and rule in reader:
            continue
        samples = result.samples.filter(result.samples.get_column("_rule") == rule).head(SAMPLES_PER_RULE)
        lines = [escape(_sample_line(r, data_cols)) for r in samples.iter_rows(named=True)]
        table.add_row(f"[red]- {escape(rule)}[/red]", f"{n:,}", pct(n), "\n".join(lines))
    table.add_row("[green bold]kept[/green bold]", f"[bold]{result.rows_kept:,}[/bold]", pct(result.rows_kept),
                  escape(f"-> {out_dir / (name + '.parquet')}") if out_dir else "")
    console.print(table)
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    console.print()


if __name__ == "__main__":  # `python -m llmspec.commands.clean`, before the CLI registers it
    clean_command(prog_name="llmspec clean")
