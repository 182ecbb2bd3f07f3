"""split: deterministic by seed, stable as data grows, stratified, leakage removed and counted."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest

from llmspec.compiler.formatting import compile_format
from llmspec.runtime.dataset.build import build_dataset, normalise
from llmspec.spec.errors import DataError
from llmspec.spec.models import FormatSpec, SplitSpec

PLAN = compile_format(FormatSpec.model_validate(
    {"style": "chat", "map": {"faq": {"user": "question", "assistant": "answer"}}}))


def faq(n: int, *, product=None, start: int = 0) -> pl.DataFrame:
    idx = range(start, start + n)
    cols = {"question": [f"Question number {i}?" for i in idx], "answer": [f"Answer number {i}." for i in idx],
            "_origin": [f"faq.jsonl:{i + 1}" for i in idx]}
    if product is not None:
        cols["product"] = [product(i) for i in idx]
    return pl.DataFrame(cols)


def split_of(res) -> tuple[set[str], set[str]]:
    origins = [json.loads(x) for x in res.origins_path.read_text().splitlines()]
    return ({o["origin"] for o in origins if o["split"] == "train"},
            {o["origin"] for o in origins if o["split"] == "eval"})


def build(tmp_path, frame, name="out", **split):
    return build_dataset({"faq": frame}, PLAN, SplitSpec(**split), tmp_path / name)


def test_same_seed_same_split_byte_for_byte(tmp_path):
    a = build(tmp_path, faq(200), "a", eval_fraction=0.1, seed=7)
    b = build(tmp_path, faq(200), "b", eval_fraction=0.1, seed=7)
    assert split_of(a) == split_of(b)
    assert a.hashes == b.hashes
    assert (a.train_size, a.eval_size) == (180, 20)


def test_row_order_does_not_matter(tmp_path):
    a = build(tmp_path, faq(100), "a", eval_fraction=0.2, seed=3)
    b = build(tmp_path, faq(100).reverse(), "b", eval_fraction=0.2, seed=3)
    assert split_of(a) == split_of(b)


def test_different_seed_different_split(tmp_path):
    a = build(tmp_path, faq(200), "a", eval_fraction=0.1, seed=1)
    b = build(tmp_path, faq(200), "b", eval_fraction=0.1, seed=2)
    assert split_of(a)[1] != split_of(b)[1]
    assert len(split_of(a)[1]) == len(split_of(b)[1]) == 20


def test_adding_rows_moves_few_existing_examples(tmp_path):
    before = split_of(build(tmp_path, faq(300), "a", eval_fraction=0.1, seed=42))[1]
    grown = pl.concat([faq(300), faq(30, start=300)])
    after = split_of(build(tmp_path, grown, "b", eval_fraction=0.1, seed=42))[1]
    # At most about as many examples change sides as were added; the rest stay put.
    assert len(before - after) <= 30
    assert len(before & after) >= len(before) - 30


def test_stratify_keeps_proportions_per_value(tmp_path):
    products = {0: "router", 1: "plug", 2: "plug", 3: "camera"}  # router 25%, plug 50%, camera 25%
    res = build(tmp_path, faq(400, product=lambda i: products[i % 4]), eval_fraction=0.2, seed=5,
                stratify="product")
    train, ev = split_of(res)
    rows = faq(400, product=lambda i: products[i % 4])
    by_origin = dict(zip(rows["_origin"], rows["product"]))
    for value, n in (("router", 100), ("plug", 200), ("camera", 100)):
        assert sum(1 for o in ev if by_origin[o] == value) == round(n * 0.2)
        assert sum(1 for o in train if by_origin[o] == value) == n - round(n * 0.2)


def test_stratify_column_must_exist_somewhere(tmp_path):
    with pytest.raises(DataError) as err:
        build(tmp_path, faq(10), eval_fraction=0.2, stratify="product")
    assert err.value.first.code == "split-stratify"


def test_leakage_after_normalisation_is_removed_from_eval_and_counted(tmp_path):
    # Twins that differ only in case, whitespace and full-width characters (NFKC). Equal texts
    # share a rank, so without strata they fall on the same side; strata are split one by one,
    # which is how twins end up on both sides: stratum "y" must send one of its two to eval.
    assert normalise("Ｗｈｅｒｅ  is\tMY") == "where is my"
    twins = pl.DataFrame({
        "question": ["How do I RESET my router?", "how do i   reset my router?", "ＨＯＷ DO I RESET MY ROUTER?"],
        "answer": ["Hold reset 10s.", "hold RESET 10s.", "Hold reset   10s."],
        "_origin": ["a:1", "a:2", "a:3"],
        "product": ["x", "y", "y"],
    })
    res = build(tmp_path, pl.concat([twins, faq(10, product=lambda i: "z")]), eval_fraction=0.4, seed=11,
                stratify="product")
    assert res.leakage_removed == 1
    (leak,) = res.leakage
    assert leak["origin"] in {"a:2", "a:3"} and leak["train_origin"] in {"a:1", "a:2", "a:3"}
    train_keys = {normalise(_text(r)) for r in _records(res.train_path)}
    eval_keys = {normalise(_text(r)) for r in _records(res.eval_path)}
    assert not train_keys & eval_keys
    assert (res.train_size, res.eval_size) == (8, 4)  # x: 1+0, y: 1+1 (removed), z: 6+4
    assert res.to_dict()["leakage_removed"] == 1


def test_eval_fraction_zero_writes_no_eval_and_removes_a_stale_one(tmp_path):
    first = build(tmp_path, faq(20), eval_fraction=0.25)
    assert first.eval_path is not None and first.eval_path.exists()
    again = build(tmp_path, faq(20), eval_fraction=0.0)
    assert again.eval_path is None and not (tmp_path / "out" / "eval.jsonl").exists()
    assert again.train_size == 20 and "eval" not in again.paths


def test_hashes_are_of_the_file_contents_and_no_temp_files_are_left(tmp_path):
    res = build(tmp_path, faq(30), eval_fraction=0.2)
    for name, digest in res.hashes.items():
        assert hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.jsonl", "origins.jsonl", "train.jsonl"]
    assert all("_origin" not in line for line in res.train_path.read_text().splitlines())


def _records(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _text(record):
    return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])
