"""Plan diffs a reviewer can trust: lists by identity (tests by name, rules by name or kind),
real line diffs for long text, and reasons as stable codes."""

from __future__ import annotations

import json
from pathlib import Path

from llmspec.compiler.changes import ChangeOp, changed_span, text_diff
from llmspec.compiler.diff import PlanAction, ReasonCode, diff_plan
from llmspec.compiler.plan import build_plan
from llmspec.compiler.render import render_json, render_markdown, render_text
from llmspec.spec.load import check_spec
from test_plan import HASHES, compile_text


RULES = """\
    - require: {columns: [question, answer]}
    - reject_matching: {name: placeholder, column: answer, patterns: ['^TBD$']}
    - dedupe: {columns: [question], method: exact, sources: [tickets]}
"""
TESTS = """\
    - {name: refund, prompt: Can I get a refund?, expect: [{contains: 30 days}]}
    - {name: reset, prompt: How do I reset the router?, expect: [{contains: reset button}]}
    - {name: warranty, prompt: What warranty is there?, expect: [{contains: 2-year}]}
"""
SYSTEM = """\
    You are Acme's support assistant.
    Answer in English.
    Be brief: two sentences at most.
    Never ask for a password.
    Point to the help centre for anything else.
    Sign off with "Acme Support".
"""


def spec(rules: str = RULES, tests: str = TESTS, system: str = SYSTEM, user: str = "question") -> str:
    return f"""\
llmspec: 1
project: demo
base_model: {{id: builtin:tiny}}
sources:
  tickets: {{path: data/t.jsonl, format: jsonl, columns: {{question: str, answer: str}}}}
  faq: {{path: data/f.jsonl, format: jsonl, columns: {{question: str, answer: str}}}}
quality:
  rules:
{rules}format:
  style: chat
  system: |
{system}  map:
    tickets: {{user: {json.dumps(user)}, assistant: answer}}
    faq: {{user: question, assistant: answer}}
training: {{learning_rate: 0.0002, epochs: 2, hardware: cpu}}
acceptance:
  tests:
{tests}"""


def diff_of(tmp_path: Path, old_text: str, new_text: str, *, configs: bool = True):
    old, meta_old = compile_text(tmp_path, old_text)
    new, meta_new = compile_text(tmp_path, new_text)
    previous = {s.id: {"fingerprint": s.fingerprint, "config": s.config if configs else None} for s in old.stages}
    return diff_plan(new, previous, baseline="state", metadata_old=meta_old, metadata_new=meta_new)


def stage(diff, stage_id: str):
    return next(s for s in diff.stages if s.id == stage_id)


def rendered(diff, stage_id: str) -> list[str]:
    return [c.render() for c in stage(diff, stage_id).changes]


# ----------------------------------------------------------------------------- acceptance tests


def test_a_test_added_at_the_top_is_one_added_test_with_its_name(tmp_path):
    first = "    - {name: first, prompt: Hello?, expect: [{contains: hi}]}\n"
    diff = diff_of(tmp_path, spec(), spec(tests=first + TESTS))
    acc = stage(diff, "acceptance")
    assert acc.action == PlanAction.CHANGE
    assert rendered(diff, "acceptance") == ["+ acceptance.tests[first] (added at position 1)"]
    assert acc.changes[0].detail() == ["prompt: Hello?", "expect[0].contains: hi"]
    assert diff.metadata == []      # no false "renamed refund -> first"
    text = render_text(diff, None, project="demo")
    assert "tests[1]" not in text and "renamed" not in text


def test_a_removed_test_is_named(tmp_path):
    without_reset = "".join(x for x in TESTS.splitlines(keepends=True) if "reset" not in x)
    diff = diff_of(tmp_path, spec(), spec(tests=without_reset))
    assert rendered(diff, "acceptance") == ["- acceptance.tests[reset] (removed from position 2)"]
    assert diff.metadata == []


def test_reordered_tests_show_as_moves_and_re_test(tmp_path):
    lines = TESTS.splitlines(keepends=True)
    diff = diff_of(tmp_path, spec(), spec(tests=lines[2] + lines[0] + lines[1]))
    # tests run in left-padded batches and the fingerprint hashes their order: a re-test, shown as
    # the one test that moved (not three "changed" tests)
    assert stage(diff, "acceptance").action == PlanAction.CHANGE
    assert rendered(diff, "acceptance") == ["acceptance.tests[warranty]: moved from position 3 to 1"]
    assert stage(diff, "acceptance").codes == [ReasonCode.CONFIG_CHANGED]


def test_an_edited_test_shows_the_field_under_its_name(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(tests=TESTS.replace("2-year", "3-year")))
    assert rendered(diff, "acceptance") == ["acceptance.tests[warranty].expect[0].contains: 2-year -> 3-year"]


