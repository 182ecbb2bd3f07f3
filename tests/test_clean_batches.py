"""The batched engine: the batch size never changes which rows are kept, how, or why."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import clean_batches, clean_to_files, run_cleaning
from llmspec.runtime.clean.near_stage import NearStage
from llmspec.runtime.clean.seen import SeenKeys
from llmspec.runtime.sources import read_source
from llmspec.runtime.sources.stream import iter_source
from llmspec.spec.load import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from make_dirty_tickets import write  # noqa: E402

RULES = """\
quality:
  rules:
    - drop_corrupt: {columns: [subject, body, reply]}
    - normalize: {columns: [subject, body, reply]}
    - require: {columns: [body, reply]}
    - reject_matching: {name: placeholder, column: reply, ignore_case: true, patterns: ['^(n/a|todo|tbd|-+|\\\\.+|lorem ipsum.*)$']}
    - redact_pii: {columns: [subject, body, reply]}
    - dedupe: {name: exact_dup, columns: [subject, body, reply], method: exact}
    - dedupe: {name: near_dup, columns: [body, reply], method: minhash, threshold: 0.8, ngram: 3}
    - length: {name: short, column: body, min_chars: 150}
    - dedupe: {name: near_reply, columns: [reply], method: minhash, threshold: 0.5, ngram: 2, unit: word}
    - dedupe: {name: same_subject, columns: [subject], method: fingerprint}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batches")
    write(root / "data" / "tickets.jsonl", 6000, seed=11)
    (root / "llmspec.yaml").write_text(
        "llmspec: 1\nproject: batches\nbase_model: {id: builtin:tiny}\n"
        "sources:\n  tickets: {path: data/tickets.jsonl, format: jsonl}\n" + RULES
        + "format:\n  style: chat\n  map:\n    tickets: {user: body, assistant: reply}\n")
    return root


def _whole(project: Path):
    loaded = load_spec(project / "llmspec.yaml")
    src = loaded.spec.sources["tickets"]
    batch = read_source("tickets", src, loaded.base_dir)
    plan = compile_cleaning(loaded.spec.quality, "tickets", dict(batch.rows.schema))
    return loaded, src, plan, run_cleaning(batch, plan)


