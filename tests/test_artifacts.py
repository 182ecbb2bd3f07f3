"""The files llmspec reads back are versioned models checked on read (issues 12 and 13).

Each artifact refuses a newer or an unknown format version with `unsupported-version`, naming
the file and both versions; an older format that is still read is migrated; valid JSON of the
wrong shape is a located error with a hint, through the CLI as a user meets it (exit 1, never the
internal-error exit 70). Saved plans are refused when edited by hand or when what they show
differs from what apply would do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmspec.runtime.engine import artifacts
from llmspec.runtime.engine.artifacts import (ApplyLockInfo, LockFile, RunManifest, RunOutcome, RunReport,
                                              SavedPlan, StateFile)
from llmspec.runtime.engine.state import ApplyLock, State, read_lockfile
from llmspec.spec.errors import LlmspecError, StateError
from llmspec.spec.version import llmspec_version

from project_state import make_project, no_axolotl_check, run_cli, write_built_state  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_axolotl_check")

MANIFEST = {"run": "r1", "outcome": "promoted", "finished_at": "t", "spec_path": "llmspec.yaml",
            "fingerprints": {"train": "f"}, "stages": {"train": "stages/train-f"}, "built": ["train"], "reused": []}
REPORT = {"project": "p", "run": "r1", "created_at": "t", "spec_path": "llmspec.yaml", "outcome": "built",
          "sources": {}, "training": {"steps": 3}}


def _project_files(tmp_path: Path) -> dict[str, tuple[type, Path]]:
    """One valid file of each artifact, written by the code that writes it in llmspec."""
    spec = make_project(tmp_path)
    write_built_state(spec)
    root = tmp_path / ".llmspec"
    run_dir = root / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(RunManifest.model_validate(MANIFEST).dump()))
    (run_dir / "report.json").write_text(json.dumps(RunReport.model_validate(REPORT).dump()))
    (root / "apply.lock").write_text(json.dumps(ApplyLockInfo(pid=1, host="h", since="t").dump()))
    from llmspec.api import make_plan

    (tmp_path / "p.json").write_text(json.dumps(make_plan(spec).saved()))
    return {"state": (StateFile, root / "state.json"), "lock": (LockFile, tmp_path / "llmspec.lock"),
            "apply lock": (ApplyLockInfo, root / "apply.lock"), "manifest": (RunManifest, run_dir / "manifest.json"),
            "report": (RunReport, run_dir / "report.json"), "saved plan": (SavedPlan, tmp_path / "p.json")}


def _read(kind: str, model: type, path: Path):
    """Each artifact through the function llmspec reads it with."""
    if kind == "state":
        return State.load(path.parent)
    if kind == "lock":
        return read_lockfile(path)
    if kind == "apply lock":
        with ApplyLock(path.parent):
            return None
    if kind == "saved plan":
        from llmspec.api import load_saved_plan

        return load_saved_plan(path)
    return artifacts.load(model, path)


KINDS = ["state", "lock", "apply lock", "manifest", "report", "saved plan"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_artifact_reads_back_and_records_its_writer(tmp_path, kind):
    model, path = _project_files(tmp_path)[kind]
    data = json.loads(path.read_text())
    assert data[model.VERSION_KEY] == model.VERSION and data["written_by"] == llmspec_version()
    _read(kind, model, path)


@pytest.mark.parametrize("kind", KINDS)
def test_each_artifact_refuses_a_newer_version(tmp_path, kind):
    model, path = _project_files(tmp_path)[kind]
    data = json.loads(path.read_text())
    data[model.VERSION_KEY] = model.VERSION + 1
    data["written_by"] = "9.9.9"
    if kind == "saved plan":
        data["body_sha256"] = artifacts.plan_body_sha256(data)  # a real newer file, not an edit
    path.write_text(json.dumps(data))
    with pytest.raises(StateError) as info:
        _read(kind, model, path)
    d = info.value.first
    assert d.code == "unsupported-version" and d.pos.path == str(path), d.render()
    assert "written by llmspec 9.9.9" in d.message and f"format {model.VERSION + 1}" in d.message
    assert f"this llmspec ({llmspec_version()}) reads format {model.VERSION} at most" in d.message
    assert d.hint and "upgrade" in d.hint


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", ["2", None, 1.5, True, -1, 0])
def test_each_artifact_refuses_an_unknown_version(tmp_path, kind, bad):
    model, path = _project_files(tmp_path)[kind]
    data = json.loads(path.read_text())
    if bad is None and None in model.LEGACY:
        pytest.skip(f"a {model.WHAT} without a version is one from before versions were recorded")
    if bad is None:
        del data[model.VERSION_KEY]
    else:
        data[model.VERSION_KEY] = bad
    if kind == "saved plan":
        data["body_sha256"] = artifacts.plan_body_sha256(data)
    path.write_text(json.dumps(data))
    with pytest.raises(StateError) as info:
        _read(kind, model, path)
    assert info.value.first.code == "unsupported-version", info.value.render()
    assert info.value.first.pos.path == str(path)


def test_older_formats_still_read(tmp_path):
    files = _project_files(tmp_path)
    for kind in ("state", "lock"):  # version 1: the same shape, before written_by
        model, path = files[kind]
        data = json.loads(path.read_text())
        data[model.VERSION_KEY] = 1
        del data["written_by"]
        path.write_text(json.dumps(data))
    for kind in ("manifest", "report"):  # runs from before manifests carried a version
        model, path = files[kind]
        data = json.loads(path.read_text())
        del data["version"], data["written_by"]
        path.write_text(json.dumps(data))
    state = State.load(files["state"][1].parent)
    assert state.promoted["run"] == "20260101-000000-abcdef" and "train" in state.stages
    assert read_lockfile(files["lock"][1]).stages == {k: v.fingerprint for k, v in state.stages.items()}
    assert artifacts.load(RunManifest, files["manifest"][1]).outcome is RunOutcome.PROMOTED
    assert artifacts.load(RunReport, files["report"][1]).model_extra["training"] == {"steps": 3}


def test_saved_plan_of_the_first_format_is_refused(tmp_path):
    _, path = _project_files(tmp_path)["saved plan"]
    data = json.loads(path.read_text())
    data["format_version"] = 1
    del data["body_sha256"], data["written_by"]
    path.write_text(json.dumps(data))
    from llmspec.api import load_saved_plan

    with pytest.raises(StateError) as info:
        load_saved_plan(path)
    assert info.value.first.code == "unsupported-version" and "older" in info.value.first.message


def test_run_outcome_is_an_enum_and_the_state_refuses_an_unknown_one(tmp_path):
    spec = make_project(tmp_path)
    write_built_state(spec)
    state = State.load(tmp_path / ".llmspec")
    assert state.last_run["outcome"] == RunOutcome.PROMOTED == "promoted"
    with pytest.raises(Exception):
        state.record_run({"run": "x", "outcome": "exploded"})
    raw = json.loads(state.path.read_text())
    raw["runs"][0]["outcome"] = "exploded"
    state.path.write_text(json.dumps(raw))
    with pytest.raises(StateError) as info:
        State.load(tmp_path / ".llmspec")
    assert "runs[0].outcome" in info.value.first.message


# ----------------------------------------------------------------------------- through the CLI

CORRUPT = {
    "state.json is a list": (".llmspec/state.json", lambda d: [], "state-corrupt", "found a list"),
    "a stage lacks fields": (".llmspec/state.json",
                             lambda d: {**d, "stages": {"train": {"fingerprint": "x"}}}, "state-corrupt",
                             "stages.train.config: field required"),
    "a stage has an extra field": (".llmspec/state.json",
                                   lambda d: {**d, "stages": {k: {**v, "colour": "red"} for k, v in
                                                              d["stages"].items()}},
                                   "state-corrupt", ".colour: unknown field"),
    "runs is a string": (".llmspec/state.json", lambda d: {**d, "runs": "oops"}, "state-corrupt",
                         "runs: input should be a valid list"),
    "lock stages is a list": ("llmspec.lock", lambda d: {**d, "stages": []}, "lockfile-corrupt",
                              "stages: input should be a valid dictionary"),
    "lock is truncated": ("llmspec.lock", None, "lockfile-corrupt", "not JSON"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_state_and_lock_are_located_errors(tmp_path, monkeypatch, capsys, case):
    rel, mangle, code, words = CORRUPT[case]
    spec = make_project(tmp_path)
    write_built_state(spec)
    if rel == "llmspec.lock":
        (tmp_path / ".llmspec/state.json").unlink()  # the lock is the baseline only without state
    path = tmp_path / rel
    if mangle is None:
        path.write_text(path.read_text()[:40])
    else:
        path.write_text(json.dumps(mangle(json.loads(path.read_text()))))
    for command in (["plan", spec], ["status", spec]):
        rc, out, err = run_cli(monkeypatch, capsys, *command)
        assert rc == 1, (command, out, err)
        assert f"{path}" in err and f"error[{code}]" in err and words in err and "hint:" in err, err
        assert "internal error" not in err


def test_damaged_hash_cache_costs_a_rehash_with_a_warning(tmp_path, monkeypatch, capsys):
    spec = make_project(tmp_path)
    write_built_state(spec)
    cache = tmp_path / ".llmspec/hashes.json"
    cache.write_text("[1, 2]")
    rc, out, err = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 0, err
    assert "warning[hash-cache-ignored]" in err and str(cache) in err
    assert "0 to rebuild" not in out and "6 unchanged" in out  # the files were hashed again, and matched
    assert json.loads(cache.read_text())["version"] == 1  # and a sound cache written back
    rc, out, err = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 0 and "warning" not in err


def test_apply_lock_as_a_folder_and_state_folder_as_a_file(tmp_path, monkeypatch, capsys):
    spec = make_project(tmp_path)
    (tmp_path / ".llmspec/apply.lock").mkdir(parents=True)
    rc, _, err = run_cli(monkeypatch, capsys, "apply", spec, "--yes")
    assert rc == 1 and f"{tmp_path / '.llmspec/apply.lock'}: error[state-corrupt]" in err, err
    assert not (tmp_path / ".llmspec/stages").exists()
    import shutil

    shutil.rmtree(tmp_path / ".llmspec")  # (plan wrote its hash cache there)
    (tmp_path / ".llmspec").write_text("not a folder")
    for command in (["plan", spec], ["status", spec], ["apply", spec, "--yes"]):
        rc, _, err = run_cli(monkeypatch, capsys, *command)
        assert rc == 1 and f"{tmp_path / '.llmspec'}: error[state-corrupt]" in err and "hint:" in err, err


def test_a_lock_held_by_a_newer_llmspec_is_not_run_beside(tmp_path):
    root = tmp_path / ".llmspec"
    root.mkdir()
    (root / "apply.lock").write_text(json.dumps({"version": 7, "written_by": "3.0", "pid": 1, "host": "h",
                                                 "since": "t"}))
    with pytest.raises(StateError) as info:
        with ApplyLock(root):
            pass
    assert info.value.first.code == "unsupported-version"
    (root / "apply.lock").write_text("pid 12 on old-host, since yesterday")  # the text of earlier versions
    with ApplyLock(root) as lock:
        held = json.loads(lock.path.read_text())
        assert held["pid"] > 0 and held["version"] == 1
        assert ApplyLock.held(root)
        with pytest.raises(StateError) as info:
            with ApplyLock(root):
                pass
        assert info.value.first.code == "locked" and f"pid {held['pid']} on" in info.value.first.message
    assert not ApplyLock.held(root)


# ----------------------------------------------------------------------------- saved plans


def _fresh_clone(tmp_path: Path) -> Path:
    """A project with a committed llmspec.lock and nothing built on this machine."""
    import shutil

    spec = make_project(tmp_path / "origin")
    write_built_state(spec)
    clone = tmp_path / "clone"
    shutil.copytree(tmp_path / "origin", clone, ignore=shutil.ignore_patterns(".llmspec"))
    return clone / "llmspec.yaml"


def test_a_plan_saved_on_a_fresh_clone_shows_what_apply_will_do(tmp_path, monkeypatch, capsys):
    spec = _fresh_clone(tmp_path)
    rc, out, _ = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 0 and "compared with llmspec.lock" in out and "6 unchanged" in out
    rc, out, err = run_cli(monkeypatch, capsys, "plan", spec, "-o", spec.parent / "p.json")
    assert rc == 0, err
    assert "compared with nothing built yet" in out and "0 unchanged" in out
    saved = json.loads((spec.parent / "p.json").read_text())
    assert {s["action"] for s in saved["diff"]["stages"]} == {"new"}
    rc, _, err = run_cli(monkeypatch, capsys, "plan", spec, "-o", spec.parent / "q.json", "--against", "HEAD")
    assert rc == 2 and "cannot be combined with --against" in err


def test_a_saved_plan_whose_diff_is_not_what_apply_would_do_is_refused(tmp_path, monkeypatch, capsys):
    from llmspec.api import make_plan

    spec = _fresh_clone(tmp_path)
    # A plan compared with llmspec.lock ("6 unchanged"), saved as earlier versions saved it:
    # applying it would rebuild and retrain everything it said was unchanged.
    plan_file = spec.parent / "p.json"
    plan_file.write_text(json.dumps(make_plan(spec).saved()))
    rc, out, err = run_cli(monkeypatch, capsys, "apply", plan_file, "--yes")
    assert rc == 1 and f"{plan_file}: error[stale-plan]" in err, err
    assert "compared with llmspec.lock" in err and "train: unchanged in the plan, new now" in err
    assert not (spec.parent / ".llmspec/stages").exists() and not (spec.parent / ".llmspec/runs").exists()


def _edit(data: dict, what: str) -> dict:
    if what == "stage config":
        train = next(s for s in data["plan"]["stages"] if s["id"] == "train")
        train["config"]["training"]["learning_rate"] = 0.5
    elif what == "diff":
        data["diff"]["stages"][0]["action"] = "unchanged"
    elif what == "format_version":
        data["format_version"] = 3
    elif what == "state fingerprints":
        data["state_fingerprints"] = {"train": "0" * 64}
    return data


@pytest.mark.parametrize("what", ["stage config", "diff", "state fingerprints"])
def test_a_hand_edited_plan_is_refused(tmp_path, monkeypatch, capsys, what):
    spec = make_project(tmp_path)
    plan_file = tmp_path / "p.json"
    assert run_cli(monkeypatch, capsys, "plan", spec, "-o", plan_file)[0] == 0
    plan_file.write_text(json.dumps(_edit(json.loads(plan_file.read_text()), what), indent=2))
    rc, _, err = run_cli(monkeypatch, capsys, "apply", plan_file, "--yes")
    assert rc == 1 and f"{plan_file}: error[plan-edited]" in err and "hint:" in err, err
    assert not (tmp_path / ".llmspec/runs").exists()


def test_a_plan_with_an_edited_format_version_is_refused(tmp_path, monkeypatch, capsys):
    spec = make_project(tmp_path)
    plan_file = tmp_path / "p.json"
    run_cli(monkeypatch, capsys, "plan", spec, "-o", plan_file)
    plan_file.write_text(json.dumps(_edit(json.loads(plan_file.read_text()), "format_version")))
    rc, _, err = run_cli(monkeypatch, capsys, "apply", plan_file, "--yes")
    assert rc == 1 and f"{plan_file}: error[unsupported-version]" in err, err


@pytest.mark.parametrize("mangle,words", [
    (lambda d: {k: v for k, v in d.items() if k != "spec_path"}, "spec_path: field required"),
    (lambda d: {**d, "plan": {**d["plan"], "stages": [1, 2]}}, "plan.stages[0]: input should be"),
    (lambda d: {**d, "plan": {**d["plan"], "stages": [{**d["plan"]["stages"][0], "extra": 1}]}},
     "unknown field plan.stages[0].extra"),
    (lambda d: {**d, "diff": {"stages": "all"}}, "diff.baseline: field required"),
    (lambda d: {"kind": "something-else"}, "not an llmspec plan file"),
])
def test_a_plan_file_of_the_wrong_shape_is_a_located_error(tmp_path, monkeypatch, capsys, mangle, words):
    spec = make_project(tmp_path)
    plan_file = tmp_path / "p.json"
    run_cli(monkeypatch, capsys, "plan", spec, "-o", plan_file)
    data = mangle(json.loads(plan_file.read_text()))
    if data.get("kind") == "llmspec-plan":
        data["body_sha256"] = artifacts.plan_body_sha256(data)  # well-formed checksum, wrong shape
    plan_file.write_text(json.dumps(data))
    rc, _, err = run_cli(monkeypatch, capsys, "apply", plan_file, "--yes")
    assert rc == 1 and f"{plan_file}: error[plan-file]" in err and words in err, err


def test_the_plan_checksum_covers_every_field_but_itself():
    data = {"kind": "llmspec-plan", "format_version": 2, "plan": {"a": [1, 2.5, "é"]}, "diff": {}}
    digest = artifacts.plan_body_sha256(data)
    assert artifacts.plan_body_sha256({**data, "body_sha256": "anything"}) == digest
    assert artifacts.plan_body_sha256(json.loads(json.dumps(data))) == digest  # survives a round trip
    assert artifacts.plan_body_sha256({**data, "plan": {"a": [1, 2.5, "e"]}}) != digest


def test_errors_are_llmspec_errors_with_a_position():
    with pytest.raises(LlmspecError) as info:
        artifacts.parse(LockFile, {"lock_version": 2, "project": 3, "base_model": {}}, "x/llmspec.lock")
    assert info.value.first.pos.path == "x/llmspec.lock" and "project: input should be a valid string" in str(info.value)


@pytest.mark.parametrize("place,value", [(("stages", "dataset", "outputs", "train"), "abc"),
                                         (("stages", "train", "outputs", "adapter"), "yes"),
                                         (("stages", "dataset", "outputs", "dir"), 7),
                                         (("promoted", "run"), None)])
def test_figures_read_back_from_the_state_are_typed(tmp_path, monkeypatch, capsys, place, value):
    # plan's estimates compute with the dataset's size: a string there was a TypeError
    spec = make_project(tmp_path)
    write_built_state(spec)
    path = tmp_path / ".llmspec/state.json"
    data = json.loads(path.read_text())
    node = data
    for key in place[:-1]:
        node = node[key]
    node[place[-1]] = value
    path.write_text(json.dumps(data))
    rc, _, err = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 1 and f"{path}: error[state-corrupt]" in err and ".".join(place[:-1]) in err, err


def test_a_hash_cache_of_another_version_is_ignored_not_trusted(tmp_path):
    from llmspec.runtime.engine.file_hashes import HashCache

    data = tmp_path / "a.txt"
    data.write_text("x")
    cache_file = tmp_path / "hashes.json"
    cache = HashCache(cache_file)
    real = cache.hash(data)
    cache.save()
    body = json.loads(cache_file.read_text())
    assert body["version"] == 1 and body["written_by"] == llmspec_version()
    # a newer llmspec's cache, whose entries this one cannot vouch for: not read
    body["version"] = 2
    next(iter(body["entries"].values()))["sha256"] = "0" * 64
    cache_file.write_text(json.dumps(body))
    again = HashCache(cache_file)
    assert again.hash(data) == real
    assert [w.code for w in again.warnings] == ["hash-cache-ignored"] and again.warnings[0].severity == "warning"


def test_the_hash_cache_before_versions_is_still_read(tmp_path):
    from llmspec.runtime.engine.file_hashes import HashCache

    data = tmp_path / "a.txt"
    data.write_text("x")
    st = data.stat()
    cache_file = tmp_path / "hashes.json"
    cache_file.write_text(json.dumps({str(data.resolve()): {"stat": [st.st_size, st.st_mtime_ns, st.st_ino],
                                                            "sha256": "f" * 64}}))
    cache = HashCache(cache_file)
    assert cache.hash(data) == "f" * 64 and not cache.warnings  # trusted by its stat stamp, no re-hash


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"version": 2, "runs": [' + "1" * 5000 + "]}",
                                  "\udcff"])
def test_hostile_json_is_a_located_error(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(StateError) as info:
        State.load(tmp_path)
    assert info.value.first.code == "state-corrupt" and info.value.first.pos.path == str(path)


def test_a_damaged_stage_config_shows_the_plan_by_fingerprints_with_a_warning(tmp_path, monkeypatch, capsys):
    # Configs in state.json serve the field-by-field diff only (Hypothesis found `rules: null`
    # crashing it); the fingerprints still decide what is rebuilt.
    spec = make_project(tmp_path)
    write_built_state(spec)
    path = tmp_path / ".llmspec/state.json"
    data = json.loads(path.read_text())
    data["stages"]["clean.qa"]["config"]["rules"] = None
    path.write_text(json.dumps(data))
    rc, out, err = run_cli(monkeypatch, capsys, "plan", spec)
    assert rc == 0, err
    assert f"{path}: warning[state-corrupt]" in err and "6 unchanged" in out
