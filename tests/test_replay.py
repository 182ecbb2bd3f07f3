"""Replay without training: what is drawn, where it goes (train split only, counted in the
funnel), answers cut at a sentence, and the replay stage's fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmspec.runtime.dataset.build import RenderError
from llmspec.runtime.replay.build import mix_into_dataset, replay_count, replay_record, trim_answer


def _dataset(tmp_path: Path, train: int = 30, eval_: int = 3) -> Path:
    d = tmp_path / "ds"
    d.mkdir(parents=True)
    rec = lambda i: json.dumps({"messages": [{"role": "user", "content": f"q{i}"},  # noqa: E731
                                             {"role": "assistant", "content": f"a{i}"}]})
    (d / "train.jsonl").write_text("".join(rec(i) + "\n" for i in range(train)))
    (d / "eval.jsonl").write_text("".join(rec(100 + i) + "\n" for i in range(eval_)))
    (d / "origins.jsonl").write_text("".join(json.dumps({"split": "train", "line": i, "source": "qa",
                                                         "origin": f"qa.jsonl:{i}"}) + "\n" for i in range(train)))
    (d / "dataset.json").write_text(json.dumps({
        "train_path": "train.jsonl", "eval_path": "eval.jsonl", "origins_path": "origins.jsonl",
        "train_size": train, "eval_size": eval_, "per_source": {"qa": {"rows_in": train + eval_,
                                                                        "examples": train + eval_, "rejected": {}}}}))
    return d


def _replay(n: int) -> list[dict]:
    return [{"record": replay_record({"prompt": f"general {i}", "answer": f"r{i}"}, "chat"),
             "origin": f"replay:{i + 1}"} for i in range(n)]


def test_replay_count_makes_the_fraction():
    assert replay_count(30, 0.25) == 10  # 10 of 40 = 25%
    assert replay_count(300, 0.5) == 300


def test_mix_goes_to_train_only_and_is_counted(tmp_path):
    d = _dataset(tmp_path)
    eval_before = (d / "eval.jsonl").read_text()
    summary = mix_into_dataset(d, _replay(25), fraction=0.25, seed=1)
    assert summary["examples"] == 10 and summary["available"] == 25 and summary["share"] == 0.25
    meta = json.loads((d / "dataset.json").read_text())
    assert meta["train_size"] == 40
    funnel = meta["per_source"]["replay"]
    assert funnel["rows_in"] == funnel["examples"] + sum(funnel["rejected"].values()) == 25
    train = (d / "train.jsonl").read_text().splitlines()
    assert len(train) == 40 and sum("general" in line for line in train) == 10
    assert (d / "eval.jsonl").read_text() == eval_before
    origins = [json.loads(x) for x in (d / "origins.jsonl").read_text().splitlines()]
    assert [o["line"] for o in origins] == list(range(40))
    assert {o["source"] for o in origins[30:]} == {"replay"}


def test_mix_is_seeded_and_capped(tmp_path):
    a = mix_into_dataset(_dataset(tmp_path / "a"), _replay(25), fraction=0.25, seed=7)
    b = mix_into_dataset(_dataset(tmp_path / "b"), _replay(25), fraction=0.25, seed=7)
    assert (tmp_path / "a/ds/train.jsonl").read_text() == (tmp_path / "b/ds/train.jsonl").read_text()
    assert a == b
    few = mix_into_dataset(_dataset(tmp_path / "c"), _replay(3), fraction=0.5, seed=7)
    assert few["wanted"] == 30 and few["examples"] == 3


def test_a_cut_off_answer_ends_at_its_last_sentence():
    assert trim_answer("Paris is the capital. It is big and", complete=False) == "Paris is the capital."
    assert trim_answer("no sentence end here", complete=False) is None
    assert trim_answer("  Whole answer  ", complete=True) == "Whole answer"
    assert trim_answer("   ", complete=True) is None


class _Fitted:
    def __init__(self, record, tokens):
        self.record, self.tokens, self.truncated = record, tokens, False


def test_replay_examples_are_measured_like_the_rest_and_too_long_ones_rejected(tmp_path):
    """The dataset's length check applies to replay too: an over-length answer would otherwise
    be dropped by Axolotl without a word. Drawing goes on past rejected examples."""
    d = _dataset(tmp_path)
    meta = json.loads((d / "dataset.json").read_text())
    meta["tokens"] = {"train": 300, "eval": 30, "max_per_example": 12, "sequence_len": 64, "truncated": 0,
                      "method": "axolotl"}
    (d / "dataset.json").write_text(json.dumps(meta))

    def fit(record):
        answer = record["messages"][-1]["content"]
        if answer in ("r1", "r2", "r3"):
            raise RenderError("too_long", "over sequence_len")
        return _Fitted(record, 20)

    summary = mix_into_dataset(d, _replay(25), fraction=0.25, seed=1, fit=fit)
    assert summary["examples"] == 10
    meta = json.loads((d / "dataset.json").read_text())
    funnel = meta["per_source"]["replay"]
    assert funnel["rows_in"] == funnel["examples"] + sum(funnel["rejected"].values()) == 25
    train = (d / "train.jsonl").read_text()
    assert '"r1"' not in train and '"r2"' not in train and '"r3"' not in train
    assert meta["tokens"]["train"] == 300 + 10 * 20 and meta["tokens"]["max_per_example"] == 20
    origins = [json.loads(x) for x in (d / "origins.jsonl").read_text().splitlines()]
    assert [o["tokens"] for o in origins if o["source"] == "replay"] == [20] * 10


@pytest.mark.parametrize("style, keys", [("chat", {"messages"}), ("alpaca", {"instruction", "input", "output"}),
                                         ("completion", {"text"}), ("input_output", {"segments"})])
def test_replay_records_take_the_dataset_style(style, keys):
    record = replay_record({"prompt": "What is 2+2?", "answer": " 4.", "system": "Be brief."}, style)
    assert set(record) == keys
    assert "4." in json.dumps(record) and "What is 2+2?" in json.dumps(record)
