"""Whatever a spec file holds, validating it yields diagnostics and nothing else.

Random YAML documents, and random mutations of valid specs (keys deleted or renamed, values of
the wrong type, lists and mappings swapped, files truncated, unicode sprinkled in): `check_spec`
never raises, every diagnostic has a code, and every one of them says where it is.
The mutation strategies are shared with tests/test_schema.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from llmspec.spec.errors import Diagnostic, SpecError
from llmspec.spec.load import check_spec, load_spec
from llmspec.spec.models import TOP_LEVEL_KEYS
from llmspec.spec.yamlload import load_yaml_text

from conftest import MINIMAL_SPEC, REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "support-bot" / "llmspec.yaml"
VALID_SPECS = {"minimal": MINIMAL_SPEC, "support-bot": EXAMPLE.read_text(encoding="utf-8")}

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Words the spec language uses, so random documents hit the models' paths, not only unknown keys.
WORDS = sorted(set(TOP_LEVEL_KEYS) | {
    "path", "format", "columns", "jsonl", "csv", "mbox", "postgres", "url", "query", "style", "chat", "map",
    "user", "assistant", "rules", "dedupe", "require", "reject_matching", "patterns", "column", "threshold",
    "learning_rate", "epochs", "method", "lora", "qlora", "hardware", "cpu", "tests", "name", "prompt",
    "expect", "contains", "gates", "pass_rate", "eval_loss", "beats_baseline", "baseline", "eval_fraction",
    "id", "builtin:tiny", "recipe:lora-small", "${env:X}", "{{ x }}", "{{ x.__class__ }}", "../x", "/abs",
})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS), st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)


def dump(data, flow: bool = False) -> str:
    if flow:
        return json.dumps(data, ensure_ascii=False, indent=1, allow_nan=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


# -- mutations of valid specs ----------------------------------------------------------------


def _paths(node, prefix=()):
    """Every path into a plain data tree (the root excluded)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _parent(data, path):
    for p in path[:-1]:
        data = data[p]
    return data


def _mutate(data, draw):
    """One random structural edit of `data` in place."""
    paths = list(_paths(data))
    path = draw(st.sampled_from(paths))
    parent, last = _parent(data, path), path[-1]
    kind = draw(st.sampled_from(["delete", "retype", "rename", "swap", "unicode", "duplicate"]))
    if kind == "delete":
        del parent[last]
    elif kind == "retype":
        parent[last] = draw(values)
    elif kind == "rename" and isinstance(parent, dict):
        new = draw(st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=10),
                             st.just(str(last)[:-1] or "x"), st.just(str(last) + "s")))
        parent[new] = parent.pop(last)
    elif kind == "swap":
        value = parent[last]
        if isinstance(value, list):
            parent[last] = {str(i): v for i, v in enumerate(value)}
        elif isinstance(value, dict):
            parent[last] = draw(st.sampled_from([list(value.values()), [[k, v] for k, v in value.items()],
                                                 list(value)]))
        else:
            parent[last] = [value]
    elif kind == "unicode":
        value = parent[last]
        extra = draw(st.text(min_size=1, max_size=6))
        parent[last] = (value + extra) if isinstance(value, str) else extra
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(parent[last])


@st.composite
def mutated_data_specs(draw) -> str:
    """A valid spec with 1-4 structural edits, dumped back to YAML (block or flow style)."""
    text = VALID_SPECS[draw(st.sampled_from(sorted(VALID_SPECS)))]
    data = load_yaml_text(text, "spec").data
    for _ in range(draw(st.integers(1, 4))):
        if not list(_paths(data)):
            break
        _mutate(data, draw)
    return dump(data, flow=draw(st.booleans()))


@st.composite
def mutated_text_specs(draw) -> str:
    """A valid spec's text truncated, with lines dropped or doubled, or characters inserted."""
    text = VALID_SPECS[draw(st.sampled_from(sorted(VALID_SPECS)))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "drop-line", "double-line", "insert", "indent"]))
        lines = text.splitlines(keepends=True)
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind in ("drop-line", "double-line", "indent") and lines:
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "drop-line":
                del lines[i]
            elif kind == "double-line":
                lines.insert(i, lines[i])
            else:
                lines[i] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[i]
            text = "".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            chunk = draw(st.one_of(st.text(min_size=1, max_size=5),
                                   st.sampled_from([":", "- ", "{", "[", "&a ", "*a", "!!python/name:os.system ",
                                                    "'", '"', "#", "\ufeff", "\x00", "<<: *a\n"])))
            text = text[:at] + chunk + text[at:]
    return text


random_documents = st.one_of(
    values.map(dump),
    st.dictionaries(keys, values, max_size=6).map(lambda d: dump(d, flow=False)),
    st.dictionaries(st.sampled_from(TOP_LEVEL_KEYS), values, max_size=11).map(dump),
    st.text(max_size=200),
    st.binary(max_size=200),
)

mutated_specs = st.one_of(mutated_data_specs(), mutated_text_specs())


# -- the property ------------------------------------------------------------------------------


def assert_only_diagnostics(text: str | bytes) -> None:
    result = check_spec(EXAMPLE, text=text, display="llmspec.yaml")
    for d in result.diagnostics:
        assert isinstance(d, Diagnostic)
        assert isinstance(d.code, str) and d.code and " " not in d.code, d
        assert isinstance(d.message, str) and d.message, d
        assert d.severity in ("error", "warning"), d
        # everything here comes from the spec text or a recipe it extends: each says where
        assert d.pos is not None and d.pos.path, d.render()
        assert d.pos.line is not None and d.pos.line >= 1, d.render()
        assert d.pos.col is not None and d.pos.col >= 1, d.render()
        assert "Traceback" not in d.message and "pydantic" not in d.message.lower(), d.render()
        d.render(), d.to_json()
    if result.errors:
        assert result.spec is None
    else:
        assert result.spec is not None


@SETTINGS
@given(random_documents)
def test_random_documents_give_only_diagnostics(text):
    assert_only_diagnostics(text)


@SETTINGS
@given(mutated_data_specs())
def test_structural_mutations_give_only_diagnostics(text):
    assert_only_diagnostics(text)


@SETTINGS
@given(mutated_text_specs())
def test_text_mutations_give_only_diagnostics(text):
    assert_only_diagnostics(text)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(mutated_specs)
def test_load_spec_raises_only_spec_errors(tmp_path_factory, text):
    path = Path(tmp_path_factory.mktemp("spec")) / "llmspec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_spec(path)
    except SpecError as exc:
        assert exc.diagnostics


@pytest.mark.parametrize("name", sorted(VALID_SPECS))
def test_unmutated_specs_are_valid(name):
    result = check_spec(EXAMPLE, text=VALID_SPECS[name], display="llmspec.yaml")
    assert result.errors == []
