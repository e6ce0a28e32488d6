"""Deterministic shards: ``--shard i/n`` picks the items (or clips) whose id hashes to ``i`` mod ``n``.

The hash is SHA-1 of the id (not Python's salted ``hash()``), so every machine, process and rerun
puts an id in the same shard, and the shards of one ``n`` partition the ids with no overlap or gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class ShardSpecError(ValueError):
    """A ``--shard`` value that is not ``i/n`` with 0 <= i < n."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardSpecError(f"shard {self.index}/{self.count}: need 0 <= i < n and n >= 1")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, n: int) -> int:
    """The shard (0..n-1) of an item or clip id; stable across processes and machines."""
    if n < 1:
        raise ShardSpecError(f"shard count must be >= 1, got {n}")
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % n


def parse_shard(spec: str) -> Shard:
    """``"1/3"`` -> Shard(1, 3)."""
    index, sep, count = spec.partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(index), int(count))
    except ValueError as exc:
        if isinstance(exc, ShardSpecError):
            raise
        raise ShardSpecError(f"--shard {spec!r}: expected i/n, e.g. 0/3") from None


def ids_fingerprint(ids: Iterable[str]) -> str:
    """SHA-1 of a set of ids: shards of one run agree on it, shards of different inputs do not."""
    return hashlib.sha1("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def items_fingerprint(items: Iterable[Any]) -> str:
    """SHA-1 of QA items' full content (a re-built benchmark with other answers differs)."""
    h = hashlib.sha1()
    for dump in sorted(json.dumps(it.model_dump(mode="json"), sort_keys=True) for it in items):
        h.update(dump.encode("utf-8") + b"\n")
    return h.hexdigest()
