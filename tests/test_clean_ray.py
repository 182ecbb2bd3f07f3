"""The Ray engine on a local Ray (127.0.0.1, started here): the local engine's exact results."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import clean_to_files
from llmspec.runtime.sources.stream import iter_source
from llmspec.spec.load import load_spec

ray = pytest.importorskip("ray")  # `make test` installs it (the dev extra); a bare install has no Ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_clean_batches import RULES as ALL_RULES  # noqa: E402

# the per-row rules, one exact and one MinHash dedupe: each Ray shuffle costs seconds of scheduling
RULES = "\n".join(ALL_RULES.splitlines()[:9]) + "\n"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from make_dirty_tickets import write  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=300 * 2**20, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def test_ray_engine_keeps_and_rejects_exactly_what_the_local_engine_does(local_ray, tmp_path):
    from llmspec.runtime.clean.ray_engine import clean_on_ray

    write(tmp_path / "data" / "tickets.jsonl", 1500, seed=5)
    (tmp_path / "llmspec.yaml").write_text(
        "llmspec: 1\nproject: on-ray\nbase_model: {id: builtin:tiny}\n"
        "sources:\n  tickets: {path: data/tickets.jsonl, format: jsonl}\n" + RULES
        + "format:\n  style: chat\n  map:\n    tickets: {user: body, assistant: reply}\n"
        "execution: {engine: ray, batch_rows: 500}\n")
    loaded = load_spec(tmp_path / "llmspec.yaml")
    src = loaded.spec.sources["tickets"]
    batches = lambda: iter_source("tickets", src, loaded.base_dir, batch_rows=500)  # noqa: E731
    plan = compile_cleaning(loaded.spec.quality, "tickets", dict(next(batches()).rows.schema))
    local = clean_to_files(batches(), plan, tmp_path / "l.parquet", tmp_path / "l.rej.parquet", profile=True)
    on_ray = clean_on_ray(batches(), plan, tmp_path / "r.parquet", tmp_path / "r.rej.parquet", profile=True)
    assert all(local.rejected[r] > 0 for r in ("corrupt", "drop_corrupt", "placeholder", "exact_dup", "near_dup"))
    assert local.modified["redact_pii"] > 0
    assert (on_ray.rows_in, on_ray.rows_kept, on_ray.rejected, on_ray.modified, on_ray.notes, on_ray.profile) == \
        (local.rows_in, local.rows_kept, local.rejected, local.modified, local.notes, local.profile)
    assert pl.read_parquet(tmp_path / "r.parquet").equals(pl.read_parquet(tmp_path / "l.parquet"))
    assert pl.read_parquet(tmp_path / "r.rej.parquet").equals(pl.read_parquet(tmp_path / "l.rej.parquet"))
    assert on_ray.samples.equals(local.samples)