def test_a_renamed_test_is_metadata_only(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(tests=TESTS.replace("name: reset", "name: factory-reset")))
    assert stage(diff, "acceptance").action == PlanAction.UNCHANGED
    assert [m.render() for m in diff.metadata] == ["acceptance.tests[reset]: renamed to factory-reset"]
    assert diff.metadata[0].op == ChangeOp.RENAMED


def test_renamed_and_added_tests_at_once(tmp_path):
    edited = TESTS.replace("name: refund", "name: refunds") + "    - {name: new, prompt: New?, expect: [{contains: x}]}\n"
    diff = diff_of(tmp_path, spec(), spec(tests=edited))
    assert rendered(diff, "acceptance") == ["+ acceptance.tests[new] (added at position 4)"]
    assert [m.render() for m in diff.metadata] == ["acceptance.tests[refund]: renamed to refunds"]


def test_lockfile_baseline_still_names_added_tests_and_renames(tmp_path):
    first = "    - {name: first, prompt: Hello?, expect: [{contains: hi}]}\n"
    diff = diff_of(tmp_path, spec(), spec(tests=first + TESTS), configs=False)
    assert rendered(diff, "acceptance") == ["+ acceptance.tests[first] (added at position 1)"]
    assert stage(diff, "acceptance").codes == [ReasonCode.FINGERPRINT_CHANGED]
    renamed = diff_of(tmp_path, spec(), spec(tests=TESTS.replace("name: reset", "name: r2")), configs=False)
    assert [m.render() for m in renamed.metadata] == ["acceptance.tests[reset]: renamed to r2"]


def test_tests_without_names_in_the_baseline_pair_by_content(tmp_path):
    old, _ = compile_text(tmp_path, spec())
    new, meta = compile_text(tmp_path, spec(tests="    - {name: first, prompt: Hi?, expect: [{contains: x}]}\n" + TESTS))
    previous = {s.id: {"fingerprint": s.fingerprint, "config": s.config} for s in old.stages}
    diff = diff_plan(new, previous, baseline="state", metadata_old=None, metadata_new=meta)
    assert rendered(diff, "acceptance") == ["+ acceptance.tests[0] (added at position 1)"]


# ----------------------------------------------------------------------------- quality rules


def test_a_rule_added_at_the_top_is_one_added_rule(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(rules="    - length: {column: answer, min_chars: 5}\n" + RULES))
    for sid in ("clean.tickets", "clean.faq"):
        assert rendered(diff, sid) == ["+ quality.rules[length] (added at position 1)"]
    assert stage(diff, "clean.tickets").changes[0].detail() == [
        "kind: length", "column: answer", "min_chars: 5"]


def test_a_removed_rule_is_named(tmp_path):
    rules = "".join(x for x in RULES.splitlines(keepends=True) if "placeholder" not in x)
    diff = diff_of(tmp_path, spec(), spec(rules=rules))
    assert rendered(diff, "clean.faq") == ["- quality.rules[placeholder] (removed from position 2)"]


def test_reordered_rules_show_as_a_move(tmp_path):
    lines = RULES.splitlines(keepends=True)
    diff = diff_of(tmp_path, spec(), spec(rules=lines[1] + lines[2] + lines[0]))
    # cleaning runs rules in order (a fill before a require keeps rows): the order is part of the
    # config, and the fewest moves that explain the new order are shown
    assert rendered(diff, "clean.tickets") == ["quality.rules[require]: moved from position 1 to 3"]
    assert rendered(diff, "clean.faq") == ["quality.rules[require]: moved from position 1 to 2"]
    assert stage(diff, "clean.faq").action == PlanAction.CHANGE


def test_a_named_rule_edit_is_shown_under_its_name(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(rules=RULES.replace("'^TBD$'", "'^TBD$', '^N/A$'")))
    assert rendered(diff, "clean.faq") == ["quality.rules[placeholder].patterns: ['^TBD$'] -> ['^TBD$', '^N/A$']"]


def test_unnamed_rules_of_one_kind_pair_by_content_then_position(tmp_path):
    minhash = "    - dedupe: {columns: [question], method: minhash, threshold: 0.8, sources: [tickets]}\n"
    lines = RULES.splitlines(keepends=True)
    diff = diff_of(tmp_path, spec(), spec(rules=lines[0] + lines[1] + minhash + lines[2]))
    # the exact dedupe is the same rule; its reject reason becomes dedupe#2, which rejects show
    assert rendered(diff, "clean.tickets") == ["+ quality.rules[dedupe#1] (added at position 3)",
                                               "quality.rules[dedupe]: renamed to dedupe#2"]
    edited = diff_of(tmp_path, spec(), spec(rules=RULES.replace("method: exact", "method: fingerprint")))
    assert rendered(edited, "clean.tickets") == ["quality.rules[dedupe].method: exact -> fingerprint"]


