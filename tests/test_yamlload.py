"""The YAML door: every hostile or malformed input becomes one clean SpecError at the culprit."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.spec.errors import LlmspecError, Pos, SpecError
from llmspec.spec.yamlload import (
    ALIAS_BUDGET, MAX_DEPTH, Loaded, Positions, load_yaml_file, load_yaml_text,
)


def refused(src, code: str) -> Pos:
    """Load src, expect exactly one diagnostic with this code, return its position."""
    with pytest.raises(SpecError) as info:
        load_yaml_text(src, "spec.yaml")
    diag = info.value.first
    assert len(info.value.diagnostics) == 1
    assert diag.code == code, info.value.render()
    assert diag.pos is not None and diag.pos.path == "spec.yaml"
    assert "Traceback" not in diag.message and "ruamel" not in diag.message
    assert "<unicode string>" not in diag.message
    return diag.pos


def where(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of needle in text."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def at(pos: Pos | None) -> tuple[int | None, int | None]:
    assert pos is not None
    return pos.line, pos.col


# -- one test per error code ------------------------------------------------------------------


def test_file_not_found(tmp_path):
    with pytest.raises(SpecError) as info:
        load_yaml_file(tmp_path / "missing.yaml", display_path="missing.yaml")
    assert info.value.first.code == "file-not-found"
    assert info.value.first.pos == Pos("missing.yaml")
    assert "missing.yaml" in info.value.first.message


def test_directory_is_file_not_found(tmp_path):
    with pytest.raises(SpecError) as info:
        load_yaml_file(tmp_path)
    assert info.value.first.code == "file-not-found"
    assert info.value.first.pos == Pos(str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    spec = tmp_path / "llmspec.yaml"
    spec.write_text("a: 1\n")
    spec.chmod(0)
    with pytest.raises(SpecError) as info:
        load_yaml_file(spec)
    assert info.value.first.code == "file-unreadable"


@pytest.mark.parametrize("src", ["", "   \n\n", "# only a comment\n  # and another\n", "---\n", b"\xef\xbb\xbf\n"])
def test_empty(src):
    assert at(refused(src, "yaml-empty")) == (1, 1)


def test_encoding_points_at_first_bad_byte():
    src = b"a: 1\nb: caf\xe9\n"
    with pytest.raises(SpecError) as info:
        load_yaml_text(src, "spec.yaml")
    diag = info.value.first
    assert diag.code == "yaml-encoding"
    assert at(diag.pos) == (2, 7)
    bad = src.index(b"\xe9")
    assert f"offset {bad}" in diag.message


def test_encoding_offset_counts_bom_but_column_does_not():
    src = b"\xef\xbb\xbfname: \xff\n"
    with pytest.raises(SpecError) as info:
        load_yaml_text(src, "spec.yaml")
    assert info.value.first.code == "yaml-encoding"
    assert at(info.value.first.pos) == (1, 7)
    bad = src.index(b"\xff")
    assert f"offset {bad}" in info.value.first.message


def test_bom_is_fine_and_positions_ignore_it():
    loaded = load_yaml_text(b"\xef\xbb\xbfname: x\n", "spec.yaml")
    assert loaded.data == {"name": "x"}
    assert at(loaded.positions.key[("name",)]) == (1, 1)
    assert load_yaml_text("\ufeffname: x\n", "spec.yaml").data == {"name": "x"}


@pytest.mark.parametrize("src,line,col", [
    (b"a: 1\nb: x\x00y\n", 2, 5),
    (b"\x00\x01\x02binary", 1, 1),
    ("a: 1\n  b: \x1b[31m\n", 2, 6),
    (b"a: \x07\xff\xfe", 1, 4),  # a control byte before the first invalid byte: binary, not encoding
])
def test_binary(src, line, col):
    assert at(refused(src, "yaml-binary")) == (line, col)


@pytest.mark.parametrize("src,line,col", [
    ("a:\n\tb: 1\n", 2, 1),
    ("a:\n  \tb: 1\n", 2, 3),
    ("a: 1\nb:\n  - x\n\t- y\n", 4, 1),
    ("a: [1,\n\t2]\n", 2, 1),
    ("a: |\n\tnot indented with spaces\n", 2, 1),
])
def test_tab_indent(src, line, col):
    assert at(refused(src, "yaml-tab-indent")) == (line, col)


def test_tabs_inside_values_are_fine():
    src = 'a: "x\ty"\nb: |\n  keep\n  \tthis tab\nc: \'one\n  \ttwo\'\n'
    assert load_yaml_text(src, "spec.yaml").data == {"a": "x\ty", "b": "keep\n\tthis tab\n", "c": "one two"}


def test_tab_in_plain_value_is_a_clear_syntax_error():
    pos = refused("a: x\ty\n", "yaml-syntax")
    assert at(pos) == (1, 5)


@pytest.mark.parametrize("src,needle", [
    ("a: b: c\n", ": c"),
    ("a: [1, 2\n", None),
    ("a:\n  b: 1\n c: 2\n", "c: 2"),
    ("a: 'unterminated\n", None),
    ("a: @x\n", "@"),
])
def test_syntax(src, needle):
    with pytest.raises(SpecError) as info:
        load_yaml_text(src, "spec.yaml")
    diag = info.value.first
    assert diag.code == "yaml-syntax"
    assert "in \"<unicode string>\"" not in diag.message and "Error" not in diag.message
    if needle is None:  # errors found at end of input point past the last line
        assert at(diag.pos) == (src.count("\n") + 1, 1)
    else:
        assert at(diag.pos) == where(src, needle)


def test_duplicate_key():
    src = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n"
    with pytest.raises(SpecError) as info:
        load_yaml_text(src, "spec.yaml")
    diag = info.value.first
    assert diag.code == "yaml-duplicate-key"
    assert at(diag.pos) == where(src, "x", 1)
    assert "'x'" in diag.message and "line 3" in diag.message


def test_integer_looking_keys_are_strings_and_collide_with_quoted():
    assert load_yaml_text("1: a\ntrue: b\n2.5: c\n", "s").data == {"1": "a", "true": "b", "2.5": "c"}
    src = "1: a\n'1': b\n"
    assert at(refused(src, "yaml-duplicate-key")) == (2, 1)


@pytest.mark.parametrize("src,line,col", [
    ("- a\n- b\n", 1, 1),
    ("just a string\n", 1, 1),
    ("# comment\n42\n", 2, 1),
    ("[a, b]\n", 1, 1),
    ("~\n", 1, 1),
])
def test_not_mapping(src, line, col):
    assert at(refused(src, "yaml-not-mapping")) == (line, col)


def test_too_deep_flow_without_recursion_error():
    src = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
    # the root mapping is level 1, so the 64th '[' opens level 65
    assert at(refused(src, "yaml-too-deep")) == (1, len("a: ") + MAX_DEPTH)


def test_deep_flow_at_root_is_refused_as_not_mapping():
    assert at(refused("[" * 10_000, "yaml-not-mapping")) == (1, 1)


def test_too_deep_block_mappings():
    src = "".join(" " * i + "k:\n" for i in range(200))
    assert at(refused(src, "yaml-too-deep")) == (MAX_DEPTH + 1, MAX_DEPTH + 1)


def test_too_deep_block_sequences():
    src = "a:\n" + "".join("  " * i + "-\n" for i in range(1, 300))
    pos = refused(src, "yaml-too-deep")
    assert pos.line == MAX_DEPTH + 1


def test_depth_limit_is_exact():
    def nested(levels: int) -> str:  # the root mapping plus levels-1 flow sequences
        return "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"
    load_yaml_text(nested(MAX_DEPTH), "s")
    refused(nested(MAX_DEPTH + 1), "yaml-too-deep")


def test_alias_expansion_counts_towards_depth():
    inner = "[" * 40 + "]" * 40
    src = f"a: &deep {inner}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[*deep]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    assert at(refused(src, "yaml-too-deep")) == where(src, "*deep")


def test_multi_document():
    src = "a: 1\n---\nb: 2\n"
    assert at(refused(src, "yaml-multi-document")) == (2, 1)
    src = "a: 1\n...\nb: 2\n"
    assert at(refused(src, "yaml-multi-document")) == (3, 1)


def test_explicit_document_markers_are_fine():
    assert load_yaml_text("%YAML 1.2\n---\na: 1\n...\n", "s").data == {"a": 1}


@pytest.mark.parametrize("src,needle", [
    ("? [a, b]\n: 1\n", "[a, b]"),
    ("? {a: 1}\n: 1\n", "{a: 1}"),
    ("x: 1\n: nameless\n", None),
    ("!!int 3: x\n", "!!int"),
    ("k: &seq [1]\n*seq : v\n", "*seq :"),
])
def test_key_type(src, needle):
    pos = refused(src, "yaml-key-type")
    if needle is not None:
        assert at(pos) == where(src, needle)
    else:
        assert pos.line == 2


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['echo pwned']",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!custom value",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!timestamp 2024-01-01",
    "! bare",
])
def test_tag_refused(tag):
    src = f"ok: 1\nevil: {tag}\n"
    assert at(refused(src, "yaml-tag")) == (2, len("evil: ") + 1)


def test_tag_on_root_and_local_tag_prefix_refused():
    assert at(refused("!!python/object:x.Y\na: 1\n", "yaml-tag")) == (1, 1)
    src = "%TAG !e! tag:example.com,2024:\n---\na: !e!thing 1\n"
    assert at(refused(src, "yaml-tag")) == where(src, "!e!thing")


def test_standard_tags_convert():
    src = "a: !!str 1\nb: !!int '7'\nc: !!float 3\nd: !!bool true\ne: !!null ''\nf: !!map {x: 1}\ng: !!seq [1]\n"
    data = load_yaml_text(src, "s").data
    assert data == {"a": "1", "b": 7, "c": 3.0, "d": True, "e": None, "f": {"x": 1}, "g": [1]}
    assert isinstance(data["c"], float)


@pytest.mark.parametrize("src", ["a: !!int nope\n", "a: !!bool yes\n", "a: !!map [1]\n", "a: !!seq x\n",
                                 "a: !!float 1.2.3\n"])
def test_standard_tag_mismatch(src):
    assert at(refused(src, "yaml-tag")) == (1, 4)


def _billion_laughs(levels: int = 9, fan: int = 9) -> str:
    names = [chr(ord("a") + i) for i in range(levels)]
    out = [f"{names[0]}: &{names[0]} [" + ", ".join(["lol"] * fan) + "]"]
    for prev, name in zip(names, names[1:]):
        out.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * fan) + "]")
    return "\n".join(out) + "\n"


def test_billion_laughs_fails_on_budget():
    src = _billion_laughs()
    pos = refused(src, "yaml-alias-budget")
    # sizes per anchor: a=fan+1, then 1+fan*size(prev); the refusal lands at the first alias
    # whose expansion pushes the running total past the budget
    fan, size, total, line = 9, 10, 0, 1
    expected = None
    for line in range(2, 10):
        for i in range(fan):
            total += size
            if total > ALIAS_BUDGET and expected is None:
                text_line = src.splitlines()[line - 1]
                expected = (line, [j for j in range(len(text_line)) if text_line[j] == "*"][i] + 1)
        size = 1 + fan * size
        if expected:
            break
    assert at(pos) == expected


def test_recursive_alias():
    src = "a: &a [1, *a]\n"
    assert at(refused(src, "yaml-alias-budget")) == where(src, "*a")


def test_undefined_alias_is_syntax():
    src = "a: *nowhere\n"
    assert at(refused(src, "yaml-syntax")) == (1, 4)


def test_aliases_within_budget_are_independent_copies_with_definition_positions():
    src = "base: &b\n  lr: 1.0e-4\n  tags: [x]\nrun:\n  cfg: *b\n"
    loaded = load_yaml_text(src, "s")
    assert loaded.data["run"]["cfg"] == {"lr": 1.0e-4, "tags": ["x"]}
    loaded.data["run"]["cfg"]["tags"].append("y")
    assert loaded.data["base"]["tags"] == ["x"]
    pos = loaded.positions
    assert at(pos.value[("run", "cfg")]) == where(src, "*b")
    assert at(pos.key[("run", "cfg", "lr")]) == where(src, "lr")
    assert at(pos.value[("run", "cfg", "tags", 0)]) == where(src, "x]")


def test_merge_keys():
    src = (
        "defaults: &d\n  lr: 0.1\n  epochs: 1\nextra: &e\n  seed: 7\n  lr: 0.5\n"
        "run:\n  <<: [*d, *e]\n  epochs: 3\nplain:\n  '<<': literal\n"
    )
    loaded = load_yaml_text(src, "s")
    assert loaded.data["run"] == {"lr": 0.1, "epochs": 3, "seed": 7}
    assert loaded.data["plain"] == {"<<": "literal"}
    keys = loaded.positions.key
    assert at(keys[("run", "lr")]) == where(src, "lr")          # first source wins
    assert at(keys[("run", "seed")]) == where(src, "seed")
    assert at(keys[("run", "epochs")]) == where(src, "epochs", 1)  # written key wins
    assert not any("<<" in path for path in keys if path[:1] == ("run",))


def test_merge_value_must_be_mapping():
    src = "a:\n  <<: [1, 2]\n"
    assert at(refused(src, "yaml-merge")) == where(src, "[1")


# -- scalars -------------------------------------------------------------------------------


def test_scalars_follow_yaml_1_2_core_schema():
    src = (
        "a: 2.0e-4\nb: 1e-4\nc: '0.1'\nd: yes\ne: ~\nf: 0x1F\ng: 0o17\nh: .inf\ni: -.INF\n"
        "j: 2024-01-01\nk: 1_000\nl: 010\nm: +5\nn: null\no:\np: True\nq: on\nr: .nan\ns: \"true\"\n"
        "t: 3\nu: -0.5\nv: no\n"
    )
    d = load_yaml_text(src, "s").data
    assert d["a"] == 2.0e-4 and isinstance(d["a"], float)
    assert d["b"] == 1e-4 and isinstance(d["b"], float)
    assert d["c"] == "0.1"
    assert d["d"] == "yes" and d["q"] == "on" and d["v"] == "no"
    assert d["e"] is None and d["n"] is None and d["o"] is None
    assert d["f"] == 31 and d["g"] == 15 and d["l"] == 10 and d["m"] == 5 and d["t"] == 3
    assert d["h"] == math.inf and d["i"] == -math.inf and math.isnan(d["r"])
    assert d["j"] == "2024-01-01" and d["k"] == "1_000"
    assert d["p"] is True and d["s"] == "true"
    assert d["u"] == -0.5


def test_huge_integer_stays_text_instead_of_crashing():
    digits = "9" * 5000
    assert load_yaml_text(f"a: {digits}\n", "s").data == {"a": digits}


# -- positions -----------------------------------------------------------------------------

SPEC = """\
# support bot
llmspec: 1
project: support-bot
base_model: tiny/llama
sources:
  tickets:
    path: data/tickets.jsonl
    columns: [question, answer]
