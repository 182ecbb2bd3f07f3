"""The compiled MinHash loops (``runtime/clean/minhash_kernels.py``) against plain NumPy and
Python sets: the same bits, whatever the rows each call or thread is given."""

from __future__ import annotations

import numpy as np
import pytest

from llmspec.runtime.clean import dedupe, minhash_kernels

MIX, SPLIT = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


@pytest.fixture
def compiled(monkeypatch):
    """The compiled loops whatever the work's size (``dedupe._compiled`` loads them only once a
    process's MinHash work is worth it)."""
    minhash_kernels.warm()
    monkeypatch.setattr(dedupe, "_compiled", lambda saved_ns: True)


@pytest.fixture
def uncompiled(monkeypatch):
    monkeypatch.setattr(dedupe, "_compiled", lambda saved_ns: False)


def numpy_band_key(values: np.ndarray, band: int) -> np.ndarray:
    """The band key as NumPy computed it before the loops were compiled (docs x rows -> u64)."""
    key = np.full(values.shape[0], band, np.uint64)
    with np.errstate(over="ignore"):
        for r in range(values.shape[1]):
            key *= MIX
            key += values[:, r]
        key ^= key >> np.uint64(31)
        key *= SPLIT
        key ^= key >> np.uint64(29)
    return key


def numpy_one_permutation(flat, lens, bands, rows, seed):
    """BandSketch's bins as NumPy computed them: a scattered minimum per band."""
    n = len(lens)
    rng = np.random.default_rng(seed)
    mult = rng.integers(0, 2 ** 63, size=bands, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    add = rng.integers(0, 2 ** 63, size=bands, dtype=np.uint64)
    slot = np.repeat(np.arange(n, dtype=np.int64) * rows, lens)
    mins = np.empty((n, bands * rows), np.uint32)
    keys = np.empty((bands, n), np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            g = flat * mult[b] + add[b]
            value = (g >> np.uint64(32)).astype(np.uint32)
            at = ((value.astype(np.uint64) * np.uint64(rows)) >> np.uint64(32)).astype(np.int64) + slot
            buf = np.full(n * rows, minhash_kernels.EMPTY, np.uint32)
            np.minimum.at(buf, at, value)
            mins[:, b * rows:(b + 1) * rows] = buf.reshape(n, rows)
            keys[b] = numpy_band_key(buf.reshape(n, rows), b)
    return keys, mins.astype(np.uint8), mins == minhash_kernels.EMPTY


def corpus(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 60, n)
    lens[::37] = 1  # one-shingle rows leave most bins empty
    lens[5] = 0  # a row without shingles: every bin empty
    vocab = rng.integers(0, 2 ** 64 - 1, 400, dtype=np.uint64, endpoint=True)
    return vocab[rng.integers(0, len(vocab), int(lens.sum()))], lens


@pytest.mark.parametrize("bands,rows", [(16, 8), (32, 4), (9, 5), (1, 1)])
def test_one_permutation_sketch_is_numpys_bit_for_bit(bands, rows, compiled):
    flat, lens = corpus(bands * rows)
    sketch = dedupe.BandSketch(flat, lens, bands, rows, seed=7)
    keys, low, empty = numpy_one_permutation(flat, lens, bands, rows, seed=7)
    assert empty[5].all() and not empty.all()
    assert np.array_equal(sketch.keys, keys) and np.array_equal(sketch.low, low)
    assert np.array_equal(sketch.empty, np.packbits(empty, axis=1))
    assert np.array_equal(sketch.has_empty, empty.any(axis=1))


def test_sketch_and_signature_keys_split_across_threads_are_the_same(monkeypatch, compiled):
    flat, lens = corpus(3, 2_000)
    sig = np.random.default_rng(4).integers(0, 2 ** 32, (2_000, 128), dtype=np.uint32)
    one = dedupe.BandSketch(flat, lens, 16, 8, seed=1)
    one_sig = dedupe.BandSketch.from_signatures(sig, 16, 8)
    dedupe._pool()
    monkeypatch.setattr(dedupe, "_WORKERS", 3)
    monkeypatch.setattr(dedupe, "_MIN_WORK_PER_THREAD", 1)
    calls = []
    original = minhash_kernels.one_permutation
    monkeypatch.setattr(minhash_kernels, "one_permutation",
                        lambda *a: calls.append(a[6:8]) or original(*a))
    split = dedupe.BandSketch(flat, lens, 16, 8, seed=1)
    split_sig = dedupe.BandSketch.from_signatures(sig, 16, 8)
    assert sorted(calls) == [(0, 666), (666, 1333), (1333, 2000)]
    assert np.array_equal(split.keys, one.keys) and np.array_equal(split.low, one.low)
    assert np.array_equal(split.empty, one.empty)
    assert np.array_equal(split_sig.keys, one_sig.keys)
    assert np.array_equal(one_sig.keys, np.stack([numpy_band_key(sig[:, b * 8:(b + 1) * 8], b) for b in range(16)]))


def test_intersections_are_those_of_python_sets():
    rng = np.random.default_rng(9)
    sets = [set(rng.integers(0, 50, rng.integers(0, 40)).tolist()) for _ in range(60)]
    shift = 58  # 6 bits of row number above the shingle bits, as ShingleSets lays them out
    keys = np.array([(d << shift) | v for d, s in enumerate(sets) for v in sorted(s)], np.uint64)
    offsets = np.zeros(len(sets) + 1, np.int64)
    np.cumsum([len(s) for s in sets], out=offsets[1:])
    a, b = rng.integers(0, 60, 500), rng.integers(0, 60, 500)
    out = np.empty(500, np.int64)
    minhash_kernels.intersections(keys, offsets, a, b, np.uint64((1 << shift) - 1), out)
    assert out.tolist() == [len(sets[i] & sets[j]) for i, j in zip(a, b)]
    assert out.max() > 5 and (out == 0).any()


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    """Where Numba finds no folder to cache in it raises at decoration: compile per process then."""
    import numba

    njit = numba.njit

    def refusing(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x.py'")
        return njit(**options)

    monkeypatch.setattr(numba, "njit", refusing)
    double = minhash_kernels._jit(lambda x: 2 * x)
    assert double(21) == 42


def test_no_rows_and_inputs_the_loops_would_read_past_are_refused(compiled):
    """The compiled loops check no bounds: the callers do, before calling them."""
    sketch = dedupe.BandSketch(np.zeros(0, np.uint64), np.zeros(0, np.int64), 16, 8, seed=1)
    assert sketch.keys.shape == (16, 0) and sketch.low.shape == (0, 128)
    flat, lens = corpus(1, 20)
    with pytest.raises(ValueError, match="shingles for rows holding"):
        dedupe.BandSketch(flat[:-1], lens, 16, 8, seed=1)
    with pytest.raises(ValueError, match="signatures of shape"):
        dedupe.BandSketch.from_signatures(np.zeros((3, 64), np.uint32), 16, 8)
    sets = dedupe.ShingleSets.of_rows(flat, lens, np.array([0, 2, 4]))
    assert sets.jaccard(np.zeros((0, 2), np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="not indexed"):
        sets.jaccard(np.array([[0, 1]]))  # row 1 is not among the indexed rows


def test_a_fork_while_the_kernels_load_on_a_thread_does_not_hang_the_child():
    """``warm`` runs on the engine's sketch thread holding Numba's compiler lock; a fork then
    would leave the child's copy of the lock held forever, but for the module's fork hook."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, sys, threading, time
        from numba.core.compiler_lock import global_compiler_lock
        from llmspec.runtime.clean import minhash_kernels
        held = threading.Event()
        def hold():
            with global_compiler_lock:
                held.set()
                time.sleep(0.5)
        threading.Thread(target=hold).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            minhash_kernels.warm()  # takes the compiler lock
            os._exit(0)
        for _ in range(300):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.1)
        os.kill(pid, 9)
        sys.exit("the child hung")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("bands,rows", [(16, 8), (9, 5)])
def test_both_ways_give_the_same_sketch_band_keys_and_jaccard(bands, rows, monkeypatch):
    """The compiled loops and the NumPy / Polars code a process runs before loading them."""
    flat, lens = corpus(11, 400)
    sig = np.random.default_rng(12).integers(0, 2 ** 32, (400, bands * rows), dtype=np.uint32)
    pairs = np.random.default_rng(13).integers(0, 400, (3_000, 2))
    out = {}
    for way in (False, True):
        monkeypatch.setattr(dedupe, "_compiled", lambda saved_ns, way=way: way)
        sketch = dedupe.BandSketch(flat, lens, bands, rows, seed=3)
        out[way] = (sketch.keys, sketch.low, sketch.empty, dedupe.BandSketch.from_signatures(sig, bands, rows).keys,
                    dedupe.ShingleSets(flat, lens).jaccard(pairs))
    for numpy_way, loops in zip(out[False], out[True]):
        assert np.array_equal(numpy_way, loops)


def _in_a_fresh_process(code: str) -> str:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_a_small_minhash_dedupe_never_loads_numba():
    """A small project's clean pays neither Numba's load (~0.5 s) nor its memory."""
    out = _in_a_fresh_process(
        "import sys, polars as pl\n"
        "from llmspec.runtime.clean.dedupe import minhash_groups\n"
        "texts = pl.Series([f'the router {i % 50} drops wifi every evening at {i % 7} pm' for i in range(3000)])\n"
        "root, _ = minhash_groups(texts, threshold=0.7, ngram=3, unit='word', permutations=128, seed=1)\n"
        "print(int((root != range(len(root))).sum()), 'numba' in sys.modules)")
    dups, numba_loaded = out.split()
    assert int(dups) > 2_000 and numba_loaded == "False"


def test_the_loops_load_once_a_process_work_is_worth_their_load():
    out = _in_a_fresh_process(
        "import numpy as np\n"
        "from llmspec.runtime.clean import dedupe\n"
        "dedupe._LOAD_NS = 1_000\n"
        "first = dedupe._compiled(600)\n"
        "second = dedupe._compiled(600)\n"
        "from llmspec.runtime.clean import minhash_kernels\n"
        "print(first, second, minhash_kernels.loaded, dedupe._compiled(0))")
    assert out == "False True True True"
