#!/usr/bin/env python3
"""Near-duplicate detection: llmspec's MinHash against datasketch.MinHashLSH and exact Jaccard.

    python bench/near_dup.py [--docs 50000] [--planted 5000] [--thresholds 0.7,0.85] [--repeat 3]
                             [--only planted|gpteacher]

Two corpora: planted near-duplicates (random documents plus one-word edits of some of them) and
the real ``../shared/data/gpteacher-toolformer.json`` (alpaca records: instruction, input and
output joined; skipped when the file is absent, never copied). Word 3-grams of the normalised
text (NFKC, lower case, whitespace collapsed), 128 permutations.

Ground truth: every pair with exact Jaccard >= threshold (sparse matrix product of the
document x shingle matrix, so no pair is missed). Reported per method: pair recall and
precision, and time from normalised texts to duplicate groups:
- llmspec clean (staged): what cleaning runs (``runtime/clean/near_stage.py``): one-permutation
  band keys of every row, the rows sharing a key as candidates, then ``minhash_groups`` of those,
  with the compiled loops loaded before the clock (like the imports: a process loads them once
  its MinHash work is worth ~0.5 s);
- staged, loops not loaded: the same in NumPy and Polars, what a fresh process runs on a corpus
  this small (the load would cost more than it saves);
- llmspec minhash_groups: ``runtime.dedupe.minhash_groups`` on every row (one-permutation sketches per band, compiled,
  banding, estimates, exact verification, connected components; threads on every core); a pair
  counts as found when both rows end in one group, so chains (pairs below the threshold joined
  through a third row) lower its precision;
- llmspec, datasketch's bands: the same with the band layout datasketch chooses for itself
  (``bands:`` and ``rows_per_band:`` in a spec), so both sides run one LSH configuration;
- rensa signatures: the same with the sketch path forced to classic MinHash signatures from
  rensa (Rust), the alternative measured against the one-permutation sketches;
- rensa's own LSH: ``RMinHashLSH`` insert and query per document, candidates unverified (a second
  baseline: the library llmspec already depends on, used as its authors intend);
- datasketch: MinHash + MinHashLSH insert and query of every document (candidates unverified,
  as the library returns them), and the speed-up against it (goal >= 20x at equal or better recall),
  in wall clock and in CPU time (steadier on a shared machine).
Never a timed assertion: this prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPTEACHER = HERE.parent.parent / "shared" / "data" / "gpteacher-toolformer.json"
PERMS, NGRAM, SEED = 128, 3, 1


def normalise(texts: list[str]) -> list[str]:
    import polars as pl

    from llmspec.runtime.clean.kernels import normalize_text

    return pl.select(normalize_text(pl.lit(pl.Series(texts, dtype=pl.String)), unicode="NFKC", whitespace="collapse",
                                    case="lower", fast=True)).to_series().to_list()


def shingles(text: str) -> set[str]:
    w = text.split()
    return {" ".join(w)} if len(w) < NGRAM else {" ".join(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)}


def truth_pairs(sets: list[set[str]], threshold: float) -> set[tuple[int, int]]:
    """Every pair with Jaccard >= threshold, exactly: X @ X.T over the doc x shingle matrix, in blocks."""
    import numpy as np
    from scipy import sparse

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sets):
        for sh in s:
            rows.append(i)
            cols.append(vocab.setdefault(sh, len(vocab)))
    x = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(sets), len(vocab)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsc()
    out = set()
    for lo in range(0, len(sets), 2000):
        inter = (x[lo:lo + 2000] @ xt).tocoo()
        i, j, v = inter.row + lo, inter.col, inter.data
        keep = (i < j) & (v / (sizes[i] + sizes[j] - v) >= threshold - 1e-12)
        out.update(zip(i[keep].tolist(), j[keep].tolist()))
    return out


def scores(found, truth: set) -> tuple[float, float, int]:
    """(recall, precision, pairs found) of a pair set, or of the groups a root array defines
    (counted, not listed: one large group holds millions of pairs)."""
    import numpy as np

    if isinstance(found, set):
        hit = len(found & truth)
        return hit / max(len(truth), 1), hit / max(len(found), 1), len(found)
    root = found
    sizes = np.bincount(root, minlength=len(root)).astype(np.int64)
    n_found = int((sizes * (sizes - 1) // 2).sum())
    hit = sum(root[i] == root[j] for i, j in truth)
    return hit / max(len(truth), 1), hit / max(n_found, 1), n_found


def run_llmspec(texts: list[str], threshold: float, layout: tuple[int, int] | None = None):
    import polars as pl
    import rensa  # noqa: F401  imported before the clock starts, as datasketch is

    from llmspec.runtime.clean.dedupe import minhash_groups
    from llmspec.runtime.clean.minhash_kernels import warm

    warm()  # the compiled loops' first load (~0.5 s a process), like an import (`llmspec clean` overlaps it)

    series = pl.Series(texts, dtype=pl.String)
    t0 = time.perf_counter()
    root, _ = minhash_groups(series, threshold=threshold, ngram=NGRAM, unit="word", permutations=PERMS, seed=SEED,
                             layout=layout)
    return time.perf_counter() - t0, root


def run_llmspec_staged(texts: list[str], threshold: float):
    """What ``llmspec clean`` runs on a source read in one batch (``NearStage``): shingles and
    one-permutation band keys of every row -> candidates (rows sharing a band key) ->
    ``minhash_groups`` of the candidates only, on the shingles and sketch step 1 kept."""
    return _staged(texts, threshold)


def _staged(texts: list[str], threshold: float):
    import numpy as np
    import polars as pl
    import rensa  # noqa: F401

    from llmspec.compiler.dedupe_layout import band_layout
    from llmspec.runtime.clean.dedupe import doc_bits, minhash_groups
    from llmspec.runtime.clean.minhash_kernels import warm
    from llmspec.runtime.clean.near_stage import Shingled, candidates

    warm()

    series = pl.Series(texts, dtype=pl.String)
    bands, rows = band_layout(threshold, PERMS)
    args = {"bands": bands, "rows_per_band": rows, "seed": SEED, "unit": "word", "ngram": NGRAM}
    t0 = time.perf_counter()
    batch = Shingled.of(series, args)
    keys = batch.keys(bands)
    pos = candidates(bands, lambda b: keys[b])
    root = np.arange(len(texts))
    if len(pos) > 1:
        cand = batch.live[pos]
        sub, _ = minhash_groups(None, threshold=threshold, ngram=NGRAM, unit="word", permutations=PERMS, seed=SEED,
                                layout=(bands, rows), candidates=True, bits=doc_bits(len(pos)),
                                shingled=batch.of_rows(pos))
        root[cand] = cand[sub]
    return time.perf_counter() - t0, root


def run_llmspec_staged_unloaded(texts: list[str], threshold: float):
    """The same before the compiled loops are loaded: NumPy and Polars, what a process runs
    until its MinHash work is worth loading them (``dedupe._compiled``; a corpus this size in a
    fresh process)."""
    from llmspec.runtime.clean import dedupe

    compiled = dedupe._compiled
    dedupe._compiled = lambda saved_ns: False
    try:
        return _staged(texts, threshold)
    finally:
        dedupe._compiled = compiled


def run_rensa_lsh(texts: list[str], threshold: float):
    """rensa's own LSH (``RMinHashLSH``), used as datasketch's is: a MinHash per document,
    insert, query (candidates unverified); llmspec's band layout."""
    import rensa

    from llmspec.compiler.dedupe_layout import band_layout

    bands, _ = band_layout(threshold, PERMS)
    t0 = time.perf_counter()
    lsh = rensa.RMinHashLSH(threshold, PERMS, bands)
    sigs = []
    for i, t in enumerate(texts):
        m = rensa.RMinHash(PERMS, SEED)
        m.update(list(shingles(t)))
        lsh.insert(i, m)
        sigs.append(m)
    found = {(min(i, j), max(i, j)) for i, m in enumerate(sigs) for j in lsh.query(m) if i != j}
    return time.perf_counter() - t0, found


