"""The MinHash dedupe's two inner loops, compiled by Numba: the one-permutation sketch of a
range of rows and the exact intersection of two rows' shingle sets (``dedupe.BandSketch`` and
``dedupe.ShingleSets`` call them, on every worker thread: they release the GIL), once a process's
MinHash work is worth loading them (``dedupe._compiled``; before, those classes run NumPy and
Polars code that gives the same bits).

Why compiled (``bench/near_dup.py``, gpteacher-toolformer at 0.7, December 2026): in NumPy the
sketch was nine passes over every shingle and band, the last a scattered ``np.minimum.at``
(28 ms of the 129 ms staged run), and the exact check 2.4M hash-set lookups by Polars' ``is_in``
(48 ms); as loops they do the same arithmetic once per shingle and band and merge two sorted
arrays per pair. Results are the same bits (``tests/test_minhash_kernels.py`` checks them
against NumPy and Python sets).

Numba caches the machine code beside this file (or in the user's cache folder when this one is
read-only): the first run after an install compiles them (~1 s), later processes load them
(~0.3 s, plus ~0.2 s to import Numba); where neither folder can be written, they compile once per
process instead of failing. A kernel given an argument of another type or layout (a read-only
array, int32 row numbers) would compile again, so callers convert to the types ``warm`` uses.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba.core.compiler_lock import global_compiler_lock

from llmspec.runtime.clean import dedupe

# The kernels may load on a thread (the clean engine sketches on one), holding Numba's compiler
# lock for ~0.5 s: a process forked meanwhile would inherit the lock held and hang at its first
# kernel call.
os.register_at_fork(before=global_compiler_lock.acquire, after_in_parent=global_compiler_lock.release,
                    after_in_child=global_compiler_lock.release)

EMPTY = 0xFFFFFFFF  # a bin no shingle fell in
_MIX, _SPLIT = np.uint64(dedupe._MIX), np.uint64(dedupe._SPLIT)  # as dedupe._mix64 and its n-grams


def _jit(fn):
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # "cannot cache function": no writable cache folder
        return numba.njit(nogil=True)(fn)


@_jit
def _band_key(values, at, rows, band):
    """One u64 from ``values[at:at + rows]``: multiply-add of the values after the band number,
    then one xor-shift-multiply round (``dedupe._mix64``), so equal values in two bands differ."""
    key = np.uint64(band)
    for r in range(rows):
        key = key * _MIX + np.uint64(values[at + r])
    key ^= key >> np.uint64(31)
    key *= _SPLIT
    key ^= key >> np.uint64(29)
    return key


@_jit
def one_permutation(flat, starts, lens, mult, add, rows, lo, hi, keys, low, empty):
    """Rows lo..hi-1 of ``BandSketch``: per band b, every shingle x of a row is hashed once more
    (``x * mult[b] + add[b]``, high 32 bits), falls in bin ``hash * rows >> 32`` of that band and
    the bin keeps its smallest hash. Writes the band keys (``keys[b, row]``), the low byte of
    every bin (``low[row]``) and which bins stayed empty (``empty[row]``)."""
    bands = mult.shape[0]
    bins = bands * rows
    mins = np.empty(bins, np.uint32)
    rows64 = np.uint64(rows)
    for d in range(lo, hi):
        mins[:] = EMPTY
        at = starts[d]
        for k in range(lens[d]):
            x = flat[at + k]
            for b in range(bands):
                v = np.uint32((x * mult[b] + add[b]) >> np.uint64(32))
                i = b * rows + np.int64((np.uint64(v) * rows64) >> np.uint64(32))
                if v < mins[i]:
                    mins[i] = v
        for i in range(bins):
            low[d, i] = np.uint8(mins[i] & np.uint32(0xFF))  # the high bits say which bin, not which shingle
            empty[d, i] = mins[i] == EMPTY
        for b in range(bands):
            keys[b, d] = _band_key(mins, b * rows, rows, b)


@_jit
def signature_keys(sig, rows, lo, hi, keys):
    """Band keys of rows lo..hi-1 from classic MinHash signatures (rows x permutations, u32):
    band b combines columns b*rows .. (b+1)*rows-1, as ``one_permutation`` combines its bins."""
    for d in range(lo, hi):
        for b in range(keys.shape[0]):
            keys[b, d] = _band_key(sig[d], b * rows, rows, b)


@_jit
def intersections(keys, offsets, a, b, mask, out):
    """``out[p]`` = how many shingles rows a[p] and b[p] share. A row's shingles are
    ``keys[offsets[row]:offsets[row + 1]]``, sorted and distinct in their ``mask`` bits (the
    bits above hold the row number): a merge of the two runs, without branches on the data."""
    for p in range(a.shape[0]):
        i, i_end = offsets[a[p]], offsets[a[p] + 1]
        j, j_end = offsets[b[p]], offsets[b[p] + 1]
        same = 0
        while i < i_end and j < j_end:
            x = keys[i] & mask
            y = keys[j] & mask
            same += x == y
            i += x <= y
            j += y <= x
        out[p] = same


loaded = False  # every kernel ready (``warm``): ``dedupe._compiled`` then always uses them


def warm() -> None:
    """Load (or, after an install, compile) every kernel now, on tiny inputs: ~0.3 s the first
    time in a process (LLVM starting), microseconds after."""
    global loaded
    keys = np.zeros((1, 1), np.uint64)
    one_permutation(np.zeros(1, np.uint64), np.zeros(1, np.int64), np.ones(1, np.int64), np.ones(1, np.uint64),
                    np.zeros(1, np.uint64), 1, 0, 1, keys, np.empty((1, 1), np.uint8), np.empty((1, 1), np.bool_))
    signature_keys(np.zeros((1, 1), np.uint32), 1, 0, 1, keys)
    intersections(np.zeros(1, np.uint64), np.array([0, 1], np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
                  np.uint64(0), np.empty(1, np.int64))
    loaded = True
