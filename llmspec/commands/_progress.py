"""Progress for apply: a line per stage, a bar for training (steps, loss, ETA) on a terminal.

In a pipe (CI logs) there is no bar: a ticker thread prints one plain line every
``LLMSPEC_PROGRESS_SECONDS`` seconds (10 by default) while training runs, with the step, the
last loss and the time left, whether or not Axolotl printed anything since, so a CI log never
goes silent for long.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
import time

from rich.console import Console

DEFAULT_INTERVAL_S = 10.0


def _interval() -> float:
    try:
        value = float(os.environ.get("LLMSPEC_PROGRESS_SECONDS", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s left"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s left"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min left"


class _TrainingState:
    """What the pipe ticker reports; written by the event thread, read by the ticker."""

    def __init__(self, total: int, start_step: int):
        self.total = total
        self.step = start_step
        self.started = time.monotonic()
        # The pace is measured from the first step seen, not from the launch: Axolotl spends its
        # first minute loading and tokenizing, which would make every early ETA far too long.
        self.first: tuple[float, int] | None = None
        self.loss: float | None = None
        self.eval_loss: float | None = None

    def advance(self, step: int) -> None:
        if step > self.step and self.first is None:
            self.first = (time.monotonic(), step)
        self.step = max(self.step, step)

    def line(self) -> str:
        pct = 100 * self.step / self.total if self.total else 0.0
        head = f"  training: step {self.step}/{self.total} ({pct:.0f}%)"
        if self.first is None:
            waited = int(time.monotonic() - self.started)
            return f"{head}, Axolotl is starting (loading the model, tokenizing), {waited} s so far"
        since, first_step = self.first
        done = self.step - first_step
        eta = (self.total - self.step) * (time.monotonic() - since) / done if done > 0 else None
        parts = [head]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eval_loss is not None:
            parts.append(f"eval_loss {self.eval_loss:.4f}")
        parts.append(format_eta(eta))
        return ", ".join(parts)


class ApplyProgress:
    def __init__(self, console: Console, interval_s: float | None = None):
        self.console = console
        self.live = console.is_terminal
        self.interval_s = interval_s if interval_s is not None else _interval()
        self._progress = None
        self._task = None
        self._training: _TrainingState | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        self._stop_ticker()
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def event(self, kind: str, data: dict) -> None:
        if kind == "stage-start":
            self.console.print(f"- {data['stage']} ...")
        elif kind == "stage-done":
            if self._training is not None:
                self._finish_training()
            self.console.print(f"  {data['stage']} done in {data['seconds']:.1f}s")
            self._drop_task()
        elif kind == "train-start":
            resumed_at = int(data.get("resumed_step") or 0)
            note = f" (resuming from the checkpoint at step {resumed_at})" if resumed_at else (
                " (resuming from the last checkpoint)" if data.get("resumed") else "")
            self.console.print(f"  training: {data['total_steps']} steps{note}")
            self._new_task("training", data["total_steps"])
            if self._task is not None and resumed_at:
                self._progress.update(self._task, completed=resumed_at)
            self._training = _TrainingState(data["total_steps"], resumed_at)
            if not self.live:
                self._start_ticker()
        elif kind == "train-total":
            self.console.print(f"  training: Axolotl counts {data['total_steps']} steps, not the estimated "
                               f"{data['estimated']} (it drops examples longer than sequence_len, and "
                               "sample packing changes the count)")
            if self._training is not None:
                self._training.total = data["total_steps"]
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, total=data["total_steps"])
        elif kind == "train-step":
            state = self._training
            if state is not None:
                state.total = data["total_steps"]
                state.advance(min(data["step"], data["total_steps"]))
                if data.get("loss") is not None:
                    state.loss = data["loss"]
                if data.get("eval_loss") is not None:
                    state.eval_loss = data["eval_loss"]
            if self._progress is not None and self._task is not None:
                loss = data.get("loss")
                info = f"loss {loss:.4f}" if loss is not None else (
                    f"eval_loss {data['eval_loss']:.4f}" if data.get("eval_loss") is not None else "")
                self._progress.update(self._task, completed=min(data["step"], data["total_steps"]),
                                      total=data["total_steps"], info=info)
        elif kind == "model-convert-start":
            self.console.print(f"  converting {Path(data['file']).name} into a model folder (once per file, "
                               "about 30 s for a 135M model)", highlight=False, soft_wrap=True)
        elif kind == "model-convert-done":
            self.console.print(f"  model folder: {data['target']}", highlight=False, soft_wrap=True)
        elif kind == "replay-answer":
            if self._task is None:
                self._new_task("replay answers", data["total"])
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=data["done"], total=data["total"])
            elif data["done"] == data["total"]:
                self.console.print(f"  replay: the base model answered {data['total']} prompts")
        elif kind == "replay-mixed":
            line = (f"  replay: {data['examples']} examples mixed into the train split "
                    f"({data['share']:.0%} of it, {data['fraction']:.0%} asked)")
            if data["examples"] < data["wanted"]:
                line += (f"; only {data['examples']} of the {data['wanted']} wanted could be drawn: "
                         "give more replay prompts (or a lower fraction)")
            self.console.print(line, highlight=False, soft_wrap=True)
        elif kind == "acceptance-start":
            self._new_task("acceptance", data["tests"] * (2 if data.get("baseline") else 1))
        elif kind == "acceptance-test" and self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=data["done"], total=data["total"])

    # ------------------------------------------------------------------ pipe ticker

    def _start_ticker(self) -> None:
        self._stop_ticker()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="llmspec-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            state = self._training
            if state is not None:
                self.console.print(state.line(), highlight=False, soft_wrap=True)

    def _stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def _finish_training(self) -> None:
        self._stop_ticker()
        state = self._training
        self._training = None
        if state is not None and not self.live:
            self.console.print(state.line().replace(format_eta(0.0), "done"), highlight=False,
                               soft_wrap=True)

    def _new_task(self, name: str, total: int) -> None:
        if self._progress is not None:
            self._drop_task()
            self._task = self._progress.add_task(name, total=total, info="")

    def _drop_task(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
