"""Property: whatever happens to a file llmspec reads back (cut short anywhere, or valid JSON of
the wrong shape anywhere in it), the command that reads it gives a located error naming that
file, or works; never a traceback (issue 13).

Each example damages one artifact of a project whose state, lock and saved plan were written by
llmspec, then drives the functions the CLI calls: `plan` and `status` (state, lock, hash cache)
and `apply PLAN` up to the point where it would start work (saved plan)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.spec.errors import LlmspecError

from project_state import make_project, no_axolotl_check, write_built_state  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_axolotl_check")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(node, prefix=()):
    """Every place in a JSON tree: the root, each key and each list item."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _at(node, path):
    for p in path:
        node = node[p]
    return node


@st.composite
def damage(draw, text: str) -> bytes:
    """`text` cut short, or one place in it replaced, removed or given an extra key."""
    data = json.loads(text)
    how = draw(st.sampled_from(["truncate", "replace", "remove", "extra"]))
    if how == "truncate":
        raw = text.encode()
        return raw[:draw(st.integers(0, len(raw) - 1))]
    places = list(_paths(data))
    path = draw(st.sampled_from(places))
    if how == "replace" or not path:
        value = draw(JSON_VALUES)
        if not path:
            return json.dumps(value).encode()
        _at(data, path[:-1])[path[-1]] = value
    elif how == "remove":
        parent = _at(data, path[:-1])
        del parent[path[-1]]
    else:
        target = _at(data, path)
        if not isinstance(target, dict):
            return json.dumps(data).encode()
        target[draw(st.text(min_size=1, max_size=6))] = draw(JSON_VALUES)
    return json.dumps(data).encode()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A project with state, lock, hash cache and a saved plan, copied for every example."""
    mp = pytest.MonkeyPatch()
    import llmspec.runtime.train.run as train_run

    mp.setattr(train_run, "check_training_config", lambda loaded, **kw: [])
    try:
        folder = tmp_path_factory.mktemp("template")
        spec = make_project(folder)
        write_built_state(spec)
        from llmspec.api import make_plan

        (folder / "llmspec.yaml").touch()
        make_plan(spec)  # writes the hash cache
        (folder / "p.json").write_text(json.dumps(make_plan(spec, for_apply=True).saved(), indent=2))
    finally:
        mp.undo()
    return folder


ARTIFACTS = {"state": ".llmspec/state.json", "lock": "llmspec.lock", "hash cache": ".llmspec/hashes.json",
             "saved plan": "p.json"}


def _read_as_the_cli_does(project: Path, kind: str) -> None:
    from llmspec.api import check_saved_plan, load_saved_plan, make_plan, status

    spec = project / "llmspec.yaml"
    if kind == "saved plan":
        saved = load_saved_plan(project / "p.json")
        if saved is not None:
            check_saved_plan(saved, make_plan(saved.spec_path, for_apply=True))
        return
    make_plan(spec)
    status(spec)


_COUNTER = iter(range(10**9))


@pytest.mark.parametrize("kind", sorted(ARTIFACTS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_artifact_gives_a_located_error_or_works(template, tmp_path, kind, data):
    project = tmp_path / f"p{next(_COUNTER):09d}"  # fixed width: the damaged file's length must not vary between examples
    shutil.copytree(template, project)
    saved = project / "p.json"
    # the saved plan names its spec by absolute path: point it at this copy
    body = json.loads(saved.read_text())
    body["spec_path"] = str(project / "llmspec.yaml")
    from llmspec.runtime.engine.artifacts import plan_body_sha256

    body["body_sha256"] = plan_body_sha256(body)
    saved.write_text(json.dumps(body, indent=2))
    if kind == "lock":
        (project / ".llmspec/state.json").unlink()  # the lock is read when nothing is built here
    target = project / ARTIFACTS[kind]
    damaged = data.draw(damage(target.read_text()))
    if kind == "saved plan" and data.draw(st.booleans()):
        # A checksum refuses any edit; with a matching one, the shape checks are what answers.
        try:
            edited = json.loads(damaged)
        except ValueError:
            edited = None  # cut short: nothing to re-checksum
        if isinstance(edited, dict):
            edited["body_sha256"] = plan_body_sha256(edited)
            damaged = json.dumps(edited).encode()
    target.write_bytes(damaged)
    try:
        _read_as_the_cli_does(project, kind)
    except LlmspecError as exc:
        assert kind != "hash cache", f"a damaged hash cache must only cost a re-hash: {exc.render()}"
        shown = exc.render()
        assert str(target) in shown, shown
    finally:
        shutil.rmtree(project)