def test_a_rule_for_another_source_leaves_this_source_unchanged(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(rules="    - length: {column: answer, min_chars: 5, sources: [tickets]}\n"
                                           + RULES))
    # a rule's index among every source's rules is not part of a source's cleaning: faq rebuilds nothing
    faq = stage(diff, "clean.faq")
    assert faq.action == PlanAction.UNCHANGED and faq.changes == []
    assert rendered(diff, "clean.tickets") == ["+ quality.rules[length] (added at position 1)"]


# ----------------------------------------------------------------------------- long text


def test_a_long_system_prompt_edit_shows_the_changed_line(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(system=SYSTEM.replace("two sentences", "three sentences")))
    change = stage(diff, "dataset").changes[0]
    assert change.path == "format.system" and change.render() == "format.system: changed (+1 -1 lines)"
    assert change.detail() == [
        "@@ -1,5 +1,5 @@",
        " You are Acme's support assistant.",
        " Answer in English.",
        "-Be brief: two sentences at most.",
        "+Be brief: three sentences at most.",
        " Never ask for a password.",
        " Point to the help centre for anything else.",
    ]
    text = render_text(diff, None, project="demo")
    assert "        -Be brief: two sentences at most.\n        +Be brief: three sentences at most." in text
    assert "Acme Support" not in text          # three lines away: outside the context
    md = render_markdown(diff, None, project="demo")
    assert "`format.system: changed (+1 -1 lines)`" in md
    assert "```diff\n@@ -1,5 +1,5 @@" in md and "+Be brief: three sentences at most." in md
    data = json.loads(render_json(diff, None, project="demo"))
    ds = next(s for s in data["stages"] if s["id"] == "dataset")
    assert ds["changes"][0]["diff"] == change.detail() and ds["changes"][0]["new"].startswith("You are")


def test_a_change_past_character_57_of_one_line_is_visible(tmp_path):
    long = "You are Acme's support assistant. You answer politely and briefly, always in English, and never X."
    old = spec(system=f"    {long}\n")
    diff = diff_of(tmp_path, old, old.replace("never X.", "never Y."))
    change = stage(diff, "dataset").changes[0]
    assert change.render() == 'format.system: "…in English, and never X." -> "…in English, and never Y."'
    assert change.detail() == [f"-{long}", f"+{long.replace('X.', 'Y.')}"]


def test_a_template_edit_is_a_line_diff(tmp_path):
    old = "{{ question | trim }} (asked by a customer of Acme; answer with care, or say 'overview')"
    diff = diff_of(tmp_path, spec(user=old), spec(user=old.replace("'overview'", "'summary'")))
    change = stage(diff, "dataset").changes[0]
    assert change.path == "format.map.tickets.user"
    assert "'overview'" in change.render() and "'summary'" in change.render()


def test_text_diff_and_changed_span_helpers():
    assert text_diff("a\nb\nc", "a\nB\nc") == ["@@ -1,3 +1,3 @@", " a", "-b", "+B", " c"]
    assert text_diff(None, "x\ny") == ["@@ -0,0 +1,2 @@", "+x", "+y"]
    assert changed_span("same start, then old end", "same start, then new end", context=6) == (
        '"…then old end"', '"…then new end"')


# ----------------------------------------------------------------------------- reasons


def test_reasons_are_codes_with_prose(tmp_path):
    old, meta = compile_text(tmp_path, spec())
    previous = {s.id: {"fingerprint": s.fingerprint, "config": s.config} for s in old.stages}
    data, _ = compile_text(tmp_path, spec(), {**HASHES, "faq": {"data/f.jsonl": "c" * 64}})
    diff = diff_plan(data, previous, baseline="state", metadata_old=meta, metadata_new=meta)
    assert stage(diff, "sources.faq").codes == [ReasonCode.DATA_CHANGED]
    assert stage(diff, "clean.faq").codes == [ReasonCode.INPUT_CHANGED]
    assert stage(diff, "clean.faq").reasons[0].stage == "sources.faq"

    path = tmp_path / "llmspec.yaml"
    loaded = check_spec(path)
    other_model = build_plan(loaded.spec, spec_path="llmspec.yaml", source_files=HASHES,
                             base_model_fingerprint="builtin:tiny@2")
    diff = diff_plan(other_model, previous, baseline="state")
    # the dataset is measured with the base model's tokenizer: it changes too, and so train's input
    assert stage(diff, "dataset").codes == [ReasonCode.BASE_MODEL_CHANGED]
    assert ReasonCode.BASE_MODEL_CHANGED in stage(diff, "train").codes
    assert stage(diff, "acceptance").codes == [ReasonCode.BASE_MODEL_CHANGED, ReasonCode.INPUT_CHANGED]

    # same config, same inputs, another fingerprint: a tool version moved
    moved = {**previous, "promote": {"fingerprint": "0" * 64, "config": {}}}
    assert stage(diff_plan(old, moved, baseline="state"), "promote").codes == [ReasonCode.TOOLS_CHANGED]

    fresh = diff_plan(old, None, baseline="none")
    assert {c for s in fresh.stages for c in s.codes} == {ReasonCode.NEW}
    assert "not built yet" not in render_text(fresh, None, project="demo")