@pytest.mark.parametrize("rows,spill_to_disk", [(250, True), (997, False)])
def test_batch_size_does_not_change_kept_rows_rejects_or_counts(project, tmp_path, rows, spill_to_disk, monkeypatch):
    from llmspec.runtime.clean.engine import Spill

    if spill_to_disk:  # every batch waiting for a MinHash rule goes through a Parquet file
        monkeypatch.setattr(Spill, "MEMORY_BUDGET", 0)
        # band keys read back in several slices of the key space; key runs capped small
        monkeypatch.setattr(NearStage, "PASS_ROWS", 700)
        monkeypatch.setattr(SeenKeys, "MAX_RUN", 1000)
    loaded, src, plan, whole = _whole(project)
    # every rule fires, and the dedupes find rows across batches, not only inside one
    assert all(whole.rejected[r] > 0 for r in ("corrupt", "exact_dup", "near_dup", "short", "same_subject",
                                               "near_reply"))
    res = clean_to_files(iter_source("tickets", src, loaded.base_dir, batch_rows=rows), plan,
                         tmp_path / "kept.parquet", tmp_path / "rejects.parquet", profile=True, scratch=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.parquet", "rejects.parquet"]  # spills, parts gone
    assert (res.rows_in, res.rows_kept, res.rejected, res.modified) == \
        (whole.rows_in, whole.rows_kept, whole.rejected, whole.modified)
    assert pl.read_parquet(tmp_path / "kept.parquet").equals(whole.kept)
    assert pl.read_parquet(tmp_path / "rejects.parquet").equals(whole.rejects)
    # in memory, batch by batch, likewise
    again = clean_batches(iter_source("tickets", src, loaded.base_dir, batch_rows=rows), plan)
    assert again.kept.equals(whole.kept) and again.rejects.equals(whole.rejects)


def test_duplicates_across_batches_name_the_row_kept_in_an_earlier_batch(project):
    loaded, src, plan, whole = _whole(project)
    res = clean_batches(iter_source("tickets", src, loaded.base_dir, batch_rows=300), plan)
    line = lambda c: pl.col(c).str.extract(r":(\d+)$").cast(pl.Int64)  # noqa: E731
    dups = res.rejects.filter(pl.col("_rule").is_in(["exact_dup", "near_dup"])).select(
        line("_origin").alias("row"), line("_duplicate_of").alias("of"))
    assert dups.height and (dups["of"] < dups["row"]).all()
    assert ((dups["row"] - 1) // 300 != (dups["of"] - 1) // 300).sum() > dups.height // 2


def test_streamed_profile_equals_the_whole_frame_profile(project, tmp_path):
    from llmspec.runtime.sources.profile import profile_frame

    loaded, src, plan, whole = _whole(project)
    res = clean_to_files(iter_source("tickets", src, loaded.base_dir, batch_rows=400), plan,
                         tmp_path / "k.parquet", None, profile=True)
    assert res.profile == profile_frame(whole.kept.drop("_origin"))
    assert not (tmp_path / "rejects.parquet").exists()


def test_expectations_counted_over_batches_match_the_whole_source(project):
    from llmspec.runtime.sources.expect import Tally, check_expectations
    from llmspec.spec.models import ExpectSpec

    loaded = load_spec(project / "llmspec.yaml")
    src = loaded.spec.sources["tickets"].model_copy(update={"expect": ExpectSpec(
        min_rows=10_000, max_null_fraction=0.001, max_corrupt_fraction=0.001)})
    tally = Tally("tickets")
    for _ in tally.watch(iter_source("tickets", src, loaded.base_dir, batch_rows=500)):
        pass
    got = [(d.code, d.message) for d in check_expectations(tally, src)]
    want = [(d.code, d.message) for d in check_expectations(read_source("tickets", src, loaded.base_dir), src)]
    assert got == want and len(got) == 3


def test_seen_keys_hold_hashes_in_merged_runs():
    import numpy as np

    seen = SeenKeys()
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=(5000, 2), dtype=np.uint64)
    for lo in range(0, 5000, 700):
        seen.add(h[lo:lo + 700, 0], h[lo:lo + 700, 1], pl.Series([f"r{i}" for i in range(lo, min(lo + 700, 5000))]))
    assert len(seen) == 5000 and len(seen.runs) <= 4  # merged like a binary counter
    got = seen.find(h[[0, 4999, 2500], 0], h[[0, 4999, 2500], 1]).to_list()
    assert got == ["r0", "r4999", "r2500"]
    # the first hash alone is not enough
    assert seen.find(h[[7], 0], h[[8], 1]).to_list() == [None]


def test_state_kept_across_batches_does_not_grow_with_the_rows_size(tmp_path):
    # what outlives a batch is a few bytes a distinct row, whatever the rows' or origins' length
    import numpy as np

    from llmspec.runtime.sources.profile import ProfileParts

    rng = np.random.default_rng(3)
    n, batch = 60_000, 5_000
    for width in (10, 2_000):
        seen, prof = SeenKeys(), ProfileParts()
        prefix = "data/" + "d" * width + "/tickets.jsonl:"
        for lo in range(0, n, batch):
            h = rng.integers(0, 2**63, size=(batch, 2), dtype=np.uint64)
            seen.add(h[:, 0], h[:, 1], pl.Series([f"{prefix}{i}" for i in range(lo + 1, lo + batch + 1)]))
            lengths = rng.integers(0, width, size=batch)
            prof.add(pl.DataFrame({"body": ["x" * int(k) for k in lengths], "n": h[:, 0]}))
        assert len(seen) == n and seen.nbytes() <= 33 * n + 100 * (width + 100)
        assert seen.find(h[[0], 0], h[[0], 1]).to_list() == [f"{prefix}{n - batch + 1}"]
        assert prof.nbytes() <= 8 * n + 100 * width and prof.result()["duplicate_rows"] == 0
    # runs stop merging at MAX_RUN keys: a merge never copies the whole state
    seen = SeenKeys()
    seen.MAX_RUN = 4096
    for lo in range(0, 20_000, 1000):
        h = rng.integers(0, 2**63, size=(1000, 2), dtype=np.uint64)
        seen.add(h[:, 0], h[:, 1], pl.Series([f"r:{i}" for i in range(lo + 1, lo + 1001)]))
    assert max(len(r[0]) for r in seen.runs) <= 4096 and len(seen.runs) <= 8


def test_near_stage_keeps_no_row_in_memory_with_a_spill_folder(project, tmp_path):
    loaded, src, plan, whole = _whole(project)
    step = next(s for s in plan.steps if s.reason == "near_dup")
    stage = NearStage(step, tmp_path)
    for batch in iter_source("tickets", src, loaded.base_dir, batch_rows=1000):
        stage.add(batch.rows.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("__ord")))
    assert stage.parts and all(isinstance(f, str) for part in stage.parts for f in part[1:])


