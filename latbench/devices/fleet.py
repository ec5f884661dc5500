"""Several identical phones sharing one space (`--split`): check, then share the work.

Why: a LUT may only mix measurements from devices that would have produced
the same numbers, so splitting is allowed only when fingerprints agree on
everything but the profile name. Work is handed out from one shared queue
(a faster or luckier phone simply takes more), not pre-sharded, so one phone
dropping out leaves its unfinished items to the others.
"""

from __future__ import annotations

import threading
from typing import Generic, Iterable, Iterator, Sequence, TypeVar

from latbench.devices.base import Device
from latbench.errors import InputError

T = TypeVar("T")
IGNORED = ("device",)  # the profile name differs between two identical phones; nothing else may


def split_fingerprint(devices: Sequence[Device]) -> dict[str, str]:
    """The common fingerprint of phones that may split one LUT; InputError naming the first difference."""
    fps = [{k: v for k, v in d.fingerprint().items() if k not in IGNORED} for d in devices]
    base = fps[0]
    for d, fp in zip(devices[1:], fps[1:]):
        diff = sorted(k for k in set(base) | set(fp) if base.get(k) != fp.get(k))
        if diff:
            k = diff[0]
            raise InputError(
                f"{devices[0].profile.name} and {d.profile.name} differ in {k} "
                f"({base.get(k)!r} vs {fp.get(k)!r}); --split needs identical phones "
                "and settings",
                "--split",
            )
    return base


class WorkQueue(Generic[T]):
    """Thread-safe hand-out of items; `put_back` returns what a lost device did not finish.

    An open queue (closed=False) is fed while it is consumed (`add`, then
    `close`): take() waits for the next item until the queue is closed and empty.
    That is how the profiler times layers while later ones are still converting.
    """

    def __init__(self, items: Iterable[T] = (), closed: bool = True):
        self._items = list(items)
        self._closed = closed
        self._cond = threading.Condition()
        self.total = len(self._items)

    def add(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self.total += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> T | None:
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return self._items.pop(0) if self._items else None

    def put_back(self, item: T) -> None:
        with self._cond:
            self._items.insert(0, item)
            self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        while (item := self.take()) is not None:
            yield item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
