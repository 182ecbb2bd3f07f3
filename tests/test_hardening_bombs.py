"""Class 3 of issue 13: hostile specs and outputs cannot exhaust the machine.

Templates are parsed, never evaluated, when a spec is validated or compiled; every render is
bounded in time and size and a row over budget is rejected with the reason and counted;
assertion regexes run in Polars' linear-time engine, in the cleaning rules' dialect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

from llmspec.compiler.formatting import TIME_STRIKES, compile_format
from llmspec.runtime.acceptance.assertions import evaluate_test, parse_expectation
from llmspec.runtime.dataset.build import RULE_BUDGET, build_dataset
from llmspec.spec.models import FormatSpec, SplitSpec
from llmspec.spec.sandbox import MAX_CHARS, TemplateBudgetError, TemplateTimeout
from llmspec.spec.templates import check_template, sandbox

# Each allocates gigabytes, or runs for hours, when evaluated naively.
SIZE_BOMBS = {
    "repeat": "{{ 'x' * 10**10 }}",
    "repeat column": "{{ question * 10**9 }}",
    "power": "{{ 10 ** (10 ** 10) }}",
    "printf width": "{{ '%0999999999d' | format(1) }}",
    "printf width, keywords": "{{ '%(a)0999999999d' | format(a=1) }}",
    "printf operator": "{{ '%.999999999f' % 1.5 }}",
    "printf star": "{{ '%*d' % (10**10, 1) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "str.format nested width": "{{ '{:{}}'.format(1, 10**10) }}",
    "ljust": "{{ question.ljust(10**10) }}",
    "center filter": "{{ question | center(10**10) }}",
    "indent filter": "{{ ((question ~ '\n') * 1000) | indent(10**6) }}",
    "list repeat": "{{ [question] * 10**9 }}",
    "nested literals": "{% set a = [question * 100000] * 40 %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
                       "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{{ c }}",
    "doubling in a namespace": "{% set ns = namespace(s=question) %}{% for i in range(100) %}"
                               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "doubling with +": "{% set ns = namespace(s=question) %}{% for i in range(100) %}"
                       "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "list doubling": "{% set ns = namespace(l=[question]) %}{% for i in range(100) %}"
                     "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
    "replace": "{{ (question * 1000) | replace('', question * 1000) }}",
    "join": "{{ ([question * 1000] * 4000) | join(question * 1000) }}",
    "batch fill": "{{ [1] | batch(10**9, 'x') | list }}",
    "output": "{% for i in range(100000) %}{{ question * 100 }}{% endfor %}",
}
TIME_BOMBS = {
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "loops over a list": "{% set xs = range(100000) | list %}{% for i in xs %}{% for j in xs %}{% endfor %}"
                         "{% endfor %}",
    "macro recursion": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
}
BOMBS = {**SIZE_BOMBS, **TIME_BOMBS}


def fmt(mapping: dict) -> FormatSpec:
    return FormatSpec.model_validate({"style": "completion", "map": mapping})


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_checking_and_compiling_a_bomb_evaluates_nothing(name):
    # Jinja folds constants while analysing (meta.find_undeclared_variables) and compiling:
    # before, `'x' * 10**10` was allocated by `llmspec validate` itself.
    start = time.perf_counter()
    result = check_template(BOMBS[name])
    assert result.error_code is None, result.error
    plan = compile_format(fmt({"s": {"text": BOMBS[name]}}))
    sandbox(keep_trailing_newline=True).from_string(BOMBS[name])
    assert plan.sources["s"].fields[0].kind == "template"
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("name", sorted(SIZE_BOMBS))
def test_a_size_bomb_is_refused_before_it_allocates(name):
    env = sandbox()
    start = time.perf_counter()
    with pytest.raises(TemplateBudgetError):
        env.render(env.from_string(SIZE_BOMBS[name]), {"question": "why?"})
    # refused by size, or on a loaded machine by time: either way before gigabytes were built
    assert time.perf_counter() - start < env.time_budget_s + 1.0


@pytest.mark.parametrize("name", sorted(TIME_BOMBS))
def test_a_time_bomb_stops_at_the_time_budget(name):
    env = sandbox()
    env.time_budget_s = 0.3
    start = time.perf_counter()
    with pytest.raises(TemplateTimeout):
        env.render(env.from_string(TIME_BOMBS[name]), {"question": "why?"})
    assert time.perf_counter() - start < 1.5


def test_lipsum_is_refused_at_validate():
    result = check_template("{{ lipsum(10**6) }}")
    assert result.error_code == "unsafe-template" and "lipsum" in result.error


def test_ordinary_templates_still_render_the_same():
    env = sandbox()
    template = ("Q: {{ question | upper }} {{ '%5d' % 3 }} {{ '{:>4}'.format(7) }} {{ [1, 2] | join(',') }} "
                "{% for x in range(3) %}{{ loop.index }}/{{ loop.length }}{% endfor %} {{ 'ab' * 2 }} "
                "{{ question.ljust(6, '.') }} {{ 2 ** 10 }} {{ (question ~ '!') | center(9) }}")
    assert env.render(env.from_string(template), {"question": "why?"}) == \
        "Q: WHY?     3    7 1,2 1/32/33/3 abab why?.. 1024   why?!  "
    assert env.render(env.from_string("{{ 2 ** 65000 > 0 }}"), {}) == "True"
    big = "y" * (MAX_CHARS - 10)
    assert env.render(env.from_string("{{ q }}"), {"q": big}) == big  # the budget is the budget, not less


def test_rows_over_budget_are_rejected_with_the_reason_and_counted(tmp_path, monkeypatch):
    mapping = {"s": {"text": "{% if question == 'bomb' %}{{ question * 10**9 }}{% else %}{{ question }}{% endif %}"},
               "t": {"text": TIME_BOMBS["nested range loops"]}}
    plan = compile_format(fmt(mapping))
    rows = pl.DataFrame({"question": ["ok", "bomb", "fine"], "_origin": ["a:1", "a:2", "a:3"]})
    slow = pl.DataFrame({"question": [f"q{i}" for i in range(TIME_STRIKES + 3)],
                         "_origin": [f"b:{i}" for i in range(TIME_STRIKES + 3)]})
    from llmspec.spec import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "TIME_BUDGET_S", 0.2)
    start = time.perf_counter()
    result = build_dataset({"s": rows, "t": slow}, plan, SplitSpec(eval_fraction=0.0), tmp_path)
    elapsed = time.perf_counter() - start
    assert result.per_source["s"].examples == 2 and result.per_source["s"].rejected == {RULE_BUDGET: 1}
    counts = result.per_source["t"]
    assert counts.rows_in == counts.examples + sum(counts.rejected.values()) == TIME_STRIKES + 3
    assert counts.rejected == {RULE_BUDGET: TIME_STRIKES + 3}
    # after TIME_STRIKES timeouts the template is not run again: the rest cost nothing
    assert elapsed < 0.2 * TIME_STRIKES + 2.0
    messages = result.rejects.filter(pl.col("source") == "t")["message"].to_list()
    assert sum("not run" in m for m in messages) == 3
    bomb = result.rejects.filter(pl.col("source") == "s").row(0, named=True)
    assert bomb["_origin"] == "a:2" and "over budget" in bomb["message"]


# ----------------------------------------------------------------------------- the machine itself

_SPEC_BOMBS = {"repeat": SIZE_BOMBS["repeat"], "printf": SIZE_BOMBS["printf width"], "ljust": SIZE_BOMBS["ljust"],
               "list": SIZE_BOMBS["list repeat"], "loops": TIME_BOMBS["nested range loops"],
               "doubling": SIZE_BOMBS["doubling in a namespace"]}

_LIMITED = textwrap.dedent("""\
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.argv = ["llmspec", *sys.argv[2:]]
    from llmspec.cli import main
    main()
