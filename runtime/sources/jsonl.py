"""JSON Lines: one JSON object per line.

Columns: the keys of the objects (the union over all lines; a key a line lacks is null
there). Without a contract values keep the types polars reads: nested objects become
structs, arrays lists; a key whose values mix types (``1`` here, ``"a"`` there) becomes text.
Origins: ``path:LINE`` (1-based). Units: every non-blank line; a line that is not valid
UTF-8, not JSON, JSON but not an object, or holding a string that is not valid Unicode (a
``\\ud800`` escape without its pair) is rejected as ``corrupt`` with its bytes (a leading
UTF-8 byte order mark is ignored); a
file in which not one line is readable fails the source (it is not JSONL at all).
"""

from __future__ import annotations

from pathlib import Path

from . import _ndjson
from ._common import (Part, concat_rejects, contract_rejects, fail_if_nothing_readable, origins, read_bytes, rejects,
                      strip_bom)


def read_file(path: Path, shown: str, spec, contract) -> Part:
    data = strip_bom(read_bytes(path, shown))
    part, readable, corrupt = read_chunk(data, shown, 0, contract)
    fail_if_nothing_readable(part.units, readable, corrupt, shown, "line", "JSON Lines")
    return part


def read_chunk(data: bytes, shown: str, first_line: int, contract):
    """Whole lines of a file starting at 0-based line ``first_line`` (origins count from there):
    (part, lines that are JSON objects, before the contract, the corrupt lines' rejects)."""
    parsed = _ndjson.parse(data, shown)
    frame = parsed.frame.with_columns(origins(f"{shown}:", parsed.rows + 1 + first_line))
    bad = rejects(
        "corrupt",
        [why for _, why in parsed.corrupt],
        [f"{shown}:{i + 1 + first_line}" for i, _ in parsed.corrupt],
        [parsed.raw(data, i) for i, _ in parsed.corrupt],
    )
    if not contract:
        return Part(frame, bad, parsed.units), frame.height, bad
    good, wrong = _ndjson.check_contract(frame, parsed.buffer, contract, shown)
    return Part(good, concat_rejects([bad, contract_rejects(wrong)]), parsed.units), frame.height, bad


def iter_chunks(path: Path, shown: str, contract, lines: int):
    """Parts of ``lines`` lines each, read in order: one chunk of the file in memory at a time.
    Fails like ``read_file`` when no line of the whole file is readable."""
    import itertools

    units = good = 0
    bad_all = []
    first = 0
    try:
        fh = open(path, "rb")
    except OSError:
        read_bytes(path, shown)  # raises the reader's own error
        raise
    with fh:
        while True:
            block = list(itertools.islice(fh, lines))
            if not block:
                break
            data = b"".join(block)
            part, readable, corrupt = read_chunk(strip_bom(data) if first == 0 else data, shown, first, contract)
            first += len(block)
            units += part.units
            good += readable
            if not good and corrupt.height:
                bad_all.append(corrupt.head(1))
            yield part
    if units and not good:
        fail_if_nothing_readable(units, 0, _all_bad(bad_all, units), shown, "line", "JSON Lines")


class _all_bad:
    """What ``fail_if_nothing_readable`` reads of a rejects frame: its height and first row."""

    def __init__(self, firsts, units: int):
        self.height, self._first = units, firsts[0]

    def row(self, i: int, named: bool = False):
        return self._first.row(i, named=named)
