"""Dedupe: exact, fingerprint and MinHash, the keep rule, _duplicate_of, chains, and MinHash
against datasketch (the oracle) and exact Jaccard ground truth."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import run_cleaning
from llmspec.compiler.dedupe_layout import band_layout
from llmspec.runtime.clean.dedupe import components, exact_jaccard, minhash_groups, shingle_hashes
from llmspec.runtime.sources import SourceBatch
from llmspec.spec.models import QualitySpec

EMPTY = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})


def clean(rules, data, schema=None):
    rows = pl.DataFrame(data, schema=schema)
    rows = rows.with_columns(pl.format("f:{}", pl.int_range(pl.len()) + 1).alias("_origin"))
    q = QualitySpec.model_validate({"rules": rules})
    return run_cleaning(SourceBatch("s", rows, EMPTY, rows.height, []), compile_cleaning(q, "s", dict(rows.schema)))


def dup_map(result) -> dict[str, str]:
    return dict(zip(result.rejects["_origin"], result.rejects["_duplicate_of"]))


# ----------------------------------------------------------------------------- exact, fingerprint


def test_exact_after_normalisation_keeps_first_and_points_to_it():
    data = {"q": ["Reset my password", "reset  my PASSWORD ", "Ｒｅｓｅｔ my password", "other", "reset my password"],
            "a": ["x", "x", "x", "y", "z"]}
    r = clean([{"dedupe": {"columns": ["q"]}}], data)
    assert r.kept["_origin"].to_list() == ["f:1", "f:4"]
    assert dup_map(r) == {"f:2": "f:1", "f:3": "f:1", "f:5": "f:1"}
    assert r.rejects["_detail"][0] == "exact duplicate of f:1 (after normalisation)"
    # over all columns by default: the answer differs for f:5
    r = clean([{"dedupe": {}}], data)
    assert r.kept["_origin"].to_list() == ["f:1", "f:4", "f:5"]


def test_exact_treats_nulls_as_equal_and_other_types_as_is():
    r = clean([{"dedupe": {}}], {"q": [None, None, "x"], "n": [1, 1, 1]})
    assert r.kept["_origin"].to_list() == ["f:1", "f:3"]
    assert dup_map(r) == {"f:2": "f:1"}


def test_fingerprint_is_openrefine_key_collision():
    data = {"q": ["Hello, World!", "world hello", "Héllo wörld", "hello-world", "Hello world again"]}
    r = clean([{"dedupe": {"method": "fingerprint"}}], data)
    # punctuation is removed, not spaced: hello-world -> helloworld, a different key
    assert r.kept["_origin"].to_list() == ["f:1", "f:4", "f:5"]
    assert dup_map(r) == {"f:2": "f:1", "f:3": "f:1"}
    assert "'hello world'" in r.rejects["_detail"][0]


def test_dedupe_on_email_turns():
    turns = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    t = [{"role": "customer", "content": "Where is my order?"}]
    data = {"subject": ["a", "b", "c"], "turns": [t, [{"role": "customer", "content": "where is  my ORDER?"}], []]}
    r = clean([{"dedupe": {"columns": ["turns"]}}], data, schema={"subject": pl.String, "turns": turns})
    assert dup_map(r) == {"f:2": "f:1"}


# ----------------------------------------------------------------------------- minhash semantics


WORDS = [f"w{i}" for i in range(3000)]


def doc(rng: random.Random, n: int = 30) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def test_minhash_chains_collapse_to_the_first_row():
    rng = random.Random(1)
    a = doc(rng, 40)
    b = list(a)
    b[10] = "x1"
    c = list(b)
    c[30] = "x2"  # c is near b, less near a
    texts = [" ".join(a), "unrelated " + " ".join(doc(rng, 40)), " ".join(b), " ".join(c)]
    shingles = [set(zip(t.split(), t.split()[1:], t.split()[2:])) for t in texts]
    jac = lambda x, y: len(shingles[x] & shingles[y]) / len(shingles[x] | shingles[y])  # noqa: E731
    threshold = (min(jac(0, 2), jac(2, 3)) + jac(0, 3)) / 2  # a~b and b~c pass, a~c does not
    assert min(jac(0, 2), jac(2, 3)) >= threshold > jac(0, 3)
    r = clean([{"dedupe": {"method": "minhash", "threshold": round(threshold, 3), "ngram": 3}}], {"t": texts})
    assert r.kept["_origin"].to_list() == ["f:1", "f:2"]
    assert dup_map(r) == {"f:3": "f:1", "f:4": "f:1"}
    detail = dict(zip(r.rejects["_origin"], r.rejects["_detail"]))
    assert "linked through similar rows" in detail["f:4"] and "linked" not in detail["f:3"]


def test_minhash_char_shingles_empty_texts_and_determinism():
    texts = ["The parcel never arrived.", "The parcel never arived.", "", None, "   ", "Completely different."]
    rules = [{"dedupe": {"method": "minhash", "unit": "char", "ngram": 4, "threshold": 0.6}}]
    r1 = clean(rules, {"t": texts})
    r2 = clean(rules, {"t": texts})
    assert dup_map(r1) == dup_map(r2) == {"f:2": "f:1"}  # empty texts are never near-duplicates


def test_band_layout_uses_every_permutation_and_beats_datasketch_at_the_threshold():
    from datasketch.lsh import _optimal_param

    for t in (0.5, 0.7, 0.85, 0.95):
        b, r = band_layout(t, 128)
        assert b * r == 128
        db, dr = _optimal_param(t, 128, 0.5, 0.5)
        assert 1 - (1 - t ** r) ** b >= 1 - (1 - t ** dr) ** db


def test_components_match_a_plain_union_find():
    rng = np.random.default_rng(5)
    n = 300
    edges = rng.integers(0, n, size=(200, 2))
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(int(u)), find(int(v))
        parent[max(ru, rv)] = min(ru, rv)
    expected = {}
    for x in range(n):
        expected.setdefault(find(x), []).append(x)
    got = components(n, edges)
    for members in expected.values():
        assert set(got[members]) == {min(members)}


def test_exact_jaccard_matches_python_sets():
    rng = random.Random(2)
    texts = [" ".join(doc(rng, rng.randint(1, 12))) for _ in range(40)]
    flat, counts = shingle_hashes(pl.Series(texts), unit="word", ngram=2, seed=1)
    pairs = np.array([(i, j) for i in range(40) for j in range(i + 1, 40)])
    got = exact_jaccard(flat, counts, pairs)

    def sh(t):
        w = t.split()
        return {tuple(w)} if len(w) < 2 else set(zip(w, w[1:]))

    want = [len(sh(texts[i]) & sh(texts[j])) / len(sh(texts[i]) | sh(texts[j])) for i, j in pairs]
    assert np.allclose(got, want)


# ----------------------------------------------------------------------------- oracle


def _shingles(text: str, n: int) -> set[str]:
    w = text.lower().split()
    return {" ".join(w)} if len(w) < n else {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def planted_corpus(seed: int, docs: int, pairs: int):
    rng = random.Random(seed)
    texts = [" ".join(doc(rng, rng.randint(25, 40))) for _ in range(docs)]
    for k in range(pairs):
        words = texts[k].split()
        words[rng.randrange(len(words))] = rng.choice(WORDS)  # a one-word edit
        texts.append(" ".join(words))
    rng.shuffle(texts)
    return texts


@pytest.fixture(params=["sketch", "signatures"])
def sketch_path(request, monkeypatch):
    """Both ways rows get band keys: BandSketch (compiled), or rensa's signatures copied out."""
    from llmspec.runtime.clean import dedupe

    cost = 10 ** 9 if request.param == "signatures" else 0
    monkeypatch.setattr(dedupe, "_SKETCH_NS_PER_SHINGLE_BAND", cost)
    return request.param


