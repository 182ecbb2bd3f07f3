"""apply's progress in a pipe: a plain line every interval while training runs (step, loss,
time left), counting on from a resumed checkpoint, ending on the step count it started with."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from llmspec.commands._progress import ApplyProgress, format_eta

LINE = re.compile(r"^  training: step (\d+)/(\d+) \((\d+)%\)(.*)$", re.M)


def _pipe() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_pipe_prints_a_line_every_interval_even_when_axolotl_is_silent() -> None:
    console, buf = _pipe()
    with ApplyProgress(console, interval_s=0.05) as progress:
        progress.event("stage-start", {"stage": "train"})
        progress.event("train-start", {"total_steps": 301, "resumed": False, "resumed_step": 0})
        time.sleep(0.18)  # Axolotl still importing: nothing parsed yet, the log must not go quiet
        for step in (10, 20, 30):
            progress.event("train-step", {"step": step, "total_steps": 301, "loss": 2.0 - step / 100,
                                          "eval_loss": None})
            time.sleep(0.12)
        progress.event("train-step", {"step": 301, "total_steps": 301, "loss": 0.9, "eval_loss": 1.1})
        progress.event("stage-done", {"stage": "train", "seconds": 1.0})
    out = buf.getvalue()
    lines = LINE.findall(out)
    assert len(lines) >= 5, out
    assert {total for _, total, _, _ in lines} == {"301"}
    assert lines[0][0] == "0" and "Axolotl is starting" in lines[0][3]
    # The pace is known from the second step seen on: the launch time does not count.
    assert all("loss 1.9" in rest for step, _, _, rest in lines if step == "10"), out
    mid = [rest for step, _, _, rest in lines if step in ("20", "30")]
    assert mid and all("loss 1." in r and re.search(r"\d+ (s|min \d\d s) left", r) for r in mid), out
    assert lines[-1][:3] == ("301", "301", "100") and lines[-1][3].endswith("done")
    assert "training: 301 steps" in out
    steps = [int(s) for s, _, _, _ in lines]
    assert steps == sorted(steps)
    # The ticker stops with the stage: nothing more is printed afterwards.
    time.sleep(0.15)
    assert buf.getvalue() == out


def test_a_resumed_run_counts_on_from_its_checkpoint() -> None:
    console, buf = _pipe()
    with ApplyProgress(console, interval_s=0.05) as progress:
        progress.event("train-start", {"total_steps": 40, "resumed": True, "resumed_step": 24})
        time.sleep(0.12)
        progress.event("train-step", {"step": 24, "total_steps": 40, "loss": None, "eval_loss": 1.5})
        progress.event("train-step", {"step": 40, "total_steps": 40, "loss": 1.0, "eval_loss": None})
        progress.event("stage-done", {"stage": "train", "seconds": 1.0})
    out = buf.getvalue()
    assert "training: 40 steps (resuming from the checkpoint at step 24)" in out
    lines = LINE.findall(out)
    assert lines and all(int(step) >= 24 for step, _, _, _ in lines), out
    assert lines[-1][:2] == ("40", "40")


def test_the_trainers_own_count_is_announced_once_and_used_to_the_end() -> None:
    console, buf = _pipe()
    with ApplyProgress(console, interval_s=0.05) as progress:
        progress.event("train-start", {"total_steps": 304, "resumed": False, "resumed_step": 0})
        progress.event("train-total", {"total_steps": 301, "estimated": 304})
        progress.event("train-step", {"step": 150, "total_steps": 301, "loss": 1.0, "eval_loss": None})
        time.sleep(0.12)
        progress.event("train-step", {"step": 301, "total_steps": 301, "loss": 0.9, "eval_loss": None})
        progress.event("stage-done", {"stage": "train", "seconds": 1.0})
    out = buf.getvalue()
    assert out.count("Axolotl counts 301 steps, not the estimated 304") == 1
    assert {total for _, total, _, _ in LINE.findall(out)} == {"301"}
    assert LINE.findall(out)[-1][:2] == ("301", "301")


def test_only_the_trainers_bars_are_read_as_steps() -> None:
    from llmspec.runtime.train.run import TRAINER_BAR

    assert TRAINER_BAR.findall("  8%|▊         | 1/12 [00:00<00:04,  2.41it/s]") == [("1", "12")]
    # Axolotl's dataset maps once turned a 12-step run into "11 steps".
    assert not TRAINER_BAR.findall("Tokenizing Prompts (num_proc=1): 100%|██████████| 11/11 [00:00<00:00]")
    assert not TRAINER_BAR.findall("Saving the dataset (1/1 shards): 100%|██████████| 11/11 [00:06<00:00]")


def test_a_terminal_gets_the_bar_not_the_ticker() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with ApplyProgress(console, interval_s=0.02) as progress:
        progress.event("train-start", {"total_steps": 10, "resumed": False, "resumed_step": 0})
        time.sleep(0.1)
        progress.event("stage-done", {"stage": "train", "seconds": 1.0})
    assert not LINE.search(buf.getvalue())


def test_format_eta() -> None:
    assert format_eta(None) == "time left unknown"
    assert format_eta(42.4) == "42 s left"
    assert format_eta(125) == "2 min 05 s left"
    assert format_eta(7300) == "2 h 01 min left"


def test_expected_steps_is_axolotls_count() -> None:
    from llmspec.runtime.train.run import expected_steps

    def steps(examples, micro, accumulate, epochs, max_steps=None, gpus=1):
        return expected_steps(examples, micro=micro, accumulate=accumulate, gpus=gpus, epochs=epochs,
                              max_steps=max_steps)

    # The support-bot example: 301 examples, 8 epochs of batch 8. Axolotl sets the Trainer's
    # max_steps to ceil(301 * 8 / 8) = 301, not 8 x ceil(301 / 8) = 304.
    assert steps(301, 8, 1, 8) == 301
    assert steps(100, 8, 1, 2) == 25
    assert steps(100, 4, 2, 3, gpus=2) == 19
    assert steps(100, 8, 1, 2, max_steps=7) == 7


def test_replay_and_model_conversion_say_what_they_do() -> None:
    console, buf = _pipe()
    with ApplyProgress(console, interval_s=10) as progress:
        progress.event("model-convert-start", {"file": "/x/SmolLM2.Q4_1.gguf", "target": "/c/gguf-ab"})
        progress.event("model-convert-done", {"target": "/c/gguf-ab"})
        progress.event("replay-answer", {"done": 6, "total": 6})
        progress.event("replay-mixed", {"examples": 6, "wanted": 17, "share": 0.0811, "fraction": 0.2,
                                        "available": 6, "source": "replay", "rejected": {}})
    out = buf.getvalue()
    assert "converting SmolLM2.Q4_1.gguf" in out and "/c/gguf-ab" in out
    assert "the base model answered 6 prompts" in out
    assert "6 examples mixed into the train split (8% of it, 20% asked)" in out
    assert "only 6 of the 17 wanted" in out
