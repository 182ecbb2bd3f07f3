"""Progress for apply: a line per stage, a bar for training (steps, loss, ETA). Quiet in pipes."""

from __future__ import annotations

import time

from rich.console import Console


class ApplyProgress:
    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self._progress = None
        self._task = None
        self._last_print = 0.0

    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def event(self, kind: str, data: dict) -> None:
        if kind == "stage-start":
            self.console.print(f"- {data['stage']} ...")
        elif kind == "stage-done":
            self.console.print(f"  {data['stage']} done in {data['seconds']:.1f}s")
            self._drop_task()
        elif kind == "train-start":
            note = " (resuming from the last checkpoint)" if data.get("resumed") else ""
            self.console.print(f"  training: {data['total_steps']} steps{note}")
            self._new_task("training", data["total_steps"])
        elif kind == "train-step":
            loss = data.get("loss")
            info = f"loss {loss:.4f}" if loss is not None else (
                f"eval_loss {data['eval_loss']:.4f}" if data.get("eval_loss") is not None else "")
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=min(data["step"], data["total_steps"]), info=info)
            elif time.monotonic() - self._last_print > 10:
                self._last_print = time.monotonic()
                self.console.print(f"  step {data['step']}/{data['total_steps']} {info}")
        elif kind == "acceptance-start":
            self._new_task("acceptance", data["tests"] * (2 if data.get("baseline") else 1))
        elif kind == "acceptance-test" and self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=data["done"], total=data["total"])

    def _new_task(self, name: str, total: int) -> None:
        if self._progress is not None:
            self._drop_task()
            self._task = self._progress.add_task(name, total=total, info="")

    def _drop_task(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
