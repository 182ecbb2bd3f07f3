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
    parsed = _ndjson.parse(data, shown)
    frame = parsed.frame.with_columns(origins(f"{shown}:", parsed.rows + 1))
    bad = rejects(
        "corrupt",
        [why for _, why in parsed.corrupt],
        [f"{shown}:{i + 1}" for i, _ in parsed.corrupt],
        [parsed.raw(data, i) for i, _ in parsed.corrupt],
    )
    fail_if_nothing_readable(parsed.units, frame.height, bad, shown, "line", "JSON Lines")
    if not contract:
        return Part(frame, bad, parsed.units)
    good, wrong = _ndjson.check_contract(frame, parsed.buffer, contract, shown)
    return Part(good, concat_rejects([bad, contract_rejects(wrong)]), parsed.units)
