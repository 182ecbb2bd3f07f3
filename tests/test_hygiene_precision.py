"""The instruction-hygiene recipe's precision, measured on hand-labelled rows of real datasets.

``fixtures/hygiene_labels.json`` holds every row of ../shared/data (GPTeacher roleplay and
toolformer, GSM8K train: 18,292 rows) that the recipe's rules flag, or that an earlier,
looser version of a rule flagged, plus a seeded random sample of 60 rows; each row was read
and labelled by hand with the rules that must flag it (``defects``). The rows run through
the real cleaning engine with the recipe's rules; each rule's precision on them (flagged
rows labelled with that rule / flagged rows) must stay >= 95%. When the datasets are on this
machine, the recipe also runs over all of them and every row it flags must be in the
labelled file, so a rule that starts flagging new rows fails here until they are labelled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import REPO_ROOT

LABELS = json.loads((Path(__file__).parent / "fixtures" / "hygiene_labels.json").read_text(encoding="utf-8"))
DATA_DIRS = (REPO_ROOT.parent / "shared" / "data", REPO_ROOT.parent.parent / "shared" / "data")
DATASETS = ("gpteacher-roleplay", "gpteacher-toolformer", "gsm8k-train")
MIN_PRECISION = 0.95

# Alpaca-style defects the real sample lacks (its 0-hit rules), written here to show each
# rule still catches what it is for: (row, the rule that must flag it).
CONSTRUCTED = [
    ({"instruction": "Name a fruit.", "input": "", "output": "   "}, "empty_output"),
    ({"instruction": "Name a fruit.", "input": "", "output": "N/A"}, "placeholder_output"),
    ({"instruction": "Name a fruit.", "input": "", "output": "<no output>"}, "placeholder_output"),
    ({"instruction": "Sort these.", "input": "<noinput>", "output": "a, b"}, "placeholder_input"),
    ({"instruction": "Sort these.", "input": "No Input", "output": "a, b"}, "placeholder_input"),
    ({"instruction": "Sort these.", "input": "no_input", "output": "a, b"}, "placeholder_input"),
    ({"instruction": "Sort these.", "input": "b, a <No Input>", "output": "a, b"}, "glued_placeholder"),
    ({"instruction": "Add 2 and 2.", "input": "", "output": "4\n\n2. Instruction: Add 3 and 3.\n6"},
     "merged_instructions"),
    ({"instruction": "Write a cover letter.", "input": "", "output": "Dear [Recipient's Name],\nI apply."},
     "template_leftover"),
    ({"instruction": "Write a memo.", "input": "", "output": "From: [Company Name]\nAll good."}, "template_leftover"),
    ({"instruction": "Generate an image of a cat on a sofa.", "input": "", "output": "Here it is."}, "image_request"),
    ({"instruction": "Design a logo for a bakery.", "input": "", "output": "A loaf."}, "image_request"),
    ({"instruction": "Draw me a picture of the sea.", "input": "", "output": "Waves."}, "image_request"),
]


def _quality():
    from llmspec.spec.models import QualitySpec
    from llmspec.spec.recipes import builtin_recipes

    data = YAML(typ="safe", pure=True).load(builtin_recipes()["instruction-hygiene"])
    return QualitySpec.model_validate(data["quality"])


def _flagged(rows: list[dict], origins: list[str]) -> dict[str, set[str]]:
    """rule name -> origins it rejected or rewrote, each rule run alone through the real
    cleaning engine (so each rule's precision is its own, whatever ran before it)."""
    import polars as pl

    from llmspec.compiler.cleaning import compile_cleaning
    from llmspec.runtime.clean.run import run_cleaning
    from llmspec.runtime.sources import SourceBatch

    none = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})
    columns = ["instruction", "input", "output"]
    frame = pl.DataFrame({c: [r[c] or "" for r in rows] for c in columns} | {"_origin": origins})
    quality = _quality()
    out: dict[str, set[str]] = {}
    for rule in quality.rules:
        plan = compile_cleaning(quality.model_copy(update={"rules": [rule]}), "rows", columns)
        (step,) = plan.steps
        result = run_cleaning(SourceBatch("rows", frame, none, frame.height), plan)
        hit = set(result.rejects["_origin"].to_list())
        if step.action == "modify":  # rewritten rows: compare every column with the input
            before = frame.join(result.kept, on="_origin", suffix="_after")
            changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_after")) for c in columns])
            hit |= set(before.filter(changed)["_origin"].to_list())
        out[step.reason] = hit
    return out


def _origin(item: dict) -> str:
    return f"{item['dataset']}:{item['index']}"


def test_every_rule_keeps_its_precision_on_the_labelled_rows():
    items = LABELS["rows"]
    flagged = _flagged([i["row"] for i in items], [_origin(i) for i in items])
    labels = {_origin(i): set(i["defects"]) for i in items}
    report = {}
    for rule, origins in flagged.items():
        if not origins:
            continue
        right = sum(1 for o in origins if rule in labels[o])
        report[rule] = (right, len(origins))
        assert right / len(origins) >= MIN_PRECISION, (
            f"{rule}: precision {right}/{len(origins)} on the labelled rows; false positives: "
            f"{sorted(o for o in origins if rule not in labels[o])[:10]}")
    # the measured figures docs/spec-language.md quotes
    assert report == {"placeholder_input": (3, 3), "glued_placeholder": (1, 1), "template_leftover": (8, 8)}
    # the looser rules' former hits are all kept now: 161 url-only inputs, 11 picture words
    assert len([i for i in items if "former" in i["note"]]) == 172


def test_constructed_defects_are_caught():
    rows = [r for r, _ in CONSTRUCTED]
    flagged = _flagged(rows, [f"c{n}" for n in range(len(rows))])
    for n, (row, rule) in enumerate(CONSTRUCTED):
        assert f"c{n}" in flagged.get(rule, set()), (rule, row)
    # and nothing else: every constructed row is flagged by its own rule only
    assert sum(len(v) for v in flagged.values()) == len(CONSTRUCTED)


def _data_dir() -> Path | None:
    return next((d for d in DATA_DIRS if all((d / f"{n}.json").is_file() for n in DATASETS)), None)


@pytest.mark.skipif(_data_dir() is None, reason="../shared/data is not on this machine")
def test_every_hit_on_the_real_datasets_is_labelled():
    labelled = {_origin(i) for i in LABELS["rows"]}
    rows, origins = [], []
    for name in DATASETS:
        for n, row in enumerate(json.loads((_data_dir() / f"{name}.json").read_text(encoding="utf-8"))):
            rows.append(row)
            origins.append(f"{name}:{n}")
    flagged = _flagged(rows, origins)
    unlabelled = {rule: sorted(o - labelled)[:10] for rule, o in flagged.items() if o - labelled}
    assert not unlabelled, f"label these rows in tests/fixtures/hygiene_labels.json: {unlabelled}"
