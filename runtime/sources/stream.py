"""Read a source in batches, so that cleaning holds one batch in memory at a time.

JSON Lines files are read ``batch_rows`` lines at a time (origins and line numbers as if read
whole). The other formats' readers need a whole file (a CSV's quoting, a JSON array, an mbox's
threads) or a whole query result: they are read whole, as before, and handed out in slices of
``batch_rows`` rows, which still bounds the memory that cleaning adds on top of the reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

from . import SourceBatch, finish_part, read_source
from ._common import display
from llmspec.spec.paths import resolve_files


def iter_source(name: str, spec, base_dir: Path, *, batch_rows: int,
                env: Mapping[str, str] | None = None) -> Iterator[SourceBatch]:
    """``SourceBatch``es whose rows, rejects and ``rows_in`` add up to ``read_source``'s."""
    if spec.format != "jsonl":
        whole = read_source(name, spec, base_dir, env=env)
        n = whole.rows.height
        for lo in range(0, max(n, 1), batch_rows):
            first = lo == 0
            yield SourceBatch(name=name, rows=whole.rows.slice(lo, batch_rows),
                              rejected=whole.rejected if first else whole.rejected.head(0),
                              rows_in=(whole.rows_in - n if first else 0) + min(batch_rows, max(n - lo, 0)),
                              files=whole.files, extra_columns=whole.extra_columns if first else {})
        return
    from . import jsonl
    from .contract import parse_contract

    contract = parse_contract(spec.contract if hasattr(spec, "contract") else getattr(spec, "columns", None))
    base_dir = Path(base_dir)
    paths = resolve_files(spec.path, base_dir, spec.format)
    files = [display(p, base_dir) for p in paths]
    for path, shown in zip(paths, files):
        for part in jsonl.iter_chunks(path, shown, contract, batch_rows):
            yield finish_part(name, spec, part, contract, files)
