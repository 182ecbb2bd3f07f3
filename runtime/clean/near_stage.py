"""MinHash dedupe over many batches, staged like datatrove's (signatures -> buckets -> clusters ->
filter), so no stage holds every row's text or signature at once:

1. ``band_keys`` per batch: each row's band keys from its one-permutation sketch (``BandSketch``;
   classic MinHash signatures from rensa past 8 rows per band, where the sketch loses recall),
   16 bytes or so a band and row, written to the spill folder;
2. ``NearStage._candidates``: band by band, the rows whose key another row shares (a slice of
   one band's keys in memory at a time; one byte a row for the mask);
3. ``groups``: ``minhash_groups`` (estimates, exact Jaccard, connected components) on the
   candidates' texts only, in source order (4% of the 400k-ticket bench), one piece at a time
   (``near_pieces``: pieces of whole bucket components, ``PIECE_SHINGLES`` shingles or so), so
   memory holds one piece's texts, shingles and sketches whatever the number of candidates;
4. per batch again, a candidate grouped under an earlier row is rejected (``reject``).

Every stage is a function of rows, not of batches: the same rows give the same groups whatever
the batch size, locally or on Ray (``ray_engine``), which calls these same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from llmspec.compiler.cleaning import CleaningStep


def step_texts(df: "pl.DataFrame", step: "CleaningStep") -> "pl.Series":
    from llmspec.runtime.clean.dedupe import minhash_text

    return df.select(minhash_text(step, df.schema).alias("t")).get_column("t")


def band_keys(texts: "pl.Series", a: Mapping) -> tuple["np.ndarray", "np.ndarray"]:
    """(rows with shingles, their band keys: bands x rows u64) of one batch's texts."""
    batch = Shingled.of(texts, a)
    return batch.live, batch.keys(a["bands"])


class Shingled:
    """One batch's rows with shingles (``live``), their shingles (flat, ``lens`` a row) and
    sketch: step 1 needs the band keys only, and, when the source is that one batch, step 3
    takes the candidates' shingles and sketch from here (``of_rows``) instead of again from
    their texts (measured on gpteacher-toolformer: both took 30-40% of the staged run)."""

    def __init__(self, live, flat, lens, sketch):
        self.live, self.flat, self.lens, self.sketch = live, flat, lens, sketch

    @classmethod
    def of(cls, texts: "pl.Series", a: Mapping) -> "Shingled":
        import numpy as np

        from llmspec.runtime.clean.dedupe import candidate_sketch, shingle_hashes

        seed = a["seed"] % 2 ** 63
        flat, counts = shingle_hashes(texts, unit=a["unit"], ngram=a["ngram"], seed=seed)
        live = np.flatnonzero(counts > 0)
        lens = counts[live]
        sketch = candidate_sketch(flat, lens, a["bands"], a["rows_per_band"], seed) if len(live) else None
        return cls(live, flat, lens, sketch)

    def keys(self, bands: int) -> "np.ndarray":
        import numpy as np

        return self.sketch.keys if self.sketch is not None else np.zeros((bands, 0), np.uint64)

    def of_rows(self, rows: "np.ndarray") -> tuple["np.ndarray", "np.ndarray", object]:
        """(flat, lens, sketch) of the given live rows (positions in ``live``), for ``minhash_groups``."""
        import numpy as np

        from llmspec.runtime.clean.dedupe import row_segments

        offsets = np.zeros(len(self.lens) + 1, np.int64)
        np.cumsum(self.lens, out=offsets[1:])
        flat, lens = row_segments(self.flat, offsets, rows)
        return flat, lens, self.sketch.take(rows)


def candidates(bands: int, load) -> "np.ndarray":
    """Positions (in the order rows were added) of rows sharing a band key with another row.
    ``load(b)`` gives band b's keys of every row, one band at a time (in memory: ``NearStage``
    reads spilled keys in slices instead)."""
    import numpy as np

    hit = None
    for b in range(bands):
        dup = _duplicated(load(b))
        hit = dup if hit is None else (hit | dup)
    return np.flatnonzero(hit) if hit is not None else np.zeros(0, np.int64)


def _duplicated(keys: "np.ndarray") -> "np.ndarray":
    import polars as pl

    return pl.Series(keys).is_duplicated().to_numpy()