def run_llmspec_datasketch_bands(texts: list[str], threshold: float):
    """llmspec with the band layout datasketch picks for itself (``bands:`` and ``rows_per_band:``
    in the spec): the same LSH configuration on both sides, so the difference is the
    implementation alone."""
    from datasketch.lsh import _optimal_param

    return run_llmspec(texts, threshold, _optimal_param(threshold, PERMS, 0.5, 0.5))


def run_rensa(texts: list[str], threshold: float):
    """llmspec's other way to band keys and estimates, forced: the flagged rows' classic MinHash
    signatures copied out of rensa (as Python lists), the way it takes when few rows collide,
    instead of the one-permutation sketch it picks when many do."""
    from llmspec.runtime.clean import dedupe

    measured = dedupe._SKETCH_NS_PER_SHINGLE_BAND
    dedupe._SKETCH_NS_PER_SHINGLE_BAND = float("inf")  # sketching never looks cheaper
    try:
        return run_llmspec(texts, threshold)
    finally:
        dedupe._SKETCH_NS_PER_SHINGLE_BAND = measured


def run_datasketch(texts: list[str], threshold: float):
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=PERMS)
    sigs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=PERMS, seed=SEED)
        m.update_batch([s.encode() for s in shingles(t)])
        lsh.insert(i, m)
        sigs.append(m)
    found = {(min(i, j), max(i, j)) for i, m in enumerate(sigs) for j in lsh.query(m) if i != j}
    return time.perf_counter() - t0, found


