"""Request batching for the in-process (transformers) engine.

One worker thread owns the model. Requests wait in a queue; the worker takes every request
already waiting (up to ``max_batch``, same sampling settings) and answers them with one
left-padded ``generate`` call. It never waits for company: a lone request starts at once (no
added latency at concurrency 1), and requests that arrive during a generation form the next
batch together. Tokens
reach each request as they are generated, through a streamer that splits the batch by row, so
``stream: true`` is real streaming even inside a batch.

A full queue refuses at once (``QueueFull``): the HTTP layer answers 429 rather than letting
latency grow without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class QueueFull(Exception):
    """More requests are waiting than the server accepts."""


@dataclass
class Generation:
    """One request's answer as it grows. ``events`` gets ``("delta", text)`` items while
    generating and ``("done", None)`` or ``("error", message)`` at the end."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue | None = None
    on_delta: Callable[[str], None] | None = None   # called in the generating thread (chat)
    stream: bool = True     # False: the text is wanted only at the end (no per-token decoding)
    ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _sent: int = 0

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def _emit(self, kind: str, value: Any) -> None:
        if kind == "delta" and self.on_delta is not None:
            self.on_delta(value)
        if self.loop is not None and self.events is not None:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    def _push_text(self, text: str, final: bool) -> None:
        """Record the decoded answer so far; send what is new. A trailing U+FFFD is half a
        multi-byte character whose next token has not come yet: held back unless final."""
        cut = min((i for i in (text.find(s) for s in self.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text, final, self.finish_reason = text[:cut], True, "stop"
        self.text = text
        visible = text if final else text.rstrip("\ufffd")
        if len(visible) > self._sent:
            self._emit("delta", visible[self._sent:])
            self._sent = len(visible)


class _RowStreamer:
    """A transformers streamer for a whole batch: ``put`` gets one token per row per step."""

    def __init__(self, rows: Sequence[Generation], stop_ids: Sequence[int], decode):
        self.rows = rows
        self.stop_ids = set(stop_ids)
        self.decode = decode
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        tokens = value.reshape(len(self.rows), -1)[:, -1].tolist()
        for gen, token in zip(self.rows, tokens):
            if gen.finished:
                continue
            if token in self.stop_ids:
                gen.finish_reason = "stop"
                continue
            gen.ids.append(token)
            gen._push_text(self.decode(gen.ids), final=False)
            if not gen.finished and len(gen.ids) >= gen.max_tokens:
                gen.finish_reason = "length"

    def end(self) -> None:
        pass


class Batcher:
    """The worker thread and its queue. ``model`` is a ``runtime.acceptance.runner.LoadedModel``."""

    def __init__(self, model: Any, *, max_batch: int = 8, max_queue: int = 64):
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: queue.Queue[Generation | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="llmspec-generate", daemon=True)
        self.batches = 0
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, gen: Generation) -> Generation:
        with self._lock:
            if self._pending >= self.max_queue:
                raise QueueFull(f"{self._pending} requests are already waiting")
            self._pending += 1
        self._queue.put(gen)
        return gen

    def close(self, timeout: float = 30.0) -> None:
        """Answer what is queued, then stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        held: list[Generation] = []
        with self.model.threads():
            while True:
                first = held.pop(0) if held else self._queue.get()
                if first is None:
                    return
                batch, stop = self._collect(first, held)
                self._answer(batch)
                if stop:
                    for gen in held:
                        self._answer([gen])
                    return

    def _collect(self, first: Generation, held: list[Generation]) -> tuple[list[Generation], bool]:
        """``first`` and what else fits its batch; requests with other sampling settings wait
        in ``held`` for the next round."""
        key = _sampling_key(first)
        batch = [first]
        for gen in list(held):
            if len(batch) < self.max_batch and _sampling_key(gen) == key:
                held.remove(gen)
                batch.append(gen)
        while len(batch) < self.max_batch:
            try:
                gen = self._queue.get_nowait()
            except queue.Empty:
                break
            if gen is None:
                return batch, True
            (batch if _sampling_key(gen) == key else held).append(gen)
        return batch, False

    def _answer(self, batch: list[Generation]) -> None:
        self.batches += 1
        try:
            answer_batch(self.model, batch)
        finally:
            with self._lock:
                self._pending -= len(batch)


def answer_batch(model: Any, batch: list[Generation]) -> None:
    """Answer ``batch`` (same sampling settings) with one generate call, in this thread,
    streaming each row's text through its ``Generation`` as tokens come."""
    # Decoding every row at every step costs Python time per token: only when someone streams.
    streamer = _RowStreamer(batch, model.stop_ids, model.decode) if any(g.stream for g in batch) else None
    first = batch[0]
    try:
        ids = model.generate_ids([g.prompt_ids for g in batch], max(g.max_tokens for g in batch),
                                 temperature=first.temperature, top_p=first.top_p,
                                 seed=first.seed, streamer=streamer)
        for gen, row in zip(batch, ids):
            # The streamer saw every token; the returned ids are the authority.
            if not gen.finished or gen.finish_reason == "length":
                gen.ids = row[:gen.max_tokens]
                gen.finish_reason = "length" if len(row) >= gen.max_tokens else "stop"
                gen._push_text(model.decode(gen.ids), final=True)
            else:
                gen._push_text(gen.text, final=True)
    except Exception as exc:  # one failed batch answers its requests with the error
        for gen in batch:
            gen.error = f"{type(exc).__name__}: {exc}"
    finally:
        for gen in batch:
            gen._emit("error", gen.error) if gen.error else gen._emit("done", None)
            gen.done.set()


def _sampling_key(gen: Generation) -> tuple:
    if gen.temperature <= 0:
        return ("greedy",)
    return ("sample", gen.temperature, gen.top_p, gen.seed)
