"""bench/near_dup.py still runs and prints what the README quotes from it: every method, its recall
against exact Jaccard, and ratios against datasketch taken run by run (the runs interleaved)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "near_dup.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_near_dup", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_near_dup_bench_interleaves_runs_and_prints_a_ratio_per_method(capsys, monkeypatch):
    pytest.importorskip("datasketch")
    pytest.importorskip("scipy")
    bench = _bench()
    order = []
    for name in ("run_llmspec_staged", "run_datasketch"):
        real = getattr(bench, name)
        def counted(texts, t, _real=real, _name=name):
            order.append(_name)
            return _real(texts, t)

        monkeypatch.setattr(bench, name, counted)
    # the methods table is built when report() runs, from the module's functions
    assert bench.main(["--only", "planted", "--docs", "400", "--planted", "40", "--thresholds", "0.8",
                       "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"threshold 0\.8: [\d,]+ pairs with exact Jaccard", out)
    recall = float(re.search(r"llmspec clean \(staged\) .* recall (\d\.\d+)", out).group(1))
    assert recall > 0.9  # one-word edits of 30-60-word documents are found
    for method in ("llmspec clean (staged)", "llmspec minhash_groups", "rensa's own LSH"):
        assert re.search(re.escape(method) + r" vs datasketch: [\d.]+x faster wall clock \([\d.]+-[\d.]+\), "
                         r"[\d.]+x in CPU time", out), method
    # run 1 of every method, then run 2 with the order turned by one: not two staged runs, then two of datasketch
    assert order == ["run_llmspec_staged", "run_datasketch", "run_datasketch", "run_llmspec_staged"]