@pytest.mark.parametrize("threshold", [0.7, 0.8])
def test_minhash_recall_at_least_datasketch_with_perfect_precision(threshold, sketch_path):
    from datasketch import MinHash, MinHashLSH

    texts = planted_corpus(11, 300, 80)
    sets = [_shingles(t, 3) for t in texts]
    truth = {(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold}
    assert len(truth) >= 40

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    sigs = []
    for i, s in enumerate(sets):
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([x.encode() for x in s])
        lsh.insert(i, m)
        sigs.append(m)
    found_ds = {(min(i, j), max(i, j)) for i, m in enumerate(sigs) for j in lsh.query(m) if i != j}
    recall_ds = len(found_ds & truth) / len(truth)

    root, _ = minhash_groups(pl.Series(texts), threshold=threshold, ngram=3, unit="word", permutations=128, seed=1)
    same = {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if root[i] == root[j]}
    recall = len(same & truth) / len(truth)
    assert recall >= recall_ds
    assert same <= truth  # every grouped pair is a true pair: candidates are verified exactly
    for i in range(len(texts)):  # the kept row of a group is its first
        assert root[i] <= i


def test_dedupe_after_normalize_decides_the_same_and_fill_resets_it():
    data = {"q": ["Ｒeset  Password", "reset password", "RESET\tpassword ", None, "x y"],
            "a": ["1", "1", "1", "1", "1"]}
    alone = clean([{"dedupe": {"columns": ["q"]}}], data)
    after = clean([{"normalize": {"case": "lower"}}, {"dedupe": {"columns": ["q"]}}], data)
    assert dup_map(alone) == dup_map(after) == {"f:2": "f:1", "f:3": "f:1"}
    # fill writes an unnormalised value after normalize: dedupe must normalise it again
    filled = clean([{"normalize": {}}, {"fill": {"column": "q", "value": "  X \u00a0Y "}}, {"dedupe": {"columns": ["q"]}}],
                   data)
    assert dup_map(filled)["f:5"] == "f:4"


# ----------------------------------------------------------------------------- sketches and verification


def _jaccard(x: str, y: str, n: int = 3) -> float:
    a, b = _shingles(x, n), _shingles(y, n)
    return len(a & b) / len(a | b)


def _corpus(seed: int, docs: int = 400):
    rng = random.Random(seed)
    base = [doc(rng, rng.randint(20, 60)) for _ in range(docs // 2)]
    texts = [" ".join(b) for b in base]
    for b in base:  # a near copy with a few words changed: Jaccard spread over 0.3 .. 1
        w = list(b)
        for _ in range(rng.randint(0, 6)):
            w[rng.randrange(len(w))] = rng.choice(WORDS)
        texts.append(" ".join(w))
    return texts


def test_band_sketch_estimates_track_exact_jaccard():
    from llmspec.runtime.clean.dedupe import BandSketch

    texts = _corpus(3)
    flat, counts = shingle_hashes(pl.Series(texts), unit="word", ngram=3, seed=1)
    sketch = BandSketch(flat, counts, 16, 8, seed=1)
    half = len(texts) // 2
    pairs = np.array([(i, i + half) for i in range(half)] + [(i, (i + 1) % half) for i in range(half)])
    est, exact = sketch.estimate(pairs), exact_jaccard(flat, counts, pairs)
    err = est - exact
    assert abs(err.mean()) < 0.01  # unbiased: the low byte of a bin says nothing of which bin it is
    assert err.std() < 0.06  # about the binomial sd at 128 bins (<= 0.044)
    assert (est[half:] < 0.05).all()  # unrelated documents


def test_equal_bytes_counts_like_numpy():
    from llmspec.runtime.clean.dedupe import _equal_bytes

    rng = np.random.default_rng(0)
    for width in (8, 13, 128):
        x = rng.integers(0, 4, size=(50, width), dtype=np.uint8)
        y = rng.integers(0, 4, size=(50, width), dtype=np.uint8)
        assert (_equal_bytes(x, y) == (x == y).sum(axis=1)).all()


def test_rensa_flags_every_row_in_a_band_collision_of_its_signatures():
    """The signature path drops unflagged rows before banding: rensa's bands must be the same
    column blocks that BandSketch.from_signatures combines, or pairs would be lost silently."""
    from llmspec.runtime.clean.dedupe import BandSketch, _signatures, _to_numpy, band_pairs

    import rensa

    texts = _corpus(9, 600)
    flat, counts = shingle_hashes(pl.Series(texts), unit="word", ngram=3, seed=1)
    for bands in (16, 32):
        matrix = _signatures(flat, counts, 128, 1)
        flags = np.array(rensa.RMinHashLSH(0.7, 128, bands).query_duplicate_flags_matrix_one_shot(matrix))
        keys = BandSketch.from_signatures(_to_numpy(matrix, 128), bands, 128 // bands).keys
        in_pairs = np.unique(np.concatenate(band_pairs(keys)).ravel())
        assert len(in_pairs) >= 100
        assert flags[in_pairs].all()


def test_shingle_sets_of_some_rows_answer_in_row_numbers():
    from llmspec.runtime.clean.dedupe import ShingleSets

    texts = _corpus(8, 100)
    flat, counts = shingle_hashes(pl.Series(texts), unit="word", ngram=3, seed=1)
    rows = np.arange(0, 100, 3)
    pairs = np.array([(a, b) for a in rows[:10] for b in rows[10:20]])
    assert np.array_equal(ShingleSets.of_rows(flat, counts, rows).jaccard(pairs), exact_jaccard(flat, counts, pairs))


@pytest.mark.parametrize("compiled", [True, False])
def test_exact_jaccard_split_across_threads(monkeypatch, compiled):
    """Pairs split across worker threads: by the compiled merge, in ranges of pairs; by Polars
    (before the loops load), in parts cut by the document looked up, each with a set of its
    documents' keys only. The same Jaccard as Python sets, with or without the split."""
    from llmspec.runtime.clean import dedupe, minhash_kernels

    if compiled:
        minhash_kernels.warm()
    monkeypatch.setattr(dedupe, "_compiled", lambda saved_ns: compiled)
    rng = random.Random(5)
    texts = [" ".join(doc(rng, rng.randint(1, 30))) for _ in range(120)]
    flat, counts = shingle_hashes(pl.Series(texts), unit="word", ngram=2, seed=1)
    pairs = np.array([(i, j) for i in range(120) for j in range(i + 1, 120) if (i * j) % 7 == 1])
    sets = dedupe.ShingleSets(flat, counts)
    whole = sets.jaccard(pairs)
    dedupe._pool()
    monkeypatch.setattr(dedupe, "_WORKERS", 3)
    calls = []
    if compiled:
        monkeypatch.setattr(dedupe, "_MIN_WORK_PER_THREAD", 1)
        original = minhash_kernels.intersections
        monkeypatch.setattr(minhash_kernels, "intersections", lambda keys, offsets, a, b, *rest:
                            calls.append(len(a)) or original(keys, offsets, a, b, *rest))
        split = sets.jaccard(pairs)
        assert len(calls) == 3 and sum(calls) == len(pairs)
    else:
        monkeypatch.setattr(dedupe, "_MIN_PARALLEL", 1)
        monkeypatch.setattr(dedupe, "_LOOKUPS_PER_CALL", 50)  # many parts, most with a few documents
        original = dedupe.ShingleSets._intersections
        monkeypatch.setattr(dedupe.ShingleSets, "_intersections",
                            lambda self, s, o: calls.append(len(np.unique(o))) or original(self, s, o))
        split = sets.jaccard(pairs)
        assert len(calls) > 10 and max(calls) < 120

    def sh(t):
        w = t.split()
        return {tuple(w)} if len(w) < 2 else set(zip(w, w[1:]))

    want = [len(sh(texts[i]) & sh(texts[j])) / len(sh(texts[i]) | sh(texts[j])) for i, j in pairs]
    assert np.array_equal(split, whole) and np.allclose(split, want)


def test_shingle_hashes_in_chunks_on_threads_match_one_call(monkeypatch):
    from llmspec.runtime.clean import dedupe

    rng = random.Random(6)
    texts = pl.Series([" ".join(doc(rng, rng.randint(0, 9))) if i % 5 else None for i in range(500)])
    whole = {u: shingle_hashes(texts, unit=u, ngram=3, seed=4) for u in ("word", "char")}
    dedupe._pool()
    monkeypatch.setattr(dedupe, "_WORKERS", 4)
    monkeypatch.setattr(dedupe, "_MIN_ROWS_PER_THREAD", 7)
    for unit, (flat, counts) in whole.items():
        got_flat, got_counts = shingle_hashes(texts, unit=unit, ngram=3, seed=4)
        assert np.array_equal(got_counts, counts) and np.array_equal(got_flat, flat)
        assert counts[0] == 0 and counts.sum() == len(flat)


def test_minhash_groups_same_with_one_thread_and_jaccard_to_root_is_exact(monkeypatch, sketch_path):
    from llmspec.runtime.clean import dedupe

    texts = _corpus(6, 600)
    args = dict(threshold=0.7, ngram=3, unit="word", permutations=128, seed=1)
    root, jac = minhash_groups(pl.Series(texts), **args)
    monkeypatch.setenv("LLMSPEC_THREADS", "1")
    monkeypatch.setattr(dedupe, "_POOL", None)
    root1, jac1 = minhash_groups(pl.Series(texts), **args)
    monkeypatch.setattr(dedupe, "_POOL", None)  # the next test builds the default pool again
    assert np.array_equal(root, root1) and np.array_equal(jac, jac1)
    dups = np.flatnonzero(root != np.arange(len(texts)))
    assert len(dups) >= 100
    for i in dups:
        a, b = _shingles(texts[i], 3), _shingles(texts[root[i]], 3)
        assert jac[i] == pytest.approx(len(a & b) / len(a | b))


def test_a_layout_using_fewer_permutations_finds_the_near_copies(monkeypatch):
    from llmspec.runtime.clean import dedupe

    texts = _corpus(8, 300)
    used = []
    signatures = dedupe._signatures
    monkeypatch.setattr(dedupe, "_signatures", lambda f, n, perms, seed: used.append(perms) or signatures(f, n, perms, seed))
    root, _ = minhash_groups(pl.Series(texts), threshold=0.9, ngram=3, unit="word", permutations=128, seed=1,
                             layout=(9, 12))
    assert set(used) == {108}
    pairs = [(i, i + 150) for i in range(150) if _jaccard(texts[i], texts[i + 150]) >= 0.9]
    assert len(pairs) >= 20
    assert sum(root[i] == root[j] for i, j in pairs) >= 0.95 * len(pairs)


def test_both_paths_sketch_only_the_rows_rensa_flagged(monkeypatch, sketch_path):
    """A row sharing no LSH band with another under rensa's signatures is done: neither path
    sketches it again."""
    from llmspec.runtime.clean import dedupe

    texts = _corpus(4, 200) + [" ".join(doc(random.Random(i), 40)) for i in range(300)]  # 300 loners
    sketched = []
    for cls_method in ("__init__", "from_signatures"):
        original = getattr(dedupe.BandSketch, cls_method)
        if cls_method == "__init__":
            monkeypatch.setattr(dedupe.BandSketch, "__init__", lambda self, flat, lens, *a, _o=original:
                                sketched.append(len(lens)) or _o(self, flat, lens, *a))
        else:
            monkeypatch.setattr(dedupe.BandSketch, "from_signatures", classmethod(
                lambda cls, sig, *a, _o=original: sketched.append(len(sig)) or _o.__func__(cls, sig, *a)))
    root, _ = minhash_groups(pl.Series(texts), threshold=0.7, ngram=3, unit="word", permutations=128, seed=1)
    assert len(sketched) == 1 and 100 <= sketched[0] < 300
    assert (root != np.arange(len(texts))).sum() >= 30


def test_layouts_with_many_rows_per_band_use_minhash_signatures(monkeypatch):
    """One-permutation bins get too few shingles past 8 rows per band (recall fell): such
    layouts take rensa's signatures however many rows collide."""
    from llmspec.runtime.clean import dedupe

    monkeypatch.setattr(dedupe, "_SKETCH_NS_PER_SHINGLE_BAND", 0)  # sketching would look free

    def refuse(*args, **kwargs):
        raise AssertionError("BandSketch used for a 16-row layout")

    monkeypatch.setattr(dedupe.BandSketch, "__init__", refuse)
    texts = _corpus(10, 200)
    assert band_layout(0.9, 128)[1] > dedupe._SKETCH_MAX_ROWS
    root, _ = minhash_groups(pl.Series(texts), threshold=0.9, ngram=3, unit="word", permutations=128, seed=1)
    assert (root != np.arange(len(texts))).sum() >= 10


def test_bands_that_do_not_divide_the_permutations_use_bands_times_rows(sketch_path):
    texts = _corpus(11, 300)
    args = dict(threshold=0.7, ngram=3, unit="word", permutations=128, seed=1)
    root, jac = minhash_groups(pl.Series(texts), **args, layout=(14, 9))  # 126 of the 128
    dups = np.flatnonzero(root != np.arange(len(texts)))
    assert len(dups) >= 30  # 16 x 8 finds 51 here: fewer, longer bands find fewer pairs
    assert (jac[dups] >= 0.7 - 1e-9).all()  # each joined its group's first row directly here


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_is_a_clear_error(monkeypatch, value):
    from llmspec.runtime.clean import dedupe
    from llmspec.spec.errors import LlmspecError

    monkeypatch.setenv("LLMSPEC_THREADS", value)
    monkeypatch.setattr(dedupe, "_POOL", None)
    with pytest.raises(LlmspecError, match="LLMSPEC_THREADS must be a whole number"):
        minhash_groups(pl.Series(["a b c d", "a b c e"]), threshold=0.5, ngram=2, unit="word", permutations=64, seed=1)
    monkeypatch.setattr(dedupe, "_POOL", None)


def test_band_pairs_and_shingle_sets_hold_a_repeated_pair_once():
    # band_pairs dedupes each window offset's pairs as it goes (a pair colliding in every band is
    # held once, not once a band: 1.36 GB -> 0.7 GB on 334k rows six times over); the pairs, the
    # sets picked from rows in order (a byte a shingle) and their Jaccard stay exactly as before
    from llmspec.runtime.clean import dedupe

    rng = np.random.default_rng(5)
    n, bands = 3_000, 9
    keys = rng.integers(0, 2**40, size=(bands, n), dtype=np.uint64)
    keys[:, 1000:1600] = keys[:, 0:600]  # many rows share every band with another, some 3-way
    keys[:, 2000:2300] = keys[:, 0:300]
    got = dedupe.band_pairs(keys)
    want = set()  # each row with its bucket's first row and its next WINDOW rows, in every band
    for b in range(bands):
        for k in np.unique(keys[b]):
            docs = np.flatnonzero(keys[b] == k).tolist()
            want.update((docs[0], y) for y in docs[1:])
            want.update((x, y) for i, x in enumerate(docs) for y in docs[i + 1:i + 1 + dedupe.WINDOW])
    assert all(len({tuple(p) for p in r.tolist()}) == len(r) for r in got)  # each round: every pair once
    assert not {tuple(p) for p in got[0].tolist()} & {tuple(p) for p in got[1].tolist()}  # and in one round
    assert {tuple(p) for r in got for p in r.tolist()} == want
    flat = rng.integers(0, 2**63, size=40_000, dtype=np.uint64)
    lens = rng.multinomial(40_000, np.ones(n) / n)
    offsets = np.r_[0, np.cumsum(lens)]
    rows = np.sort(rng.choice(n, size=700, replace=False))
    fast, fast_lens = dedupe.row_segments(flat, offsets, rows)
    slow = np.concatenate([flat[offsets[r]:offsets[r + 1]] for r in rows])
    assert np.array_equal(fast, slow) and np.array_equal(fast_lens, lens[rows])
    shuffled = rows[::-1].copy()  # any other order takes the general path
    assert np.array_equal(dedupe.row_segments(flat, offsets, shuffled)[0],
                          np.concatenate([flat[offsets[r]:offsets[r + 1]] for r in shuffled]))


def test_band_pairs_memory_does_not_scale_with_bands_times_pairs():
    # every row six times over, in all 16 bands: the same pair in every band is held once
    # (NumPy's allocations as tracemalloc counts them: 22x the keys' bytes before, 14x now)
    import tracemalloc

    from llmspec.runtime.clean.dedupe import band_pairs

    base = np.random.default_rng(5).integers(0, 2**63, size=(16, 10_000), dtype=np.uint64)
    keys = np.concatenate([base] * 6, axis=1)
    tracemalloc.start()
    try:
        pairs = band_pairs(keys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(np.unique(np.concatenate(pairs), axis=0)) == 10_000 * 15  # each group of six: all 15 pairs
    assert peak < 17 * keys.nbytes
