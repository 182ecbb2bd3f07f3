"""The batched cleaning engine: a source's rows go through the plan one batch at a time.

Per batch the per-row rules run as ``run.py`` defines them (``modify_batch``/``reject_batch``);
an exact or fingerprint dedupe checks the batch against ``SeenKeys`` (hashes of the keys seen
so far, not rows). A MinHash dedupe is a barrier: the batches reaching it are spilled (kept in
memory when there is no spill folder), ``NearStage`` finds the groups, and the rules after it
run in a second pass over the spilled batches. Kept rows and rejects go to a sink batch by batch.

Every row carries ``__ord``, its position in the source, so each stage decides by rows, not by
batches: the batch size never changes which rows are kept or why (tested).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    import polars as pl

    from llmspec.compiler.cleaning import CleaningPlan, CleaningStep


def is_barrier(step: "CleaningStep") -> bool:
    return step.kind == "dedupe" and step.args["method"] == "minhash"


def segments(plan: "CleaningPlan") -> list[tuple[list["CleaningStep"], "CleaningStep | None"]]:
    """The plan cut at its MinHash rules: (steps before, the barrier or None for the last)."""
    out, cur = [], []
    for step in plan.steps:
        if is_barrier(step):
            out.append((cur, step))
            cur = []
        else:
            cur.append(step)
    out.append((cur, None))
    return out


class Spill:
    """Batches that wait for a barrier: in memory up to ``MEMORY_BUDGET`` bytes (small sources
    never touch the disk), then Parquet files in ``folder``; all in memory without a folder.
    The budget is small: a filtered batch's strings still pin its parent's buffers, so the
    estimate undercounts (a 256 MiB budget held ~350 MiB of RSS at 1.6M lines; spilling all
    costs ~0.8 s CPU of 11 at 400k lines)."""

    MEMORY_BUDGET = 32 << 20

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.items: list[Any] = []
        self.held = 0

    def put(self, df: "pl.DataFrame") -> None:
        size = df.estimated_size()
        if self.folder is None or self.held + size <= self.MEMORY_BUDGET:
            self.held += size
            self.items.append(df)
            return
        path = self.folder / f"spill-{id(self)}-{len(self.items)}.parquet"
        df.write_parquet(path, compression="lz4")
        self.items.append(path)

    @staticmethod
    def _load(item) -> "pl.DataFrame":
        import polars as pl

        return pl.read_parquet(item) if isinstance(item, Path) else item

    def __iter__(self) -> Iterator["pl.DataFrame"]:
        for item in self.items:
            yield self._load(item)

    def drain(self) -> Iterator["pl.DataFrame"]:
        """Each batch once more, its file deleted (its memory let go) once read."""
        items, self.items, self.held = self.items, [], 0
        while items:
            item = items.pop(0)
            df = self._load(item)
            if isinstance(item, Path):
                item.unlink(missing_ok=True)
            yield df


class Engine:
    """Runs ``plan`` over batches (``SourceBatch``es: rows with ``_origin``, reader rejects)."""

    def __init__(self, plan: "CleaningPlan", sink, *, count_tokens: Callable | None = None,
                 progress: Callable | None = None, spill_dir: Path | None = None):
        self.plan, self.sink = plan, sink
        self.count_tokens, self.progress = count_tokens, progress
        self.spill_dir = spill_dir
        self.rows_in = self.rows_kept = 0
        self.modified = {s.reason: 0 for s in plan.steps if s.action == "modify"}
        self.notes: list[str] = []
        self.seconds: dict[str, float] = {}
        self.seen: dict[int, Any] = {}

    # ------------------------------------------------------------------ the run

    def run(self, batches: Iterable[Any]) -> None:
        if self.spill_dir is None:
            self._run(batches, None)
            return
        with tempfile.TemporaryDirectory(prefix="llmspec-clean-", dir=self.spill_dir) as tmp:
            self._run(batches, Path(tmp))

    def _run(self, batches: Iterable[Any], folder: Path | None) -> None:
        stream = self._tagged(batches)
        total = len(self.plan.steps)
        done = 0
        for steps, barrier in segments(self.plan):
            if barrier is None:
                for df in stream:
                    df = self._apply(df, steps, done, total)
                    self.rows_kept += df.height
                    self.sink.kept(df)
                break
            from llmspec.runtime.clean.near_stage import NearStage

            spill, stage = Spill(folder), NearStage(barrier, folder)
            self._sketch_batches(stream, steps, done, total, spill, stage, barrier.reason)
            self.seen.clear()  # dedupe state of the rules before the barrier: no longer needed
            _give_back_free_memory()
            t0 = time.perf_counter()
            found = stage.finish(iter(spill))
            self._time(barrier.reason, t0)
            done += len(steps) + 1
            stream = self._after_barrier(spill, found, barrier)
        if self.progress:
            self.progress(self._step_progress(self.rows_kept, "done", total, total))

    def _sketch_batches(self, stream, steps, done: int, total: int, spill: "Spill", stage, reason: str) -> None:
        """The rules before a MinHash rule on each batch, then its sketch (``NearStage.add``) on a
        thread of its own while the next batch goes through the rules: NumPy's hashing releases
        the GIL, so the two overlap on two cores (the 400k-ticket bench: ~1.5 s less wall time).
        Batches are sketched in order, one at a time, and at most one waits. The rule's seconds
        count the sketching time, which now overlaps the other rules' (their sum can exceed the
        wall time)."""
        from concurrent.futures import ThreadPoolExecutor

        def add(df: "pl.DataFrame") -> float:
            t0 = time.perf_counter()
            stage.add(df)
            return time.perf_counter() - t0

        def wait(pending) -> None:
            # raises what the sketch raised; its seconds are added here, on this thread only
            self.seconds[reason] = self.seconds.get(reason, 0.0) + pending.result()

        with ThreadPoolExecutor(1, thread_name_prefix="llmspec-sketch") as sketcher:
            pending = None
            for df in stream:
                df = self._apply(df, steps, done, total)
                if pending is not None:
                    wait(pending)
                pending = sketcher.submit(add, df)
                spill.put(df)
            if pending is not None:
                wait(pending)

    def _after_barrier(self, spill: Spill, found, barrier) -> Iterator["pl.DataFrame"]:
        from llmspec.runtime.clean.near_stage import reject

        for df in spill.drain():
            t0 = time.perf_counter()
            df, gone = reject(df, found, barrier.reason)
            self._time(barrier.reason, t0)
            self.sink.rejects(barrier.reason, gone)
            yield df

    def _tagged(self, batches: Iterable[Any]) -> Iterator["pl.DataFrame"]:
        """Rows with ``__ord``; reader rejects straight to the sink."""
        import polars as pl

        for batch in batches:
            self.rows_in += int(batch.rows_in)
            if batch.rejected is not None and batch.rejected.height:
                self.sink.reader_rejects(batch.rejected)
            df = batch.rows
            if df.height == 0 and not df.width:
                continue
            df = df.rechunk().with_columns(
                (pl.int_range(pl.len(), dtype=pl.UInt64) + self._next_ord(df.height)).alias("__ord"))
            yield df

    _ord = 0

    def _next_ord(self, n: int) -> int:
        first = self._ord
        self._ord += n
        return first

    def _apply(self, df: "pl.DataFrame", steps: list["CleaningStep"], done: int, total: int) -> "pl.DataFrame":
        from llmspec.runtime.clean.run import modify_batch, reject_batch
        from llmspec.runtime.clean.seen import SeenKeys, split_duplicates

        for k, step in enumerate(steps):
            if self.progress:
                self.progress(self._step_progress(df.height, step.reason, done + k, total))
            t0 = time.perf_counter()
            if step.action == "modify":
                df, n = modify_batch(df, step)
                self.modified[step.reason] += n
            elif step.kind == "dedupe":
                seen = self.seen.setdefault(step.index, SeenKeys())
                df, gone = split_duplicates(df, step, seen)
                self.sink.rejects(step.reason, gone)
            else:
                df, gone, note = reject_batch(df, step, self.count_tokens)
                self.sink.rejects(step.reason, gone)
                if note and note not in self.notes:
                    self.notes.append(note)
            self._time(step.reason, t0)
        return df

    def _time(self, reason: str, t0: float) -> None:
        self.seconds[reason] = self.seconds.get(reason, 0.0) + time.perf_counter() - t0

    @staticmethod
    def _step_progress(rows: int, reason: str, done: int, total: int):
        from llmspec.runtime.clean.run import StepProgress

        return StepProgress(rows, reason, done, total)


def _give_back_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``) before the MinHash
    grouping, whose large arrays are mmapped afresh and would not reuse them: of 9M exact-dedupe
    keys just freed, 70 of 275 MB stayed in the heap otherwise."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to do
        pass
