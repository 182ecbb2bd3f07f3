"""Property: whatever the rows and the rules, every row is accounted for exactly once."""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import run_cleaning
from llmspec.runtime.sources import SourceBatch
from llmspec.spec.models import QualitySpec

POOL = ["", "  ", "N/A", "hello world", "Hello  World", "héllo wörld!", "ＦＵＬＬ", "jo@example.com",
        "card 4111 1111 1111 1111", "ip 10.0.0.1", "bad\x07byte", "repl \ufffd", "tab\tok", "x" * 60,
        "the quick brown fox jumps", "the quick brown fox jumped"]
ALPHABET = "ab xyz019@.-\t\n\x00\x07\ufffdé"
text = st.one_of(st.none(), st.sampled_from(POOL), st.text(alphabet=ALPHABET, max_size=20))
column = st.sampled_from(["a", "b"])
columns = st.lists(column, min_size=1, max_size=2, unique=True)

rule = st.one_of(
    st.builds(lambda cc: {"drop_corrupt": {"control_chars": cc}}, st.booleans()),
    st.builds(lambda case, ws: {"normalize": {"case": case, "whitespace": ws}},
              st.sampled_from(["lower", "none"]), st.sampled_from(["collapse", "strip", "none"])),
    st.builds(lambda cols, blank: {"require": {"columns": cols, "blank_is_missing": blank}}, columns, st.booleans()),
    st.builds(lambda c: {"fill": {"column": c, "value": "filled"}}, column),
    st.just({"fill": {"column": "a", "from_column": "b"}}),
    st.builds(lambda kind, cols, pats, ic: {kind: {"columns": cols, "patterns": pats, "ignore_case": ic}},
              st.sampled_from(["reject_matching", "keep_matching"]), columns,
              st.lists(st.sampled_from(["^$", "x", r"\d", "^N/A$", "world"]), min_size=1, max_size=3),
              st.booleans()),
    st.builds(lambda c, lo, hi: {"length": {"column": c, "min_chars": lo, "max_chars": lo + hi}},
              column, st.integers(0, 5), st.integers(1, 30)),
    st.builds(lambda c, t: {"length": {"column": c, "max_tokens": t}}, column, st.integers(1, 6)),
    st.just({"redact_pii": {}}),
    st.builds(lambda cols, m: {"dedupe": {"columns": cols, "method": m}}, columns,
              st.sampled_from(["exact", "fingerprint"])),
    st.builds(lambda unit, n, t: {"dedupe": {"columns": ["a"], "method": "minhash", "unit": unit, "ngram": n,
                                             "threshold": t, "permutations": 32}},
              st.sampled_from(["word", "char"]), st.integers(1, 3), st.sampled_from([0.3, 0.5, 0.9])),
)


@st.composite
def batches(draw):
    n = draw(st.integers(0, 25))
    a = draw(st.lists(text, min_size=n, max_size=n))
    b = draw(st.lists(text, min_size=n, max_size=n))
    rows = pl.DataFrame({"a": a, "b": b, "_origin": [f"f:{i}" for i in range(n)]},
                        schema={"a": pl.String, "b": pl.String, "_origin": pl.String})
    k = draw(st.integers(0, 3))
    rejected = pl.DataFrame({"_rule": draw(st.lists(st.sampled_from(["corrupt", "contract"]), min_size=k, max_size=k)),
                             "_detail": ["unreadable"] * k, "_origin": [f"r:{i}" for i in range(k)],
                             "_raw": [b"\xff"] * k},
                            schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})
    return SourceBatch("s", rows, rejected, n + k, ["f"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), rules=st.lists(rule, max_size=6))
def test_every_row_is_kept_or_rejected_exactly_once(batch, rules):
    q = QualitySpec.model_validate({"rules": rules})
    result = run_cleaning(batch, compile_cleaning(q, "s", dict(batch.rows.schema)))

    assert result.rows_in == result.rows_kept + sum(result.rejected.values())
    kept = result.kept["_origin"].to_list()
    gone = result.rejects["_origin"].to_list()
    everything = batch.rows["_origin"].to_list() + batch.rejected["_origin"].to_list()
    assert sorted(kept + gone) == sorted(everything)  # no row lost, none twice
    assert len(set(kept) | set(gone)) == len(everything)
    assert Counter(result.rejects["_rule"].to_list()) == +Counter(result.rejected)
    assert kept == sorted(kept, key=lambda o: int(o[2:]))  # source order survives
    dups = result.rejects.filter(pl.col("_duplicate_of").is_not_null())
    for own, of in zip(dups["_origin"], dups["_duplicate_of"]):
        assert of != own and of in everything and int(of[2:]) < int(own[2:])  # the kept row came first
    assert all(0 <= n <= result.rows_in for n in result.modified.values())
    assert result.kept.columns == ["a", "b", "_origin"]
