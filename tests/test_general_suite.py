"""builtin:general-v1 holds only prompts the base model really passes: a sample of them, run on
SmolLM2-135M-Instruct (greedy, as retention runs them), must all pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmspec.runtime.acceptance.retention import load_retention_suite

pytestmark = pytest.mark.slow


def test_the_base_model_passes_a_sample_of_general_v1():
    from llmspec.runtime.acceptance.runner import load_model
    from llmspec.runtime.models import resolve

    tests = load_retention_suite("builtin:general-v1", Path("."), system=None, max_new_tokens=48)
    sample = tests[::6]  # every area, ~20 prompts: about a CPU minute
    model = load_model(resolve.materialize(resolve.describe("builtin:smollm2-135m-instruct", Path("."))), device="cpu")
    try:
        runs = model.run(sample)
    finally:
        model.close()
    failed = [(r.name, r.output) for r in runs if not r.passed]
    assert not failed