def groups(cand: "pl.DataFrame", a: Mapping, bits: int | None = None, shingled=None) -> "pl.DataFrame":
    """``cand``: __ord, _origin, __text of the candidate rows in source order. Returns __ord,
    _duplicate_of, _detail of the rows grouped under an earlier one. ``bits``: the document bits
    of the key layouts (``minhash_groups``); by default those of ``cand``'s rows, so a piece of
    the candidates, given the bits of all of them, is grouped as it would be among them all.
    ``shingled``: their shingles and sketch (``Shingled.of_rows``): ``cand`` needs no __text."""
    import numpy as np
    import polars as pl

    from llmspec.runtime.clean.dedupe import doc_bits, minhash_groups

    empty = pl.DataFrame(schema={"__ord": pl.UInt64, "_duplicate_of": pl.String, "_detail": pl.String})
    if cand.height < 2:
        return empty
    root, jac = minhash_groups(None if shingled else cand.get_column("__text"), threshold=a["threshold"],
                               ngram=a["ngram"],
                               unit=a["unit"], permutations=a["permutations"], seed=a["seed"],
                               layout=(a["bands"], a["rows_per_band"]), candidates=True,
                               bits=bits or doc_bits(cand.height), shingled=shingled)
    dups = np.flatnonzero(root != np.arange(len(root)))
    if not len(dups):
        return empty
    kept = cand.get_column("_origin").gather(root[dups])
    j = pl.Series(np.round(jac[dups], 2))
    chain = pl.Series(jac[dups] < a["threshold"])
    shingle = f"{a['unit']} {a['ngram']}-grams"
    detail = pl.select(pl.format("near duplicate of {} (Jaccard {} on {}{})", kept, j.cast(pl.String), pl.lit(shingle),
                                 pl.when(chain).then(pl.lit(", linked through similar rows")).otherwise(pl.lit(""))
                                 )).to_series()
    return pl.DataFrame({"__ord": cand.get_column("__ord").gather(dups).cast(pl.UInt64),
                         "_duplicate_of": kept.cast(pl.String), "_detail": detail.cast(pl.String)})


def reject(df: "pl.DataFrame", found: "pl.DataFrame", reason: str) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """(rows kept, rows ``found`` names, with _rule, _detail, _duplicate_of) of one batch."""
    import polars as pl

    if found.height == 0 or df.height == 0:
        return df, df.head(0)
    hit = df.select(pl.col("__ord").is_in(found.get_column("__ord").implode())).to_series()
    if not hit.any():
        return df, df.head(0)
    gone = df.filter(hit).join(found, on="__ord", how="left", maintain_order="left").with_columns(
        pl.lit(reason).alias("_rule"))
    return df.filter(~hit), gone