""")


def _bomb_project(tmp_path, bombs: dict[str, str]):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "qa.jsonl").write_text('{"question": "why?"}\n', encoding="utf-8")
    names = ["good", *bombs]
    sources = "\n".join(f"  {n}: {{path: data/qa.jsonl, format: jsonl, columns: {{question: str}}}}" for n in names)
    maps = "\n".join(f"    {n}: {{text: {json.dumps(t)}}}"
                     for n, t in {"good": "Q: {{ question }}", **bombs}.items())
    spec = tmp_path / "llmspec.yaml"
    spec.write_text(f"llmspec: 1\nproject: bombs\nbase_model: {{id: builtin:tiny}}\nsources:\n{sources}\n"
                    f"format:\n  style: completion\n  map:\n{maps}\n", encoding="utf-8")
    return spec


def _run_limited(args: list[str], cwd, limit_bytes: int, timeout: float):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "DO_NOT_TRACK": "1", "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LIMITED, str(limit_bytes), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def test_validate_refuses_nothing_and_allocates_nothing_under_a_memory_limit(tmp_path):
    spec = _bomb_project(tmp_path, {**_SPEC_BOMBS, "lipsum": "{{ lipsum(10**6) }}"})
    # 1 GiB of address space: `'x' * 10**10` alone would need 10.
    proc, elapsed = _run_limited(["validate", str(spec)], tmp_path, 1 << 30, timeout=60)
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr + proc.stdout
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "error[unsafe-template]: template uses 'lipsum'" in out
    assert out.count("error[") == 1  # the bombs themselves are valid templates: nothing was run
    assert elapsed < 30


@pytest.mark.slow
def test_compile_rejects_every_bomb_row_under_a_memory_limit(tmp_path):
    spec = _bomb_project(tmp_path, _SPEC_BOMBS)
    # Polars' allocator reserves address space up front; 6 GiB is still well under one bomb.
    proc, elapsed = _run_limited(["compile", str(spec), "-o", str(tmp_path / "out")], tmp_path, 6 << 30,
                                 timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out and "MemoryError" not in out, out
    assert f"format rejects: {RULE_BUDGET} {len(_SPEC_BOMBS)}" in out
    rejects = pl.read_parquet(tmp_path / "out" / "data" / "rejects.parquet")
    assert sorted(rejects["source"].to_list()) == sorted(_SPEC_BOMBS)
    assert set(rejects["rule"]) == {RULE_BUDGET}
    print(f"compile with {len(_SPEC_BOMBS)} bomb templates under 6 GiB: {elapsed:.1f} s wall")


# ----------------------------------------------------------------------------- assertion regexes


def test_a_backtracking_regex_assertion_runs_in_linear_time():
    exp = parse_expectation({"regex": r"(\w+\s?)+$"})
    output = "a" * 5000 + "!"
    start = time.perf_counter()
    outcome = evaluate_test([exp], output)
    assert time.perf_counter() - start < 1.0  # Python's re: exponential, hours at 30 characters
    assert outcome.results[0].passed is False
    hit = evaluate_test([parse_expectation({"regex": r"w\w+ld"})], "héllo wörld")
    assert hit.results[0].passed and "at char 6" in hit.results[0].got


@pytest.mark.parametrize("pattern,what", [(r"(?<=a)b", "look-around"), (r"(a)\1", "back-reference"),
                                          (r"a*+", "possessive")])
def test_an_assertion_regex_outside_the_cleaning_dialect_is_refused_at_validate(write_spec, minimal_spec,
                                                                                pattern, what):
    from llmspec.spec.errors import SpecError
    from llmspec.spec.load import load_spec

    spec = minimal_spec + ("acceptance:\n  tests:\n    - name: t\n      prompt: hi\n"
                           f"      expect: [{{regex: {json.dumps(pattern)}}}]\n")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(spec))
    rendered = str(info.value)
    assert what in rendered and "llmspec.yaml:" in rendered


@pytest.mark.parametrize("template", ["{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
                                      "{{ " + "[" * 3000 + "]" * 3000 + " }}",
                                      "{% if 1 %}" * 500 + "{% endif %}" * 500,
                                      "{{ x" + " | upper" * 5000 + " }}"])
def test_a_template_nested_beyond_reason_is_a_validate_error_not_a_crash(template):
    from llmspec.spec.errors import SpecError

    result = check_template(template)
    assert result.error_code == "bad-template" and "nests too deeply" in result.error
    with pytest.raises(SpecError) as info:
        compile_format(fmt({"s": {"text": template}}))
    assert "nests too deeply" in str(info.value)
