"""Duplicate detection: exact, fingerprint (OpenRefine key collision) and MinHash near-duplicates.

In every method the kept row of a group is the first in source order (the frame's row order)
and each other row records ``_duplicate_of``: the kept row's ``_origin``.

MinHash, chosen by measurement (``bench/near_dup.py``):
- shingles: words (split at whitespace) or characters of the normalised text (NFKC, lower case,
  whitespace collapsed), hashed by Polars; NumPy combines consecutive token hashes into n-grams;
- rows that can pair at all: rensa (Rust) computes MinHash signatures and flags the rows that
  share an LSH band with another; the others are done;
- band keys and estimates for the flagged rows (``_sketch``): their signatures copied out of
  rensa, or, when many rows are flagged (templated text) and bands are at most 8 rows, one-
  permutation sketches of those rows (``BandSketch``), cheaper than copying that many;
- banding: one sort of every band's keys gives candidate pairs in three rounds, each pair in
  one round only; pairs whose estimate is FLOOR_SD standard deviations under the threshold are
  dropped, then, round by round, pairs already in one group skipped and the rest verified by
  their exact Jaccard similarity (for the rows still in a pair only), so the band layout is
  tuned for recall; skipping a pair whose rows are already joined never changes the groups;
- connected components of the verified pairs (union-find by hooking roots to the smaller index,
  vectorised) collapse chains: a row similar only to a duplicate still joins its group.
Shingling, sketching, estimates and verification run in threads (NumPy, Polars and the
compiled loops of ``minhash_kernels`` release the GIL). The sketch and the exact check each have
two ways that give the same bits: NumPy passes and Polars ``is_in`` lookups, and compiled loops
(Numba) 3-6x faster, which a process loads (~0.5 s, ~100 MiB) only once its MinHash work is worth
it (``_compiled``), so small projects never pay for them.
"""

from __future__ import annotations

import os as _os
import sys
import threading
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from llmspec.runtime.engine.columns import column, safe_name  # data names are never patterns
from llmspec.compiler.dedupe_layout import band_layout

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from llmspec.compiler.cleaning import CleaningStep

# Within a band bucket larger than this, each row is paired with the bucket's first row and its
# WINDOW neighbours instead of every other row: quadratic pair counts from a huge bucket would
# dominate the run, and connectivity survives through verified neighbour links.
WINDOW = 16
_CHUNK = 50_000
_PAIR_BUFFER = 1 << 22  # candidate pair codes gathered before making them unique (32 MB)
_MIN_PARALLEL = 4_000  # pairs per thread below which splitting costs more than it saves
_MIN_ROWS_PER_THREAD = 2_000  # texts, likewise, when shingling
_MIN_WORK_PER_THREAD = 1 << 16  # compiled loop steps (minhash_kernels), likewise
_LOOKUPS_PER_CALL = 1 << 22  # bounds one is_in call's temporaries (smaller parts measured no faster)
# is_in's hash set stays in cache at this many keys: 2x faster lookups than one set of 290k keys
# (gpteacher-toolformer at 0.7), more than paying for the calls
_KEYS_PER_CALL = 1 << 16
_ESTIMATE_SLICE = 8_192  # see BandSketch.estimate
_SHINGLE_CHUNK = 1 << 20  # BandSketch temporaries a thread: 4x this, 100 MB less than 1 << 22 and faster (cache)
_EMPTY = 0xFFFFFFFF  # a bin no shingle fell in
# What the compiled loops save over NumPy and Polars (CPU, gpteacher-toolformer), and what loading
# them costs a process (importing Numba and loading the cached machine code: ~0.5 s CPU, ~100 MiB)
_SAVED_NS_PER_SHINGLE_BAND = 4
_SAVED_NS_PER_LOOKUP = 20
_LOAD_NS = 500_000_000
_MIX = 0x9E3779B97F4A7C15
_SPLIT = 0xBF58476D1CE4E5B9  # _mix64's multiplier (minhash_kernels mixes band keys likewise)
FLOOR_SD = 2.5  # see estimate_floor


# ----------------------------------------------------------------------------- keys


def _exact_key(col: str, cat: str, done: Sequence[str] = ()) -> "pl.Expr":
    """NFKC, whitespace collapsed, lower case: the parts an earlier normalize already did skipped."""
    from llmspec.runtime.clean.kernels import normalize_text, on_text

    if cat in ("text", "turns"):
        unicode = "none" if "NFKC" in done else "NFKC"
        whitespace = "none" if "collapse" in done else "collapse"
        case = "none" if "lower" in done else "lower"
        return on_text(col, cat, lambda e: normalize_text(e, unicode=unicode, whitespace=whitespace, case=case,
                                                          fast=cat == "text")).alias(f"__key__{col}")
    import polars as pl

    return column(col).alias(f"__key__{col}")


def fingerprint(e: "pl.Expr") -> "pl.Expr":
    """OpenRefine's fingerprint: trim, lowercase, drop punctuation and control characters,
    fold accents to ASCII, then the sorted unique whitespace tokens joined by one space."""
    import polars as pl

    e = e.str.strip_chars().str.to_lowercase()
    e = e.str.replace_all(r"[\p{P}\p{S}\p{Cc}]", "")
    e = e.map_batches(safe_name(_ascii_fold), return_dtype=pl.String, is_elementwise=True)
    tokens = e.str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
    return tokens.list.unique().list.sort().list.join(" ")


def _ascii_fold(s: "pl.Series") -> "pl.Series":
    """Accents off (NFKD, then combining marks dropped), on the non-ASCII values only."""
    todo = (s.str.len_bytes() != s.str.len_chars()).fill_null(False)
    if not todo.any():
        return s
    idx = todo.arg_true()
    return s.clone().scatter(idx, s.gather(idx).str.normalize("NFKD").str.replace_all(r"\p{M}", ""))


def _fingerprint_key(col: str, cat: str) -> "pl.Expr":
    import polars as pl

    if cat == "turns":
        text = column(col).list.eval(pl.element().struct.field("content")).list.join(" ")
    else:
        text = column(col)
    from llmspec.runtime.clean.kernels import WHITESPACE_RUN

    return fingerprint(text.str.replace_all(WHITESPACE_RUN, " ")).alias(f"__key__{col}")


