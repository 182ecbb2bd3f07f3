"""Step 1: read a declared source into rows, counting and keeping every unit that failed.

``read_source`` returns a ``SourceBatch``: the readable rows (data columns plus ``_origin``)
and the rejected units (``_rule`` = ``corrupt`` for units that could not be read,
``contract`` for rows that broke the declared ``columns``, ``no_text`` for PDF pages with
no extractable text, ``unpaired`` for email threads
without an agent reply), with ``rows_in == rows.height + rejected.height`` always.

A unit is what the format is made of: a non-blank line (JSONL), an array element (JSON), a
record (CSV), a row (Parquet, SQLite, PostgreSQL), a file (text, or markdown, HTML, DOCX split
by file), a heading section (markdown, HTML, DOCX), a page (PDF; a file with ``split: file``),
a message (mbox, eml), or a thread (email with ``pairing``).
Only whole-source problems raise ``DataError``: a missing file, a file that is not of its
format at all, a declared column the data lacks, a database that refuses the query.

Columns of each format are described in the reader modules' docstrings. Columns the
contract does not declare are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ._common import Part, concat_rejects, concat_rows, data_error, display, with_origin_last
from llmspec.spec.paths import resolve_files

if TYPE_CHECKING:
    import polars as pl

# Formats whose columns are the data's own keys; the others' columns are fixed by their reader.
KEYED_FORMATS = ("jsonl", "json", "csv", "parquet", "sqlite", "postgres")
_FILE_FORMATS = ("jsonl", "json", "csv", "parquet", "text", "markdown", "html", "pdf", "docx", "mbox", "eml",
                 "sqlite")


@dataclass
class SourceBatch:
    name: str
    rows: "pl.DataFrame"  # data columns + "_origin" (Utf8)
    rejected: "pl.DataFrame"  # _rule, _detail, _origin (Utf8), _raw (Binary; bytes of unreadable units)
    rows_in: int  # every unit read, good or bad: rows.height + rejected.height
    files: list[str] = field(default_factory=list)  # files read, as display paths
    # keys the declared `columns` do not name -> rows holding a value there (keyed formats only)
    extra_columns: dict[str, int] = field(default_factory=dict)


def source_files(spec, base_dir: Path) -> list[Path]:
    """The files a file-based source reads (globs expanded, sorted); [] for postgres, and []
    when nothing matches (``read_source`` raises for that). No reading. Paths that are
    absolute or leave ``base_dir`` raise ``DataError``."""
    if spec.format in ("postgres", "feedback"):
        return []
    files = resolve_files(spec.path, Path(base_dir), spec.format, must_exist=False)
    if spec.format == "sqlite":
        # Rows committed in WAL mode live in the -wal file until a checkpoint: the reader sees
        # them, so the fingerprint must too.
        files = files + [w for f in files for w in (f.with_name(f.name + "-wal"),) if w.is_file()]
    return files


def _reader(fmt: str):
    if fmt == "jsonl":
        from . import jsonl as mod
    elif fmt == "json":
        from . import json_array as mod
    elif fmt == "csv":
        from . import csv as mod
    elif fmt == "parquet":
        from . import parquet as mod
    elif fmt in ("text", "markdown"):
        from . import text as mod
    elif fmt == "html":
        from . import html as mod
    elif fmt == "pdf":
        from . import pdf as mod
    elif fmt == "docx":
        from . import docx as mod
    elif fmt in ("mbox", "eml"):
        from . import email as mod
    elif fmt == "sqlite":
        from . import sqlite as mod
    else:
        raise data_error(f"unknown source format {fmt!r}", code="unknown-format")
    return mod


def source_spec(data: Mapping[str, Any]):
    """A source's typed config from its plain form in a Plan (``SourceSpec``, by its format)."""
    from pydantic import TypeAdapter

    from llmspec.spec.models import SourceSpec

    return TypeAdapter(SourceSpec).validate_python(dict(data), strict=False)


def read_source(name: str, spec, base_dir: Path, *, env: Mapping[str, str] | None = None) -> SourceBatch:
    """Read one source. ``base_dir`` is the spec file's folder; ``env`` resolves ``${env:NAME}``
    (defaults to the process environment)."""
    from .contract import parse_contract

    # Plain objects with `columns` (not a spec model) read as a contract without an extra policy.
    contract = parse_contract(spec.contract if hasattr(spec, "contract") else getattr(spec, "columns", None))
    if spec.format == "postgres":
        import os

        from . import postgres

        part = postgres.read(name, spec, contract, os.environ if env is None else env)
        files: list[str] = []
    elif spec.format == "feedback":
        from . import feedback

        part = feedback.read(name, spec, contract, Path(base_dir), env)
        files = []
    else:
        base_dir = Path(base_dir)
        paths = resolve_files(spec.path, base_dir, spec.format)
        files = [display(p, base_dir) for p in paths]
        mod = _reader(spec.format)
        if hasattr(mod, "read_files"):
            part = mod.read_files(list(zip(paths, files)), spec, contract)
        else:
            parts = [mod.read_file(p, shown, spec, contract) for p, shown in zip(paths, files)]
            part = Part(concat_rows([p.rows for p in parts], name), concat_rejects(p.rejected for p in parts),
                        sum(p.units for p in parts))
    return finish_part(name, spec, part, contract, files)


def finish_part(name: str, spec, part: Part, contract, files: list[str]) -> SourceBatch:
    """A reader's part as a ``SourceBatch``: origins last, undeclared keys counted (or rejected
    under ``extra: reject``), units accounted for. A whole source, or one batch of one."""
    extra_policy = getattr(spec, "extra_policy", "warn")
    rows = with_origin_last(part.rows)
    rejected = concat_rejects([part.rejected])
    extra: dict[str, int] = {}
    if contract and spec.format in KEYED_FORMATS:
        from .contract import extra_columns, reject_extra

        extra = extra_columns(rows, contract)
        if extra and extra_policy == "reject":
            rows, bad = reject_extra(rows, list(extra))
            rejected = concat_rejects([rejected, bad])
    if part.units != rows.height + rejected.height:
        raise data_error(f"{name}: read {part.units} units but accounted for {rows.height} rows and "
                         f"{rejected.height} rejects (a bug in the {spec.format} reader)", code="accounting")
    return SourceBatch(name=name, rows=rows, rejected=rejected, rows_in=part.units, files=files,
                       extra_columns=extra if extra_policy != "ignore" else {})


__all__ = ["SourceBatch", "finish_part", "read_source", "source_files"]