quality:
  rules:
    - drop_empty: [answer]
    - dedupe:
        threshold: 0.9
format:
  style: chat
  map:
    tickets:
      user: "{{ question }}"
      assistant: "{{ answer }}"
training:
  learning_rate: 2.0e-4
  epochs:
"""


def test_positions_on_a_realistic_spec(tmp_path):
    path = tmp_path / "llmspec.yaml"
    path.write_text(SPEC)
    loaded = load_yaml_file(path, display_path="llmspec.yaml")
    assert isinstance(loaded, Loaded) and loaded.path == "llmspec.yaml"
    assert loaded.data["quality"]["rules"][1] == {"dedupe": {"threshold": 0.9}}
    assert loaded.data["training"] == {"learning_rate": 2.0e-4, "epochs": None}
    p = loaded.positions
    assert p.value[()] == Pos("llmspec.yaml", 1, 1)
    assert at(p.key[("llmspec",)]) == where(SPEC, "llmspec:")
    assert at(p.key[("sources", "tickets", "path")]) == where(SPEC, "path:")
    assert at(p.value[("sources", "tickets", "path")]) == where(SPEC, "data/")
    assert at(p.value[("sources", "tickets", "columns")]) == where(SPEC, "[question")
    assert at(p.key[("sources", "tickets", "columns", 1)]) == where(SPEC, "answer]")
    assert at(p.key[("quality", "rules", 0)]) == where(SPEC, "drop_empty")
    assert at(p.value[("quality", "rules", 1)]) == where(SPEC, "dedupe")
    assert at(p.key[("quality", "rules", 1, "dedupe", "threshold")]) == where(SPEC, "threshold")
    assert at(p.value[("quality", "rules", 1, "dedupe", "threshold")]) == where(SPEC, "0.9")
    assert at(p.value[("format", "map", "tickets", "assistant")]) == where(SPEC, '"{{ answer')
    # an empty value points at its key, not at whatever follows it
    assert at(p.value[("training", "epochs")]) == where(SPEC, "epochs:")
    assert all(pos.path == "llmspec.yaml" for pos in p.value.values())

    def walk(node, path=()):
        yield path
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, path + (i,))

    for path in walk(loaded.data):
        assert path in p.value
        if path:
            assert path in p.key


def test_positions_fall_back_and_merge():
    loaded = load_yaml_text(SPEC, "llmspec.yaml")
    p = loaded.positions
    tickets = p.value[("sources", "tickets")]
    assert p.at(("sources", "tickets", "nope", 3)) == tickets
    assert p.key_at(("sources", "tickets")) == p.key[("sources", "tickets")]
    assert p.key_at(("sources", "tickets", "missing")) == tickets
    assert p.at(()) == Pos("llmspec.yaml", 1, 1)
    assert Positions().at(("x",)) is None
    recipe = load_yaml_text("lr: 0.1\n", "recipes/lora-small.yaml")
    p.merge_from(recipe.positions, prefix=("training",))
    assert p.key[("training", "lr")] == Pos("recipes/lora-small.yaml", 1, 1)
    assert p.value[("training",)] == Pos("recipes/lora-small.yaml", 1, 1)  # overwritten by the root


def test_crlf_positions():
    src = "a: 1\r\nb:\r\n  c: 2\r\n"
    loaded = load_yaml_text(src, "s")
    assert at(loaded.positions.key[("b", "c")]) == (3, 3)
    assert at(refused("a: 1\r\na: 2\r\n", "yaml-duplicate-key")) == (2, 1)


def test_validate_path_imports_nothing_heavy():
    code = ("import sys, llmspec.spec.yamlload as y; y.load_yaml_text('a: 1', 's');"
            "heavy = {'polars', 'torch', 'transformers', 'axolotl'} & set(sys.modules);"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- properties ----------------------------------------------------------------------------

_PLAIN = (dict, list, str, int, float, bool, type(None))


def _check_outcome(src) -> None:
    try:
        loaded = load_yaml_text(src, "fuzz.yaml")
    except LlmspecError as err:
        for diag in err.diagnostics:
            assert diag.code.startswith("yaml-"), err.render()
            assert diag.pos is not None and diag.pos.path == "fuzz.yaml"
            assert diag.pos.line >= 1 and diag.pos.col >= 1
        return
    assert isinstance(loaded.data, dict)
    stack = [loaded.data]
    while stack:
        node = stack.pop()
        assert isinstance(node, _PLAIN)
        if isinstance(node, dict):
            assert all(isinstance(k, str) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_TOKENS = st.sampled_from([
    ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!!", "!!str ", "!!int ",
    "!x ", "!!python/object:os.system ", "'", '"', "\t", "\n", "  ", "    ", "#", "? ", "|", ">", "<<: ",
    "---\n", "...\n", "key", "value", "1", "2.0e-4", "~", "null", "true", "yes", "%YAML 1.2\n",
    "\\", "\r\n", "\ufeff", "é", "a: ", "b: ", "\n  - ", "\n  k: ",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    _check_outcome(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=60).map("".join))
def test_random_yamlish_text_never_crashes(text):
    _check_outcome(text)
    _check_outcome(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(SPEC)), st.integers(min_value=0, max_value=len(SPEC)),
       st.sampled_from(["", "\t", ":", "- ", "[", "'", "&x ", "*x", "!!binary ", "\x00", "  "]))
def test_mutated_spec_never_crashes(cut, at_offset, insert):
    _check_outcome(SPEC[:cut])
    _check_outcome(SPEC[:at_offset] + insert + SPEC[at_offset:])
