"""MinHash candidates cut into pieces that are grouped one at a time (``near_stage`` step 3).

Grouping all candidates at once held their texts, shingles, shingle sets and sketches together:
~400k candidates at 10M ticket lines took the clean's peak from 1.33 to 1.86 GiB. A candidate
pair can only come from rows sharing a band bucket, so the connected components of "shares a
bucket" never pair across each other: grouped apart, they give exactly the groups found among
all candidates. Here

1. ``bucket_components``: those components, by union-find on candidate numbers, from the band
   keys read a slice of the key space at a time (ids and keys only, never texts);
2. ``cut``: whole components, in the order of their first row, packed into pieces of about
   ``limit`` shingles (a component larger than that is a piece of its own);
3. ``PieceTexts``: the candidates' texts routed to their piece as the batches are read back,
   spilled to Parquet per piece, then handed out one piece at a time.

A bucket here is what ``dedupe.band_pairs`` treats as one over all candidates: keys equal above
their ``bits`` low bits (which ``band_pairs`` replaces by the document number), across bands too,
so even a false collision lands inside one piece and the pairs are the whole's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def bucket_components(count: int, bits: int, bands: int, band_keys: Callable[[int], Iterable["np.ndarray"]],
                      max_keys: int) -> "np.ndarray":
    """Root (smallest candidate number) of each candidate's component. ``band_keys(b)`` yields
    band b's keys of the candidates, in candidate order, in consecutive chunks; at most about
    ``max_keys`` keys are sorted at once (passes over slices of the key space)."""
    import numpy as np
    import polars as pl

    from llmspec.runtime.clean.dedupe import components

    parent = np.arange(count)
    low = np.uint64((1 << bits) - 1)
    passes = max(1, -(-count * bands // max_keys))
    for p in range(passes):
        tagged = []
        for b in range(bands):
            at = 0
            for keys in band_keys(b):
                keys = np.asarray(keys, np.uint64)
                ids = np.arange(at, at + len(keys), dtype=np.uint64)
                at += len(keys)
                if passes > 1:  # a bucket's keys agree above ``bits``: all fall in one pass
                    sel = (keys >> np.uint64(bits)) % np.uint64(passes) == p
                    keys, ids = keys[sel], ids[sel]
                tagged.append((keys & ~low) | ids)
        # one sort of u64 (as in band_pairs): buckets in a row, each bucket's members in order
        tagged = pl.Series(np.concatenate(tagged)).sort().to_numpy()
        same = np.flatnonzero((tagged[1:] >> np.uint64(bits)) == (tagged[:-1] >> np.uint64(bits)))
        ids = (tagged & low).astype(np.int64)
        edges = np.stack([ids[same], ids[same + 1]], 1)
        del tagged, ids
        linked = np.flatnonzero(parent != np.arange(count))  # what earlier passes joined
        parent = components(count, np.concatenate([edges, np.stack([linked, parent[linked]], 1)]))
    return parent


def cut(root: "np.ndarray", sizes: "np.ndarray", limit: int) -> tuple["np.ndarray", int]:
    """(piece of each candidate, number of pieces): components in the order of their root, a
    new piece each time the shingles so far pass a multiple of ``limit``."""
    import numpy as np

    n = len(root)
    if n == 0:
        return np.zeros(0, np.int64), 0
    weight = np.bincount(root, weights=sizes.astype(np.float64), minlength=n)
    roots = np.flatnonzero(root == np.arange(n))
    start = np.cumsum(weight[roots]) - weight[roots]
    slot = (start // max(limit, 1)).astype(np.int64)
    piece_of_root = np.zeros(n, np.int64)
    piece_of_root[roots] = np.cumsum(np.r_[0, slot[1:] != slot[:-1]])
    return piece_of_root[root], int(piece_of_root[roots[-1]]) + 1


class PieceTexts:
    """The candidates' rows (``__ord``, ``_origin``, ``__text``) by piece: in memory up to
    ``BUFFER`` bytes, then appended to each piece's Parquet files in ``folder`` (all in memory
    without one). ``take(k)`` gives piece k's rows in source order and forgets them."""

    BUFFER = 32 << 20

    def __init__(self, pieces: int, folder: Path | None):
        self.folder = folder
        self.frames: list[list["pl.DataFrame"]] = [[] for _ in range(pieces)]
        self.files: list[list[Path]] = [[] for _ in range(pieces)]
        self.held = 0

    def add(self, rows: "pl.DataFrame", piece: "np.ndarray") -> None:
        import polars as pl

        if len(self.frames) == 1:
            self.frames[0].append(rows)
        else:
            tagged = rows.with_columns(pl.Series("__piece", piece))
            for (k,), part in tagged.partition_by("__piece", as_dict=True, maintain_order=True).items():
                self.frames[k].append(part.drop("__piece"))
        self.held += rows.estimated_size()
        if self.folder is not None and self.held > self.BUFFER and len(self.frames) > 1:
            self._flush()

    def _flush(self) -> None:
        import polars as pl

        for k, frames in enumerate(self.frames):
            if frames:
                path = self.folder / f"piece-{id(self)}-{k}-{len(self.files[k])}.parquet"
                pl.concat(frames).write_parquet(path, compression="lz4")
                self.files[k].append(path)
                self.frames[k] = []
        self.held = 0

    def take(self, k: int) -> "pl.DataFrame":
        import polars as pl

        parts = []
        for path in self.files[k]:
            parts.append(pl.read_parquet(path))
            path.unlink(missing_ok=True)
        parts += self.frames[k]
        self.files[k], self.frames[k] = [], []
        if not parts:
            return pl.DataFrame(schema={"__ord": pl.UInt64, "_origin": pl.String, "__text": pl.String})
        return pl.concat(parts)

    def close(self) -> None:
        for files in self.files:
            for path in files:
                path.unlink(missing_ok=True)