def test_json_keeps_plain_strings_for_kinds_actions_and_codes(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(tests=TESTS.replace("2-year", "3-year")))
    data = json.loads(render_json(diff, None, project="demo"))
    acc = next(s for s in data["stages"] if s["id"] == "acceptance")
    assert (acc["kind"], acc["action"], acc["symbol"], acc["verb"]) == ("acceptance", "change", "~", "re-test")
    assert [r["code"] for r in acc["reasons"]] == ["config-changed"]
    assert acc["changes"] == [{"path": "acceptance.tests[warranty].expect[0].contains", "op": "changed",
                               "old": "2-year", "new": "3-year"}]


def test_state_baseline_pairs_test_names_from_the_run_that_built_acceptance(tmp_path):
    """A later run that stopped before acceptance recorded newer names; pairing those with the
    older acceptance config would show a replaced test as an edited one."""
    from llmspec.api import _previous_from_state, load_spec
    from llmspec.runtime.engine.state import State, StageRecord

    old, meta_old = compile_text(tmp_path, spec())
    replaced = TESTS.replace("name: reset, prompt: How do I reset the router?", "name: pairing, prompt: How do I pair?")
    new, meta_new = compile_text(tmp_path, spec(tests=replaced))
    state = State(root=tmp_path / ".llmspec")
    state.stages = {s.id: StageRecord(fingerprint=s.fingerprint, config=s.config, run="r1", outputs={}, built_at="t")
                    for s in old.stages}
    state.runs = [{"run": "r1", "outcome": "promoted", "metadata": meta_old},
                  {"run": "r2", "outcome": "failed", "metadata": meta_new}]
    state.root.mkdir()
    state.save()
    previous, meta, _ = _previous_from_state(load_spec(tmp_path / "llmspec.yaml"))
    diff = diff_plan(new, previous, baseline="state", metadata_old=meta, metadata_new=meta_new)
    assert rendered(diff, "acceptance") == ["- acceptance.tests[reset] (removed from position 2)",
                                            "+ acceptance.tests[pairing] (added at position 2)"]


def test_color_rendering_keeps_brackets_and_backslashes_literal(tmp_path):
    import io

    from rich.console import Console

    old = spec(system="    one\n    two ends in a backslash \\\\\n    three [bold]\n")
    diff = diff_of(tmp_path, old, old.replace("one", "uno").replace("two", "dos"))
    buf = io.StringIO()
    Console(file=buf, no_color=True, width=200).print(render_text(diff, None, project="demo", color=True))
    out = buf.getvalue()
    assert "-one\n" in out and "+uno\n" in out
    assert "+dos ends in a backslash \\\\" in out and "three [bold]" in out and "[/]" not in out


def test_markdown_details_fence_outlasts_backticks_in_the_text(tmp_path):
    diff = diff_of(tmp_path, spec(), spec(system=SYSTEM.replace("Answer in English.", "Answer in ```English```.")))
    md = render_markdown(diff, None, project="demo")
    assert "````diff\n" in md and "+Answer in ```English```.\n" in md and md.count("````") == 2


def test_a_source_added_first_is_one_new_source(tmp_path):
    """Sources are stages named by source: adding one first shifts no other source."""
    old = spec()
    new = old.replace("sources:\n", "sources:\n  aaa: {path: data/a.jsonl, format: jsonl, columns: {question: str, "
                                    "answer: str}}\n").replace("    faq: {user", "    aaa: {user: question, "
                                                               "assistant: answer}\n    faq: {user")
    a, meta = compile_text(tmp_path, old)
    b, _ = compile_text(tmp_path, new, {**HASHES, "aaa": {"data/a.jsonl": "d" * 64}})
    previous = {s.id: {"fingerprint": s.fingerprint, "config": s.config} for s in a.stages}
    diff = diff_plan(b, previous, baseline="state", metadata_old=meta, metadata_new=meta)
    actions = {s.id: s.action for s in diff.stages}
    assert actions["sources.aaa"] == actions["clean.aaa"] == PlanAction.NEW
    assert actions["sources.tickets"] == actions["clean.tickets"] == actions["clean.faq"] == PlanAction.UNCHANGED
    assert rendered(diff, "dataset") == ["format.map.aaa.user: (none) -> question",
                                         "format.map.aaa.assistant: (none) -> answer"]