class NearStage:
    """Steps 1-3 for one MinHash rule, local: band keys and row numbers of each batch kept in
    memory or, with a spill folder, in .npy files (memory-mapped back a slice at a time), so
    that memory holds neither per row: step 2 reads each band in ``passes`` slices of the key
    space (a key's rows all fall in one slice), at most ``PASS_ROWS`` keys at once, and keeps
    one byte a row (the candidate mask); step 3 keeps about 50 bytes a candidate (its position,
    row number, size, component and piece) and one piece's rows."""

    PASS_ROWS = 1 << 21
    # Shingles a piece is cut at (a component is never split). Not tuned: with it the 10M-line
    # ticket clean's peak fell from 1,763 to 1,206-1,272 MiB (docs/benchmarks.md).
    PIECE_SHINGLES = 1 << 23

    def __init__(self, step: "CleaningStep", spill_dir=None):
        self.step = step
        self.a = step.args
        self.spill = spill_dir
        # per batch: (rows with shingles, their ords, band keys, shingle counts): arrays or .npy paths
        self.parts: list = []
        self.first: Shingled | None = None  # the first batch's, while it is the only one

    def add(self, df: "pl.DataFrame") -> None:
        import numpy as np

        self.first = None  # a second batch: step 3 shingles the candidates' texts again
        batch = Shingled.of(step_texts(df, self.step), self.a)
        live, keys, sizes = batch.live, batch.keys(self.a["bands"]), batch.lens.astype(np.uint32)
        if not self.parts:
            self.first = batch  # one batch's worth (step 1's temporaries are as large)
        ords = df.get_column("__ord").to_numpy()[live].astype(np.uint64)
        if self.spill is not None:
            base = self.spill / f"near-{id(self)}-{len(self.parts)}"
            for name, arr in (("keys", keys), ("ords", ords), ("sizes", sizes)):
                np.save(f"{base}-{name}.npy", arr)
            self.parts.append((len(ords), f"{base}-ords.npy", f"{base}-keys.npy", f"{base}-sizes.npy"))
        else:
            self.parts.append((len(ords), ords, keys, sizes))

    @staticmethod
    def _open(item) -> "np.ndarray":
        import numpy as np

        return item if isinstance(item, np.ndarray) else np.load(item, mmap_mode="r")

    def _candidates(self) -> "np.ndarray":
        """``candidates``, band by band and pass by pass over the parts."""
        import numpy as np

        total = sum(part[0] for part in self.parts)
        hit = np.zeros(total, bool)
        passes = max(1, -(-total // self.PASS_ROWS))
        for b in range(self.a["bands"]):
            for p in range(passes):
                keys, pos, at = [], [], 0
                for n, _, k, _ in self.parts:
                    band = np.asarray(self._open(k)[b])
                    if passes > 1:
                        sel = np.flatnonzero(band % np.uint64(passes) == p)
                        keys.append(band[sel])
                        pos.append(sel + at)
                    else:
                        keys.append(band)
                    at += n
                if passes == 1:
                    hit |= _duplicated(np.concatenate(keys))
                    continue
                pos = np.concatenate(pos)
                hit[pos[_duplicated(np.concatenate(keys))]] = True
        return np.flatnonzero(hit)

    def finish(self, batches: Iterable["pl.DataFrame"]) -> "pl.DataFrame":
        """Groups of the candidates; ``batches`` gives the rows added, again, in order."""
        import numpy as np
        import polars as pl

        from llmspec.runtime.clean.dedupe import doc_bits
        from llmspec.runtime.clean.near_pieces import PieceTexts, bucket_components, cut

        if not self.parts:
            return groups(pl.DataFrame(), self.a)
        pos = self._candidates()
        inside, at = [], 0  # per part: its candidates' positions in it
        for part in self.parts:
            inside.append(pos[(pos >= at) & (pos < at + part[0])] - at)
            at += part[0]
        count = len(pos)
        first, self.first = self.first, None
        try:
            if count < 2:
                return groups(pl.DataFrame(), self.a)
            if first is not None:  # one batch: its shingles and sketch are here, all in memory already
                want = np.asarray(self._open(self.parts[0][1]))[inside[0]]
                return self._one_batch(first, inside[0], want, doc_bits(count), batches)
            pick = lambda field, b=None: (np.asarray(self._open(part[field]) if b is None  # noqa: E731
                                                     else self._open(part[field])[b])[ins]
                                          for part, ins in zip(self.parts, inside) if len(ins))
            bits = doc_bits(count)
            root = bucket_components(count, bits, self.a["bands"], lambda b: pick(2, b), self.PASS_ROWS)
            piece, pieces = cut(root, np.concatenate(list(pick(3))), self.PIECE_SHINGLES)
            want = np.concatenate(list(pick(1)))  # ords, ascending: batches come in source order
        finally:
            self._drop_parts()
        del root
        texts = PieceTexts(pieces, self.spill)
        try:
            wanted = pl.Series(want).implode()
            for df in batches:
                sub = df.filter(pl.col("__ord").is_in(wanted))
                if sub.height:
                    ords = sub.get_column("__ord").cast(pl.UInt64).to_numpy()
                    texts.add(sub.select(pl.col("__ord").cast(pl.UInt64), "_origin",
                                         step_texts(sub, self.step).alias("__text")),
                              piece[np.searchsorted(want, ords)])
            del want, wanted, piece
            found = [groups(texts.take(k), self.a, bits) for k in range(pieces)]
        finally:
            texts.close()
        return pl.concat(found).sort("__ord") if len(found) > 1 else found[0]

    def _one_batch(self, first: Shingled, rows, want, bits: int, batches) -> "pl.DataFrame":
        """Step 3 for a source read in one batch: its candidates' shingles and sketch are kept."""
        import polars as pl

        wanted = pl.Series(want).implode()
        cand = pl.concat([df.filter(pl.col("__ord").is_in(wanted)).select(pl.col("__ord").cast(pl.UInt64), "_origin")
                          for df in batches])
        return groups(cand, self.a, bits, shingled=first.of_rows(rows))

    def _drop_parts(self) -> None:
        import numpy as np

        for part in self.parts:
            for f in part[1:]:
                if not isinstance(f, np.ndarray):
                    Path(f).unlink(missing_ok=True)
        self.parts = []
