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

from ..errors import InputError
from .base import Device

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
            raise InputError(f"{devices[0].profile.name} and {d.profile.name} differ in {k} "
                             f"({base.get(k)!r} vs {fp.get(k)!r}); --split needs identical phones "
                             "and settings", "--split")
    return base


class WorkQueue(Generic[T]):
    """Thread-safe hand-out of items; `put_back` returns what a lost device did not finish."""

    def __init__(self, items: Iterable[T]):
        self._items = list(items)
        self._lock = threading.Lock()

    def take(self) -> T | None:
        with self._lock:
            return self._items.pop(0) if self._items else None

    def put_back(self, item: T) -> None:
        with self._lock:
            self._items.insert(0, item)

    def __iter__(self) -> Iterator[T]:
        while (item := self.take()) is not None:
            yield item

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