def key_exprs(step: "CleaningStep", schema: Mapping[str, Any]) -> list["pl.Expr"]:
    from llmspec.compiler.cleaning import column_category
    from llmspec.runtime.clean.kernels import text_columns

    if step.args["method"] == "exact":
        cols = step.columns if not step.all_text else [c for c, _ in text_columns(step, schema)]
        done = step.args.get("normalized", {})
        return [_exact_key(c, column_category(schema[c]), done.get(c, ())) for c in cols]
    return [_fingerprint_key(c, cat) for c, cat in text_columns(step, schema)]


def minhash_text(step: "CleaningStep", schema: Mapping[str, Any]) -> "pl.Expr":
    """The text a row is shingled from: its text columns, normalised, joined by a space."""
    import polars as pl

    from llmspec.runtime.clean.kernels import normalize_text, text_columns

    parts = []
    for c, cat in text_columns(step, schema):
        e = column(c) if cat == "text" else column(c).list.eval(pl.element().struct.field("content")).list.join(" ")
        parts.append(e)
    if not parts:
        return pl.lit("", dtype=pl.String)
    joined = pl.concat_str(parts, separator=" ", ignore_nulls=True)
    done = step.args.get("normalized", {})
    every = set.intersection(*(set(done.get(c, ())) for c, _ in text_columns(step, schema)))
    return normalize_text(joined, unicode="none" if "NFKC" in every else "NFKC", whitespace="collapse",
                          case="none" if "lower" in every else "lower", fast=True).fill_null("")


# ----------------------------------------------------------------------------- minhash


def _mix64(x: "np.ndarray") -> "np.ndarray":
    """Spread the bits of multiply-add n-gram hashes (code points as tokens are tiny integers):
    one xor-shift-multiply round, in place, on a fresh array."""
    import numpy as np

    x ^= x >> np.uint64(31)
    x *= np.uint64(_SPLIT)
    x ^= x >> np.uint64(29)
    return x


