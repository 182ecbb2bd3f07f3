"""Read ahead: the next item of an iterator produced on a background thread while the caller works
on the current one.

A source's batches are read and parsed (Polars' JSON and Parquet readers, which release the GIL)
while the previous batch is profiled, cleaned and written, so reading costs wall time only where
it is slower than the work after it. The iterator runs wholly on the one background thread (a
database cursor or a file handle is used by one thread only), its errors reach the caller as
raised, at the item where they happened, and stopping early (an error in the caller, a ``break``)
stops and closes it. Memory: at most ``depth`` items beyond the one in hand.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items``, one or more read ahead on a thread of their own."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                slots.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # noqa: BLE001: handed to the caller, who raises it
            put(_Raised(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # on this thread, where the generator ran

    worker = threading.Thread(target=produce, name="llmspec-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()