def planted(docs: int, edits: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(20000)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(30, 60))) for _ in range(docs)]
    for _ in range(edits):
        words = texts[rng.randrange(docs)].split()
        words[rng.randrange(len(words))] = rng.choice(vocab)
        texts.append(" ".join(words))
    rng.shuffle(texts)
    return texts


def report(name: str, texts: list[str], thresholds: list[float], repeat: int) -> None:
    sets = [shingles(t) for t in texts]
    print(f"\n== {name}: {len(texts):,} documents, load average {os.getloadavg()[0]:.1f}")
    for t in thresholds:
        truth = truth_pairs(sets, t)
        print(f"threshold {t}: {len(truth):,} pairs with exact Jaccard >= {t}")
        rows = []
        methods = (("llmspec clean (staged)", run_llmspec_staged),
                   ("staged, loops not loaded", run_llmspec_staged_unloaded), ("llmspec minhash_groups", run_llmspec),
                   ("llmspec, datasketch's bands", run_llmspec_datasketch_bands),
                   ("rensa signatures", run_rensa), ("rensa's own LSH", run_rensa_lsh),
                   ("datasketch", run_datasketch))
        walls_of = {m: [] for m, _ in methods}
        cpus_of = {m: [] for m, _ in methods}
        found_of = {}
        # Interleaved: run k of every method, then run k+1 (the order turned by one each time), so
        # run k of a method and run k of datasketch see the same machine; this shared machine's
        # speed drifts by 1.5x over a minute (measured: datasketch 2.0 s then 3.4 s), which
        # distorted ratios taken between blocks of runs of one method each.
        for k in range(repeat):  # the median of `repeat` runs: one run swings with the machine's load
            for method, fn in methods[k % len(methods):] + methods[:k % len(methods)]:
                cpu0 = time.process_time()
                secs, found_of[method] = fn(texts, t)
                cpus_of[method].append(time.process_time() - cpu0)  # all threads of this process
                walls_of[method].append(secs)
        for method, _ in methods:
            walls, cpus, found = walls_of[method], cpus_of[method], found_of[method]
            secs, cpu = statistics.median(walls), statistics.median(cpus)
            rec, prec, n = scores(found, truth)
            rows.append((method, secs, cpu, rec, prec, walls, cpus))
            print(f"  {method:28s} {secs:7.3f} s wall ({min(walls):.3f}-{max(walls):.3f}) {cpu:7.3f} s CPU "
                  f"({min(cpus):.3f}-{max(cpus):.3f})   recall {rec:.4f}   precision {prec:.4f}   pairs found {n:,}")
        base_wall, base_cpu, base_rec, base_walls, base_cpus = rows[-1][1], rows[-1][2], rows[-1][3], rows[-1][5], \
            rows[-1][6]
        for method, secs, cpu, rec, _, walls, cpus in rows[:-1]:
            # run k of each method against run k of datasketch (minutes apart at most): the median
            # and range of those ratios, not ratios of the times' medians
            w = [b / x for b, x in zip(base_walls, walls)]
            c = [b / x for b, x in zip(base_cpus, cpus)]
            print(f"  {method} vs datasketch: {statistics.median(w):.1f}x faster wall clock "
                  f"({min(w):.1f}-{max(w):.1f}), {statistics.median(c):.1f}x in CPU time ({min(c):.1f}-{max(c):.1f}), "
                  f"recall {rec - base_rec:+.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--planted", type=int, default=5_000)
    ap.add_argument("--thresholds", default="0.7,0.85")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported")
    ap.add_argument("--only", choices=["planted", "gpteacher"], help="one corpus only")
    ap.add_argument("--gpteacher", type=Path, default=GPTEACHER, help=f"the real corpus (default {GPTEACHER})")
    args = ap.parse_args(argv)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    if args.only != "gpteacher":
        report("planted one-word edits", normalise(planted(args.docs, args.planted)), thresholds, args.repeat)
    if args.only != "planted" and not args.gpteacher.exists():
        print(f"\n(skipped the real corpus: {args.gpteacher} is absent)")
    elif args.only != "planted":
        records = json.loads(args.gpteacher.read_text())
        texts = [" ".join(str(r.get(k) or "") for k in ("instruction", "input", "output")) for r in records]
        report(f"gpteacher-toolformer ({args.gpteacher})", normalise(texts), thresholds, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