def _ngrams(tokens: "np.ndarray", lengths: "np.ndarray", n: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Hashes of the n-grams of each document's token hashes; a document shorter than n gives one
    shingle of all its tokens. Returns (flat hashes, shingles per document).

    n-grams are computed over the whole flat array at once (n shifted multiply-adds), then the
    positions whose window crosses a document end are dropped: per-document work is O(n).
    """
    import numpy as np

    lengths = lengths.astype(np.int64)
    tokens = tokens.astype(np.uint64, copy=False)
    total = tokens.size
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ends = starts + lengths
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    out = np.empty(int(counts.sum()), np.uint64)
    mult = np.uint64(_MIX)
    with np.errstate(over="ignore"):
        long_flat = np.zeros(0, np.uint64)
        if total >= n:
            width = total - n + 1
            comb = tokens[:width].copy()
            for k in range(1, n):
                comb *= mult
                comb += tokens[k:k + width]
            keep = np.ones(width, dtype=bool)
            for k in range(1, n):  # windows starting in a document's last n-1 tokens cross its end
                at = ends - k
                ok = (at >= starts) & (at < width)
                keep[at[ok]] = False
            long_flat = comb[keep]
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        if not short.size and len(long_flat) == out.size:  # every document has n tokens or none
            return _mix64(long_flat), counts
        out_start = np.zeros(len(lengths), np.int64)
        np.cumsum(counts[:-1], out=out_start[1:])
        is_short = np.zeros(out.size, dtype=bool)
        is_short[out_start[short]] = True
        out[~is_short] = long_flat
        if short.size:
            h = np.zeros(short.size, np.uint64)
            for k in range(n - 1):
                take = lengths[short] > k
                h[take] = h[take] * mult + tokens[starts[short][take] + k]
            out[is_short] = h
        out = _mix64(out)
    return out, counts


def shingle_hashes(texts: "pl.Series", *, unit: str, ngram: int, seed: int) -> tuple["np.ndarray", "np.ndarray"]:
    """(flat u64 shingle hashes in row order, shingles per row) of normalised texts: in chunks
    of rows, on every worker thread (Polars' string split runs on one core per call)."""
    import numpy as np

    pool = _pool()
    n = texts.len()
    threads = max(1, min(_WORKERS, n // _MIN_ROWS_PER_THREAD))
    size = max(min(_CHUNK, -(-n // threads)), 1)
    starts = range(0, max(n, 1), size)
    if len(starts) == 1:
        return _shingle_chunk(texts, unit, ngram, seed)
    parts = list(pool.map(lambda lo: _shingle_chunk(texts.slice(lo, size), unit, ngram, seed), starts))
    return np.concatenate([f for f, _ in parts]), np.concatenate([c for _, c in parts])


def _shingle_chunk(chunk: "pl.Series", unit: str, ngram: int, seed: int) -> tuple["np.ndarray", "np.ndarray"]:
    import numpy as np
    import polars as pl

    if unit == "word":
        # texts are whitespace-collapsed, so words are exactly the pieces between single spaces;
        # split, then hash inside the lists (no exploded strings): measured 10x faster than
        # extract_all(r"\w+") or hashing UTF-8 bytes in NumPy
        filled = chunk.fill_null("")
        hashed = filled.str.split(" ").list.eval(pl.element().hash(seed))
        lengths = hashed.list.len().to_numpy().astype(np.int64)
        tok_hash = hashed.explode().to_numpy()
        empty = (filled.str.len_bytes() == 0).to_numpy()
        if empty.any():  # "" splits into one empty word: drop it
            first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            keep = np.ones(tok_hash.size, dtype=bool)
            keep[first[empty]] = False
            tok_hash, lengths = tok_hash[keep], np.where(empty, 0, lengths)
    else:
        filled = chunk.fill_null("")
        lengths = filled.str.len_chars().to_numpy()
        # code points straight from one UTF-32 buffer: no per-character Python objects
        tok_hash = np.frombuffer("".join(filled.to_list()).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        tok_hash = tok_hash + np.uint64(seed)
    return _ngrams(tok_hash, lengths, ngram)


def row_segments(flat: "np.ndarray", offsets: "np.ndarray", rows: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """The flat hashes of the given rows, and their per-row counts."""
    import numpy as np

    lens = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    picked = int(lens.sum())
    if len(rows) and picked * 16 >= len(flat) and (len(rows) == 1 or bool((rows[1:] > rows[:-1]).all())):
        # rows in order, each once, many: a byte a shingle picks them (the general path below
        # builds two 8-byte indexes a picked shingle: 0.5 GB of the 10M-line clean's peak); a
        # few rows take the general path, whose work is theirs, not every row's
        pick = np.zeros(len(offsets) - 1, bool)
        pick[rows] = True
        return flat[np.repeat(pick, np.diff(offsets))], lens
    first = np.repeat(offsets[rows] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    first += np.arange(picked)
    return flat[first], lens


def _signatures(flat: "np.ndarray", lens: "np.ndarray", permutations: int, seed: int):
    import numpy as np
    import rensa

    offsets = np.zeros(len(lens) + 1, np.uint64)
    np.cumsum(lens, out=offsets[1:])
    return rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, permutations, seed)


def _to_numpy(matrix, permutations: int) -> "np.ndarray":
    """rensa hands signatures out only as Python lists (~75 ns a value): run on few rows."""
    import itertools

    import numpy as np

    rows = matrix.to_rows()
    return np.fromiter(itertools.chain.from_iterable(rows), np.uint32,
                       count=len(rows) * permutations).reshape(len(rows), permutations)


def _pool():
    """Threads for the NumPy and Polars kernels below: both release the GIL, so sketches and
    chunks of pairs run on every core (``LLMSPEC_THREADS`` sets how many; default: the cores,
    at most 8)."""
    global _POOL, _WORKERS
    if _POOL is None:
        import os
        from concurrent.futures import ThreadPoolExecutor

        raw = os.environ.get("LLMSPEC_THREADS", "").strip()
        if raw and not (raw.isdigit() and int(raw) >= 1):
            from llmspec.spec.errors import LlmspecError

            raise LlmspecError(f"LLMSPEC_THREADS must be a whole number of threads, 1 or more, not {raw!r}",
                               code="bad-environment", hint="unset it to use every core")
        _WORKERS = int(raw) if raw else min(os.cpu_count() or 1, 8)
        _POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="llmspec-dedupe")
    return _POOL


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child has the pool object but none of its threads


_POOL = None
_WORKERS = 1
_os.register_at_fork(after_in_child=_forget_pool)


def _chunked(fn, pairs: "np.ndarray") -> "np.ndarray":
    """fn over row chunks of pairs, one chunk per worker thread, results concatenated."""
    import numpy as np

    pool = _pool()
    parts = min(_WORKERS, len(pairs) // _MIN_PARALLEL)
    if parts <= 1:
        return fn(pairs)
    cut = np.linspace(0, len(pairs), parts + 1).astype(np.int64)
    return np.concatenate(list(pool.map(fn, [pairs[a:b] for a, b in zip(cut[:-1], cut[1:])])))


def _compiled(saved_ns: int) -> bool:
    """Whether the compiled loops (``minhash_kernels``) do a piece of work that they would do
    ``saved_ns`` faster than NumPy and Polars: always once they are loaded; before that, once the
    savings of this process's MinHash work add up to what loading them costs, when this loads
    them. So a small project's clean never pays the load (a 344-row source: 1.0 s, against 1.7 s
    and 120 MiB more with the load), and a large one pays it after a batch or two."""
    global _SAVINGS
    if _kernels_loaded():
        return True
    _SAVINGS += saved_ns  # threads may race here: a lost update only delays the load
    if _SAVINGS < _LOAD_NS:
        return False
    from llmspec.runtime.clean.minhash_kernels import warm

    warm()
    return True


_SAVINGS = 0


def _kernels_loaded() -> bool:
    kernels = sys.modules.get("llmspec.runtime.clean.minhash_kernels")
    return kernels is not None and kernels.loaded


def _by_rows(n: int, fn, work: int) -> None:
    """fn(lo, hi) over ranges of n rows, one range per worker thread when ``work`` (loop steps,
    about a nanosecond each) is worth splitting."""
    import numpy as np

    pool = _pool()  # sets _WORKERS
    parts = max(1, min(_WORKERS, n, work // _MIN_WORK_PER_THREAD))
    if parts == 1:
        fn(0, n)
        return
    cut = np.linspace(0, n, parts + 1).astype(np.int64)
    list(pool.map(lambda lo_hi: fn(*lo_hi), zip(cut[:-1].tolist(), cut[1:].tolist())))


class BandSketch:
    """Per band, every shingle is hashed once more (multiply-add-shift, a 2-universal family) and
    falls in one of ``rows`` bins by the value of that hash; a bin keeps the smallest hash it got
    (one-permutation hashing, Li, Owen & Zhang 2012, applied band by band). Two documents agree on
    a bin with probability of about their Jaccard similarity, as with a MinHash permutation, but
    each shingle costs one hash per band instead of one per permutation.

    - ``keys`` (bands x docs, u64): each band's bins combined; equal keys are LSH collisions;
    - ``low`` (docs x bins, u8): the low byte of every bin, for estimating Jaccard (b-bit MinHash);
    - ``empty`` (docs x bins/8, packed bits): bins no shingle fell in (short documents only).
    """

    def __init__(self, flat: "np.ndarray", lens: "np.ndarray", bands: int, rows: int, seed: int):
        import numpy as np

        n = len(lens)
        self.bins = bands * rows
        rng = np.random.default_rng(seed)
        mult = rng.integers(0, 2 ** 63, size=bands, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        add = rng.integers(0, 2 ** 63, size=bands, dtype=np.uint64)
        self.keys = np.empty((bands, n), np.uint64)
        self.low = np.empty((n, self.bins), np.uint8)
        empty = np.empty((n, self.bins), bool)
        if _compiled(len(flat) * bands * _SAVED_NS_PER_SHINGLE_BAND):
            from llmspec.runtime.clean.minhash_kernels import one_permutation

            starts = np.zeros(n, np.int64)
            np.cumsum(lens[:-1], out=starts[1:])
            # the argument types warm() compiles for; and the kernel checks no bounds
            flat, lens = np.ascontiguousarray(flat, np.uint64), np.ascontiguousarray(lens, np.int64)
            if int(lens.sum()) != len(flat):
                raise ValueError(f"BandSketch: {len(flat)} shingles for rows holding {int(lens.sum())}")
            _by_rows(n, lambda lo, hi: one_permutation(flat, starts, lens, mult, add, rows, lo, hi, self.keys,
                                                       self.low, empty), work=len(flat) * bands)
        else:
            self._numpy(flat, lens, rows, mult, add, empty)
        self.has_empty = empty.any(axis=1)
        self.empty = np.packbits(empty, axis=1)

    def _numpy(self, flat, lens, rows: int, mult, add, empty) -> None:
        """The same sketch in NumPy passes, bit for bit: what a process runs until its MinHash
        work is worth loading the compiled loops (``_compiled``)."""
        import numpy as np

        n, bands = len(lens), len(mult)
        index = np.int32 if n * rows < 2 ** 31 else np.int64
        slot = np.repeat(np.arange(n, dtype=index) * index(rows), lens)  # each shingle's first bin
        chunk = min(len(flat), _SHINGLE_CHUNK)  # bounded temporaries on big corpora
        scratch = threading.local()

        def band(b: int) -> None:
            # Every array is a thread's own, reused band after band: allocating fresh temporaries
            # of this size in two threads was 3-5x slower than one thread (the allocator maps and
            # unmaps them each time).
            if not hasattr(scratch, "g"):
                scratch.g, scratch.value = np.empty(chunk, np.uint64), np.empty(chunk, np.uint32)
                scratch.at, scratch.buf = np.empty(chunk, index), np.empty(n * rows, np.uint32)
            buf = scratch.buf
            buf.fill(_EMPTY)
            with np.errstate(over="ignore"):
                for lo in range(0, len(flat), chunk):
                    size = min(chunk, len(flat) - lo)
                    g, value, at = scratch.g[:size], scratch.value[:size], scratch.at[:size]
                    np.multiply(flat[lo:lo + size], mult[b], out=g)
                    np.add(g, add[b], out=g)
                    np.right_shift(g, np.uint64(32), out=g)
                    np.copyto(value, g, casting="unsafe")
                    np.multiply(g, np.uint64(rows), out=g)  # bin = value * rows / 2^32: the value's range
                    np.right_shift(g, np.uint64(32), out=g)
                    np.copyto(at, g, casting="unsafe")
                    np.add(at, slot[lo:lo + size], out=at)
                    np.minimum.at(buf, at, value)
            mins = buf.reshape(n, rows)
            cols = slice(b * rows, (b + 1) * rows)
            self.low[:, cols] = mins  # low byte: the high bits say which bin, not which shingle
            empty[:, cols] = mins == _EMPTY
            self.keys[b] = _band_key(mins, b)

        list(_pool().map(band, range(bands)))

    @classmethod
    def from_signatures(cls, sig: "np.ndarray", bands: int, rows: int) -> "BandSketch":
        """The same, from classic MinHash signatures (docs x permutations, u32): band b's key
        combines columns b*rows .. (b+1)*rows, estimates use the low byte of every column."""
        import numpy as np

        sketch = cls.__new__(cls)
        n = sig.shape[0]
        sketch.bins = bands * rows
        sig = np.ascontiguousarray(sig, np.uint32)
        if sig.ndim != 2 or sig.shape[1] < sketch.bins:  # the kernel checks no bounds
            raise ValueError(f"BandSketch: signatures of shape {sig.shape} for {bands} bands of {rows} rows")
        if _compiled(n * sketch.bins * _SAVED_NS_PER_SHINGLE_BAND):
            from llmspec.runtime.clean.minhash_kernels import signature_keys

            sketch.keys = np.empty((bands, n), np.uint64)
            _by_rows(n, lambda lo, hi: signature_keys(sig, rows, lo, hi, sketch.keys), work=n * bands * rows)
        else:
            sketch.keys = np.stack([_band_key(sig[:, b * rows:(b + 1) * rows], b) for b in range(bands)])
        sketch.low = np.ascontiguousarray(sig[:, :sketch.bins]).astype(np.uint8)
        sketch.has_empty = np.zeros(n, bool)  # a signature has no empty bins
        sketch.empty = np.zeros((n, (sketch.bins + 7) // 8), np.uint8)
        return sketch

    def take(self, rows: "np.ndarray") -> "BandSketch":
        """The sketch of the given rows (a row's sketch depends on that row alone)."""
        sketch = BandSketch.__new__(BandSketch)
        sketch.bins, sketch.keys, sketch.low = self.bins, self.keys[:, rows], self.low[rows]
        sketch.has_empty, sketch.empty = self.has_empty[rows], self.empty[rows]
        return sketch

    def estimate(self, pairs: "np.ndarray") -> "np.ndarray":
        """Estimated Jaccard of each pair: the share of bins, not empty in both, whose low bytes
        agree, corrected for the 1/256 chance that two different bins share a low byte.

        In slices of _ESTIMATE_SLICE pairs: their temporaries stay in cache and come from the
        allocator's free lists (2x faster on 84k pairs than one pass, with two threads)."""
        import numpy as np

        out = np.empty(len(pairs))
        for lo in range(0, len(pairs), _ESTIMATE_SLICE):
            out[lo:lo + _ESTIMATE_SLICE] = self._estimate(pairs[lo:lo + _ESTIMATE_SLICE])
        return out

    def _estimate(self, pairs: "np.ndarray") -> "np.ndarray":
        import numpy as np

        a, b = pairs[:, 0], pairs[:, 1]
        agree = _equal_bytes(self.low[a], self.low[b])
        used = np.full(len(pairs), self.bins, np.int64)
        some = np.flatnonzero(self.has_empty[a] | self.has_empty[b])
        if some.size:
            both = np.bitwise_count(self.empty[a[some]] & self.empty[b[some]]).sum(axis=1, dtype=np.int64)
            agree[some] -= both
            used[some] -= both
        share = agree / np.maximum(used, 1)
        return np.clip((share - 1 / 256) * (256 / 255), 0.0, 1.0)


def _band_key(values: "np.ndarray", band: int) -> "np.ndarray":
    """One u64 per row from its band's values (docs x rows); the band number is mixed in, so
    equal values in two bands are not a collision."""
    import numpy as np

    key = np.full(values.shape[0], band, np.uint64)
    with np.errstate(over="ignore"):
        for r in range(values.shape[1]):
            key *= np.uint64(_MIX)
            key += values[:, r]
        return _mix64(key)


def _equal_bytes(x: "np.ndarray", y: "np.ndarray") -> "np.ndarray":
    """Per row, how many bytes of x and y are equal: eight at a time in u64 words (SWAR)."""
    import numpy as np

    pad = (-x.shape[1]) % 8
    if pad:
        x = np.pad(x, ((0, 0), (0, pad)))
        y = np.pad(y, ((0, 0), (0, pad)), constant_values=1)  # padding never agrees
    d = np.ascontiguousarray(x).view(np.uint64) ^ np.ascontiguousarray(y).view(np.uint64)
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    nonzero = ((d & low7) + low7) | d  # the high bit of each byte is set iff the byte is not 0
    return (d.shape[1] * 8 - np.bitwise_count(nonzero & ~low7).sum(axis=1, dtype=np.int64)).astype(np.int64)


def band_pairs(keys: "np.ndarray", bits: int | None = None) -> list["np.ndarray"]:
    """Pairs (i, j), i < j, of documents whose keys collide in some band, each once, in three
    rounds: each document with its bucket's first document, with its next neighbour, then with
    the rest of its window of WINDOW neighbours. Verifying round by round lets a round skip the
    pairs earlier ones already joined (on templated text most of them). ``bits``: how many low key bits the
    document number replaces (default: as many as it needs); keys equal above them share a
    bucket, so a piece of a larger set of documents, given that set's bits, gets the buckets
    it would have had in the whole (``near_pieces``)."""
    import numpy as np
    import polars as pl

    bands, n = keys.shape
    m = keys.size
    # Each key's document number replaces its low bits, so one plain sort of u64 (Polars': 4x
    # NumPy's argsort, 6x a hash-based duplicate test on 6M keys) orders buckets and, inside a
    # bucket, documents. Keys keep 64 - log2(documents) random bits (42 at 4M documents); the band
    # number is mixed into every key, so a false collision (across bands or not) only adds a
    # candidate pair, which the estimate and exact check then drop.
    bits = bits or doc_bits(n)
    low = np.uint64((1 << bits) - 1)
    tagged = (keys & ~low) | np.arange(n, dtype=np.uint64)
    tagged = pl.Series(tagged.ravel()).sort().to_numpy()
    ks = tagged >> np.uint64(bits)
    doc = (tagged & low).astype(np.int64)
    new_bucket = np.ones(m, bool)
    np.not_equal(ks[1:], ks[:-1], out=new_bucket[1:])
    at = np.arange(m)
    head = doc[np.maximum.accumulate(np.where(new_bucket, at, 0))]
    later = np.flatnonzero(~new_bucket)
    rounds = [_PairCodes(), _PairCodes(), _PairCodes()]
    rounds[0].add(head[later], doc[later])
    rounds[1].add(doc[later - 1], doc[later])
    # keys followed by at least two more of their bucket: the only ones with a window beyond
    # their next neighbour (few, unless buckets are large)
    ends = np.flatnonzero(np.r_[new_bucket[1:], True])  # last position of each bucket
    left = np.repeat(ends, np.diff(np.r_[0, ends + 1])) - at
    rest = np.flatnonzero(left >= 2)
    for w in range(2, WINDOW + 1):
        rest = rest[left[rest] >= w]
        if not rest.size:
            break
        rounds[2].add(doc[rest], doc[rest + w])
    done = []
    for r in rounds:
        # a pair of several rounds (other bands, offsets) is the first's alone: verified once,
        # not again after failing (9.5k of the window round's 84k pairs on gpteacher-toolformer)
        code = r.result()
        for earlier in done:
            code = _minus(code, earlier)
        done.append(code)
    return [np.stack([code >> 32, code & 0xFFFFFFFF], axis=1) for code in done]


def _minus(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """The values of ``a`` not in ``b`` (both sorted, unique)."""
    import numpy as np

    if not len(a) or not len(b):
        return a
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return a[b[at] != a]


class _PairCodes:
    """Pairs (a, b), a != b, as (min << 32) | max, gathered offset by offset and made unique at
    the end; the codes gathered since the last time are made unique whenever there are more than
    _PAIR_BUFFER, so a pair found in several bands and offsets is held about once, not once each
    (334k rows six times over: 1.36 GB of pairs, most repeated), while small inputs pay one sort
    instead of one hash pass per offset."""

    def __init__(self):
        self.done: list["np.ndarray"] = []
        self.new: list["np.ndarray"] = []
        self.held = 0

    def add(self, a: "np.ndarray", b: "np.ndarray") -> None:
        import numpy as np
        import polars as pl

        keep = a != b
        a, b = a[keep], b[keep]
        self.new.append((np.minimum(a, b) << 32) | np.maximum(a, b))
        self.held += len(a)
        if self.held > _PAIR_BUFFER:
            self.done.append(pl.Series(np.concatenate(self.new)).unique().to_numpy())
            self.new, self.held = [], 0

    def result(self) -> "np.ndarray":
        """The codes, unique, ascending."""
        import numpy as np
        import polars as pl

        parts = self.done + self.new
        if not parts:
            return np.zeros(0, np.int64)
        code = pl.Series(np.concatenate(parts) if len(parts) > 1 else parts[0]).sort().to_numpy()
        return code[np.r_[True, code[1:] != code[:-1]]] if len(code) else code



def doc_bits(n: int) -> int:
    """Bits a document number among n takes (band_pairs' and ShingleSets' key layouts)."""
    return max(int(n - 1).bit_length(), 1)


class ShingleSets:
    """The distinct shingles of each document, ready for exact Jaccard of many pairs.

    Each (document, shingle) is one u64 key: the document number in the high bits, the shingle
    hash's high bits below it (64 - log2(documents) of them: 47 at 100k documents). Sorted, the
    keys fall in document order and a document's repeated shingles are neighbours, so each
    document's distinct shingles are one sorted run and a pair's intersection is a merge of two
    runs (``minhash_kernels.intersections``, once loaded: 4x less time than ``_polars`` on
    gpteacher-toolformer's 41k pairs at 0.7), or the smaller set's keys looked up among the
    other's (``_polars``). Two shingles of one pair sharing their kept hash bits would count as
    one: about |set| / 2^47 a comparison, far below what changes a decision.
    """

    def __init__(self, flat: "np.ndarray", lens: "np.ndarray", bits: int | None = None):
        import numpy as np
        import polars as pl

        n = len(lens)
        bits = bits or doc_bits(n)  # given: the same shingle bits kept whichever subset is indexed
        self.shift = np.uint64(64 - bits)
        doc = np.repeat(np.arange(n, dtype=np.uint64), lens)
        doc <<= self.shift  # in place: each temporary here is 8 bytes a shingle
        doc |= flat >> np.uint64(bits)
        keys = pl.Series(doc).sort().to_numpy()
        del doc
        keep = np.ones(len(keys), bool)
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        self.keys = keys[keep]
        self.sizes = np.bincount((self.keys >> self.shift).astype(np.int64), minlength=n).astype(np.int64)
        self.offsets = np.zeros(n + 1, np.int64)
        np.cumsum(self.sizes, out=self.offsets[1:])
        self.local = None  # row number -> position, when only some rows are indexed

    @classmethod
    def of_rows(cls, flat: "np.ndarray", lens: "np.ndarray", rows: "np.ndarray",
                bits: int | None = None) -> "ShingleSets":
        """The sets of the given rows only; ``jaccard`` still takes pairs of row numbers."""
        import numpy as np

        offsets = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        sets = cls(*row_segments(flat, offsets, rows), bits=bits)
        sets.local = np.full(len(lens), -1, np.int64)
        sets.local[rows] = np.arange(len(rows))
        return sets

    def jaccard(self, pairs: "np.ndarray") -> "np.ndarray":
        """Exact Jaccard of each pair of row numbers, on every worker thread."""
        import numpy as np

        if self.local is not None:
            pairs = self.local[pairs]
        if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(self.sizes)):  # the kernel checks no bounds
            raise ValueError("ShingleSets.jaccard: a pair names a row whose shingles are not indexed")
        small = np.minimum(self.sizes[pairs[:, 0]], self.sizes[pairs[:, 1]]).sum() if len(pairs) else 0
        if not _compiled(int(small) * _SAVED_NS_PER_LOOKUP):
            return self._polars(pairs)
        from llmspec.runtime.clean.minhash_kernels import intersections

        a, b = np.ascontiguousarray(pairs[:, 0], np.int64), np.ascontiguousarray(pairs[:, 1], np.int64)
        inter = np.empty(len(pairs), np.int64)
        mask = np.uint64((1 << int(self.shift)) - 1)
        steps = int(self.sizes[a].sum() + self.sizes[b].sum()) if len(pairs) else 0
        _by_rows(len(pairs), lambda lo, hi: intersections(self.keys, self.offsets, a[lo:hi], b[lo:hi], mask,
                                                          inter[lo:hi]), work=steps)
        return inter / (self.sizes[a] + self.sizes[b] - inter)

    def _polars(self, pairs: "np.ndarray") -> "np.ndarray":
        """The same by Polars ``is_in``: the smaller set's keys of each pair looked up among the
        other document's, the pairs ordered by that document and cut where it changes, so each
        call's hash set holds only the keys asked about (cache-sized) and threads share none."""
        import numpy as np

        pool = _pool()
        a, b = pairs[:, 0], pairs[:, 1]
        a_smaller = self.sizes[a] <= self.sizes[b]
        small, other = np.where(a_smaller, a, b), np.where(a_smaller, b, a)
        order = np.argsort(other, kind="stable")
        small, other = small[order], other[order]
        first = np.r_[True, other[1:] != other[:-1]]
        spans = _spans_by_document(other, np.cumsum(self.sizes[small]), np.cumsum(np.where(first, self.sizes[other], 0)))
        inter = np.empty(len(pairs), np.int64)

        def part(span: tuple[int, int]) -> None:
            lo, hi = span
            inter[lo:hi] = self._intersections(small[lo:hi], other[lo:hi])

        if len(spans) > 1:
            list(pool.map(part, spans))
        elif spans:
            part(spans[0])
        out = np.empty(len(pairs))
        out[order] = inter / (self.sizes[small] + self.sizes[other] - inter)
        return out

    def _intersections(self, small: "np.ndarray", other: "np.ndarray") -> "np.ndarray":
        """|small ∩ other| for each pair; ``other`` is sorted."""
        import numpy as np
        import polars as pl

        small_keys, n_small = row_segments(self.keys, self.offsets, small)
        ends = np.cumsum(n_small)
        shingle = np.uint64((1 << int(self.shift)) - 1)
        query = np.repeat(other.astype(np.uint64) << self.shift, n_small) | (small_keys & shingle)
        lo, hi = self.offsets[other[0]], self.offsets[other[-1] + 1]
        docs = other[np.r_[True, other[1:] != other[:-1]]]
        if self.sizes[docs].sum() * 2 > hi - lo:  # most of their range: a slice, no copy
            keys = self.keys[lo:hi]
        else:
            keys = row_segments(self.keys, self.offsets, docs)[0]
        found = pl.Series(query).is_in(pl.Series(keys).implode()).to_numpy()
        seen = np.zeros(len(found) + 1, np.int64)
        np.cumsum(found, out=seen[1:])
        return seen[ends] - seen[ends - n_small]


def _spans_by_document(other: "np.ndarray", work: "np.ndarray", keys: "np.ndarray") -> list[tuple[int, int]]:
    """Cuts of pairs sorted by ``other`` into spans for the worker threads: near equal lookups
    (``work``, cumulative) and keys looked up in (``keys``, nondecreasing) per span, at most
    _LOOKUPS_PER_CALL and about _KEYS_PER_CALL each, a document never split."""
    import numpy as np

    if not len(other):
        return []
    cost = work / _LOOKUPS_PER_CALL + keys / _KEYS_PER_CALL
    parts = max(min(_WORKERS, len(other) // _MIN_PARALLEL), int(np.ceil(cost[-1])), 1)
    cuts = [0]
    for k in range(1, parts):
        at = min(int(np.searchsorted(cost, cost[-1] * k / parts)), len(other) - 1)
        cuts.append(max(int(np.searchsorted(other, other[at])), cuts[-1]))
    cuts.append(len(other))
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def exact_jaccard(flat: "np.ndarray", lens: "np.ndarray", pairs: "np.ndarray") -> "np.ndarray":
    """Exact Jaccard of the shingle sets of each pair (rows index ``lens``)."""
    import numpy as np

    if len(pairs) == 0:
        return np.zeros(0)
    return ShingleSets(flat, lens).jaccard(pairs)


def estimate_floor(threshold: float, bins: int) -> float:
    """An estimate below this rules a pair out without exact verification: 2.5 binomial standard
    deviations under the threshold (a pair at the threshold passes with probability 0.994; one-
    permutation estimates vary less than the binomial, and a pair missed here is usually still
    joined through another). Measured on gpteacher-toolformer: 3 and 5 deviations found the same
    groups and verified 25-45% more pairs."""
    return threshold - FLOOR_SD * (threshold * (1 - threshold) / bins) ** 0.5


def components(n: int, edges: "np.ndarray") -> "np.ndarray":
    """Root (smallest member) of each node's connected component: vectorised union-find.

    Each round hooks the larger root of every edge under the smaller one, then compresses paths
    fully; the smallest index of a component is never hooked, so it ends as the root.
    """
    import numpy as np

    parent = np.arange(n)
    if len(edges) == 0:
        return parent
    u, v = edges[:, 0], edges[:, 1]
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            return parent
        lo, hi = np.minimum(pu[differ], pv[differ]), np.maximum(pu[differ], pv[differ])
        np.minimum.at(parent, hi, lo)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt


def minhash_groups(texts: "pl.Series", *, threshold: float, ngram: int, unit: str, permutations: int,
                   seed: int, layout: tuple[int, int] | None = None,
                   candidates: bool = False, bits: int | None = None,
                   shingled: "tuple[np.ndarray, np.ndarray, BandSketch] | None" = None) -> tuple["np.ndarray", "np.ndarray"]:
    """For each text: the index of its group's first row (itself when unique) and the exact
    Jaccard to that row (1.0 for itself). Texts without shingles are never duplicates.
    ``layout`` is (bands, rows per band); by default ``band_layout`` picks it. ``candidates``:
    every text already shares a band of its sketch with another (``near_stage``), so rensa's
    flagging is skipped and the sketch that found them gives the bands. ``bits``: the key
    layout's document bits (``band_pairs``, ``ShingleSets``), fixed by ``near_stage`` so that a
    piece of the candidates is grouped exactly as it would be among all of them. ``shingled``:
    the candidates' shingles (flat, counts, none 0) and sketch, already computed (``near_stage``
    keeps a one-batch source's from finding the candidates); ``texts`` is then unused."""
    import numpy as np

    n = texts.len() if shingled is None else len(shingled[1])
    root = np.arange(n)
    jac = np.ones(n)
    seed = seed % 2 ** 63  # Polars and NumPy take unsigned seeds; any spec integer maps to one
    bands, rows = layout or band_layout(threshold, permutations)
    if shingled is not None:
        flat, lens, sketch = shingled
        live = np.arange(n)
        if n < 2:
            return root, jac
    else:
        flat, counts = shingle_hashes(texts, unit=unit, ngram=ngram, seed=seed)
        live = np.flatnonzero(counts > 0)  # flat holds exactly their shingles, in order
        if len(live) < 2:
            return root, jac
        lens = counts[live]
        if candidates:
            sketch = candidate_sketch(flat, lens, bands, rows, seed)
        else:
            flat, lens, live, sketch = _sketch(flat, lens, live, bands, rows, threshold, permutations, seed)
    floor = estimate_floor(threshold, sketch.bins)
    rounds = [pairs[_chunked(sketch.estimate, pairs) >= floor] if len(pairs) else pairs
              for pairs in band_pairs(sketch.keys, bits)]
    # exact verification needs the shingle sets of the rows in pairs that passed their estimate
    # only (0.4% of the 400k tickets; a third of gpteacher-toolformer at 0.85, most at 0.7)
    involved = np.flatnonzero(np.bincount(np.concatenate(rounds).ravel(), minlength=len(lens)))  # np.unique: 40x slower
    if len(involved) == 0:
        return root, jac
    sets = ShingleSets.of_rows(flat, lens, involved, bits)
    m = len(live)
    group = np.arange(m)
    checked = [np.zeros((0, 2), np.int64)]
    checked_jac = [np.zeros(0)]
    for pairs in rounds:
        pairs = pairs[group[pairs[:, 0]] != group[pairs[:, 1]]]
        if not len(pairs):
            continue
        j = sets.jaccard(pairs)
        edges = j >= threshold - 1e-12
        checked.append(pairs[edges])
        checked_jac.append(j[edges])
        if edges.any():
            linked = np.flatnonzero(group != np.arange(m))
            group = components(m, np.concatenate([pairs[edges], np.stack([linked, group[linked]], 1)]))
    dups = np.flatnonzero(group != np.arange(m))
    if len(dups):
        jac[live[dups]] = _jaccard_to_root(np.stack([group[dups], dups], 1), np.concatenate(checked),
                                           np.concatenate(checked_jac), m, sets)
        root[live[dups]] = live[group[dups]]
    return root, jac


# Measured costs (2-core machine, 128 permutations) that pick how rows get their sketch.
_EXPORT_NS_PER_VALUE = 75  # a rensa signature value reaching NumPy (Python lists)
_SKETCH_NS_PER_SHINGLE_BAND = 6  # BandSketch in NumPy, with its threads
_COMPILED_SKETCH_SPEEDUP = 3  # its compiled loop, once loaded: 2.2 ns on one thread (gpteacher-toolformer)
# One-permutation bins hold a few shingles each: past 8 rows per band (thresholds >= 0.9 at 128
# permutations) they collide less often than MinHash permutations do, and recall fell (0.85 vs
# 0.92 at 0.9 on gpteacher-toolformer), so those layouts always use rensa's signatures.
_SKETCH_MAX_ROWS = 8


def _sketch(flat, lens, live, bands, rows, threshold, permutations, seed):
    """(flat, lens, live, sketch) for the rows that can have a near-duplicate.

    rensa computes classic MinHash signatures of every row in Rust and flags the rows sharing an
    LSH band with another (same bands as the sketch); the others are done. Then one of two ways
    gives the flagged rows' band keys and estimates:
    - few flagged rows (most corpora: 4% of the 400k-ticket bench): their signatures, copied out
      of rensa as Python lists, so the bands are exactly the ones that flagged them;
    - many (templated text: 80% of gpteacher-toolformer), with at most _SKETCH_MAX_ROWS rows per
      band: ``BandSketch`` of the flagged rows (compiled), when copying their signatures out would
      cost more than sketching every row (the rule as measured when it was chosen; sketching the
      flagged rows only came later and costs less still). A pair is then a candidate when its
      rows were flagged and it shares a one-permutation band: on gpteacher-toolformer at 0.7,
      recall 0.977 (0.978 sketching every row, 0.984 with signatures) in 7-15% less time (12-14%
      less CPU) than sketching every row.
    """
    import numpy as np
    import rensa

    permutations = bands * rows  # rensa's bands must divide its permutations; any left over are unused
    lsh = rensa.RMinHashLSH(threshold, permutations, bands)
    matrix = _signatures(flat, lens, permutations, seed)
    flagged = np.flatnonzero(np.fromiter(lsh.query_duplicate_flags_matrix_one_shot(matrix), dtype=bool,
                                         count=len(lens)))
    every_row_ns = len(flat) * bands * _SKETCH_NS_PER_SHINGLE_BAND / (_COMPILED_SKETCH_SPEEDUP if _kernels_loaded()
                                                                       else 1)
    many = len(flagged) * permutations * _EXPORT_NS_PER_VALUE > every_row_ns
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat, lens = row_segments(flat, offsets, flagged)
    if rows <= _SKETCH_MAX_ROWS and many:
        return flat, lens, live[flagged], BandSketch(flat, lens, bands, rows, seed)
    sig = _to_numpy(_signatures(flat, lens, permutations, seed), permutations)
    return flat, lens, live[flagged], BandSketch.from_signatures(sig, bands, rows)


def candidate_sketch(flat, lens, bands: int, rows: int, seed: int) -> BandSketch:
    """The sketch of ``near_stage``'s candidates and band keys: one-permutation bands up to
    _SKETCH_MAX_ROWS rows per band, rensa's signatures beyond (a function of each row alone)."""
    if rows <= _SKETCH_MAX_ROWS:
        return BandSketch(flat, lens, bands, rows, seed)
    return BandSketch.from_signatures(_to_numpy(_signatures(flat, lens, bands * rows, seed), bands * rows), bands, rows)


def _jaccard_to_root(to_root, checked, checked_jac, m, sets) -> "np.ndarray":
    """Exact Jaccard of each (root, duplicate) pair: reused where that pair was verified (most
    rows join their group's first row directly), computed for rows joined through a chain."""
    import numpy as np

    out = np.empty(len(to_root))
    code = checked[:, 0] * m + checked[:, 1]
    order = np.argsort(code)
    code, checked_jac = code[order], checked_jac[order]
    want = to_root[:, 0] * m + to_root[:, 1]
    at = np.minimum(np.searchsorted(code, want), max(len(code) - 1, 0))
    known = (code[at] == want) if len(code) else np.zeros(len(want), bool)
    out[known] = checked_jac[at[known]]
    if (~known).any():
        out[~known] = sets.jaccard(to_root[~known])
    return out


# ----------------------------------------------------------------------------- explain


def explain_lazy(lf: "pl.LazyFrame", step: "CleaningStep", schema: Mapping[str, Any]) -> "pl.LazyFrame":
    import polars as pl

    if step.args["method"] in ("exact", "fingerprint"):
        keys = key_exprs(step, schema)
        if not keys:
            return lf
        names = [k.meta.output_name() for k in keys]
        return (lf.with_columns(keys)
                .with_columns(pl.when(~pl.struct(names).is_first_distinct())
                              .then(pl.col("_origin").first().over(names)).alias("_duplicate_of"))
                .filter(pl.col("_duplicate_of").is_null()).drop(names + ["_duplicate_of"]))
    text = minhash_text(step, schema)
    # the words the runtime hashes: pieces between single spaces of the normalised text (_shingle_chunk)
    shingled = text.str.split(" ") if step.args["unit"] == "word" else text
    return (lf.with_columns(shingled.alias("__shingle_source"))
            .with_columns(pl.col("_origin").map_batches(minhash_lsh_union_find, return_dtype=pl.String)
                          .alias("_duplicate_of"))
            .filter(pl.col("_duplicate_of").is_null()).drop("__shingle_source", "_duplicate_of"))


def minhash_lsh_union_find(s: "pl.Series") -> "pl.Series":  # named for explain() output only
    return s