def test_llmspec_clean_out_writes_what_run_cleaning_returns(project, tmp_path):
    import shutil

    from click.testing import CliRunner

    from llmspec.commands.clean import clean_command

    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    spec = proj / "llmspec.yaml"
    spec.write_text(spec.read_text() + "execution: {batch_rows: 700}\n")
    r = CliRunner().invoke(clean_command, [str(spec), "--json", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    _, _, _, whole = _whole(project)
    assert pl.read_parquet(tmp_path / "out" / "tickets.parquet").equals(whole.kept)
    assert pl.read_parquet(tmp_path / "out" / "tickets.rejects.parquet").equals(whole.rejects)


def test_llmspec_clean_imports_neither_axolotl_nor_torch(project, tmp_path):
    # cleaning never trains: Axolotl's check and torch's import (seconds, ~600 MiB of the peak) stay out
    import shutil
    import subprocess

    proj = tmp_path / "p"
    shutil.copytree(project, proj)
    code = ("import sys; from llmspec.cli import cli\n"
            "try: cli(['clean', 'llmspec.yaml', '--json'], standalone_mode=False)\n"
            "except SystemExit: pass\n"
            "from llmspec.compiler.axolotl_config import cuda_driver_present\n"
            "assert 'axolotl' not in sys.modules, 'axolotl imported'\n"
            "assert cuda_driver_present() or 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"rows_kept"' in r.stdout


def test_stored_rows_are_read_back_in_exact_batches_in_flat_memory(tmp_path):
    # the clean stage reads the sources stage's Parquet batch by batch: every row once, in order,
    # and Arrow memory bounded by a row group or two (iter_batches grew ~80 bytes a row)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmspec.runtime.engine.parquet_out import iter_row_batches

    import numpy as np

    n = 240_000
    noise = np.random.default_rng(0).integers(0, 256, size=(n, 75), dtype=np.uint8)  # incompressible: a 36 MB file
    table = pa.table({"i": pa.array(range(n), pa.int64()), "text": pa.array([bytes(r).hex() for r in noise])})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=7_000)
    del table, noise
    # Arrow's allocation count is process-wide: what other tests on this worker still hold is the floor.
    floor = pa.total_allocated_bytes()
    sizes, ids, most = [], [], 0
    for part in iter_row_batches(tmp_path / "rows.parquet", 2_500):
        sizes.append(part.num_rows)
        ids.append(part.column("i").to_numpy())
        most = max(most, pa.total_allocated_bytes() - floor)
        del part
    assert set(sizes[:-1]) == {2_500} and sum(sizes) == n
    assert np.array_equal(np.concatenate(ids), np.arange(n))
    assert most < 8 * 7_000 * 170  # a few row groups' worth (iter_batches: 40 MB, the whole file)


def test_candidates_grouped_in_small_pieces_give_the_groups_of_one_piece(project, tmp_path, monkeypatch):
    # the MinHash candidates are grouped a piece (whole bucket components) at a time, so memory
    # holds one piece: tiny pieces still find exactly the rows, rejects and details of one piece
    import llmspec.runtime.clean.near_stage as near_stage
    from llmspec.runtime.clean.near_pieces import PieceTexts

    loaded, src, plan, whole = _whole(project)  # in memory, default piece size: one piece here
    heights, grouped = [], near_stage.groups

    def spy(cand, a, bits=None):
        heights.append((a["threshold"], cand.height))
        return grouped(cand, a, bits)

    monkeypatch.setattr(near_stage, "groups", spy)
    monkeypatch.setattr(NearStage, "PIECE_SHINGLES", 300)
    monkeypatch.setattr(PieceTexts, "BUFFER", 0)  # every batch's candidates through per-piece files
    monkeypatch.setattr(NearStage, "PASS_ROWS", 500)  # components found over several key slices
    res = clean_to_files(iter_source("tickets", src, loaded.base_dir, batch_rows=800), plan,
                         tmp_path / "kept.parquet", tmp_path / "rejects.parquet", scratch=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.parquet", "rejects.parquet"]
    near_dup = [h for t, h in heights if t == 0.8]  # near_reply's templated replies: few, large components
    assert len(near_dup) > 20 and max(near_dup) < sum(near_dup) / 10 and len(heights) > len(near_dup) + 1
    assert (res.rows_kept, res.rejected) == (whole.rows_kept, whole.rejected)
    assert pl.read_parquet(tmp_path / "kept.parquet").equals(whole.kept)
    assert pl.read_parquet(tmp_path / "rejects.parquet").equals(whole.rejects)


def test_bucket_components_join_rows_sharing_a_key_above_the_bits_in_any_band():
    # keys equal above the low ``bits`` are one bucket for dedupe.band_pairs (it puts the row number
    # there), across bands too: the pieces must keep such rows together, whatever the passes
    import numpy as np

    from llmspec.runtime.clean.dedupe import components
    from llmspec.runtime.clean.near_pieces import bucket_components, cut

    rng = np.random.default_rng(5)
    n, bands, bits = 3000, 4, 12
    keys = rng.integers(0, 2**63, size=(bands, n), dtype=np.uint64)
    share = rng.integers(0, n, size=(bands, 400))
    keys[np.arange(bands)[:, None], share] = keys[np.arange(bands)[:, None], rng.integers(0, n, size=(bands, 400))]
    keys[2, 10] = keys[0, 20] ^ np.uint64(5)  # differs below the bits only, in another band
    chunks = lambda b: (keys[b, lo:lo + 700] for lo in range(0, n, 700))  # noqa: E731
    one = bucket_components(n, bits, bands, chunks, max_keys=10**9)
    assert np.array_equal(one, bucket_components(n, bits, bands, chunks, max_keys=1000))  # 12 passes
    top = (keys >> np.uint64(bits)).ravel()
    order = np.argsort(top, kind="stable")
    ids = np.tile(np.arange(n), bands)[order]
    same = np.flatnonzero(top[order][1:] == top[order][:-1])
    assert np.array_equal(one, components(n, np.stack([ids[same], ids[same + 1]], 1)))
    assert one[10] == one[20] == min(10, one[20])
    piece, pieces = cut(one, np.full(n, 7, np.uint32), 700)
    assert pieces > 10 and all(len(set(piece[one == r])) == 1 for r in np.unique(one))
    assert (np.diff(piece[np.unique(one)]) >= 0).all()  # in the order of their first row


def test_a_one_batch_source_groups_its_candidates_from_the_shingles_that_found_them(project, monkeypatch):
    # read in one batch, the MinHash rule keeps that batch's shingles and sketch for grouping its
    # candidates instead of shingling their texts again; the groups are those of many batches
    from llmspec.runtime.clean import dedupe

    loaded, src, plan, _ = _whole(project)
    calls, shingle = [], dedupe.shingle_hashes

    def spy(texts, **kw):
        calls.append(texts.len())
        return shingle(texts, **kw)

    monkeypatch.setattr(dedupe, "shingle_hashes", spy)
    one = run_cleaning(read_source("tickets", src, loaded.base_dir), plan)
    minhash_rules = sum(s.kind == "dedupe" and s.args["method"] == "minhash" for s in plan.steps)
    assert len(calls) == minhash_rules  # every row once per rule, candidates not again
    calls.clear()
    many = clean_batches(iter_source("tickets", src, loaded.base_dir, batch_rows=900), plan)
    assert len(calls) > 2 * minhash_rules  # batches, then each rule's candidates again
    assert many.kept.equals(one.kept) and many.rejects.equals(one.rejects)


def test_a_batch_is_sketched_on_its_own_thread_while_the_next_goes_through_the_rules(project, tmp_path, monkeypatch):
    """The MinHash sketch of batch k (``NearStage.add``) overlaps the rules of batch k+1: here the
    first sketch waits until the second batch's rules have started, which never happens if the
    two run one after the other (the wait then times out and the test fails)."""
    import threading

    from llmspec.runtime.clean import engine as engine_mod

    loaded, src, plan, whole = _whole(project)
    second_batch_in_rules = threading.Event()
    overlapped, threads = [], []
    real_add, real_apply = NearStage.add, engine_mod.Engine._apply
    calls = {"apply": 0}

    def add(self, df):
        threads.append(threading.current_thread().name)
        if len(threads) == 1 and self.step.reason == "near_dup":
            overlapped.append(second_batch_in_rules.wait(timeout=30))
        return real_add(self, df)

    def apply(self, df, steps, done, total):
        calls["apply"] += 1
        if calls["apply"] == 2:
            second_batch_in_rules.set()
        return real_apply(self, df, steps, done, total)

    monkeypatch.setattr(NearStage, "add", add)
    monkeypatch.setattr(engine_mod.Engine, "_apply", apply)
    res = clean_to_files(iter_source("tickets", src, loaded.base_dir, batch_rows=1000), plan,
                         tmp_path / "kept.parquet", tmp_path / "rejects.parquet", scratch=tmp_path)
    assert overlapped == [True]
    assert threads and all(t.startswith("llmspec-sketch") for t in threads)
    assert (res.rows_kept, res.rejected) == (whole.rows_kept, whole.rejected)
    assert pl.read_parquet(tmp_path / "kept.parquet").equals(whole.kept)


def test_an_error_while_sketching_a_batch_stops_the_clean_with_that_error(project, tmp_path, monkeypatch):
    loaded, src, plan, _ = _whole(project)
    real_add = NearStage.add
    seen = []

    def add(self, df):
        seen.append(df.height)
        if len(seen) == 3:
            raise MemoryError("sketch of batch 3")
        return real_add(self, df)

    monkeypatch.setattr(NearStage, "add", add)
    with pytest.raises(MemoryError, match="batch 3"):
        clean_to_files(iter_source("tickets", src, loaded.base_dir, batch_rows=1000), plan,
                       tmp_path / "kept.parquet", tmp_path / "rejects.parquet", scratch=tmp_path)
    assert not (tmp_path / "kept.parquet").exists()
    assert len(seen) == 3  # nothing sketched after the failure
