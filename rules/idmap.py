"""Fast (device_id, field) -> dense id mapping: one polars row hash, one numba probe.

Each row's key is hashed with polars' row hash of the two string columns (one uint64); a
numba open-addressing table maps the hash to the id. Only keys never seen before reach
Python, once per batch of them, ever. Two real keys sharing a 64-bit hash would share an
id; the odds are about n²/2⁶⁵ for n keys (3·10⁻⁸ for a million series), which we accept
for the speed. Hashes live in one process only (a restored snapshot rebuilds the table).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
from numba import njit

__all__ = ["IdMap", "key_hashes", "MISS"]

MISS = -2


def key_hashes(frame: pl.DataFrame) -> np.ndarray:
    """The uint64 key hash of every row's (device_id, field)."""
    # a frame of the two columns and its row hash: direct calls, where an expression would
    # pay polars' query planning (~10 µs a batch) on top of the hashing
    cols = [frame.get_column("device_id"), frame.get_column("field")]
    cols = [c if c.dtype == pl.String else c.cast(pl.String) for c in cols]
    return pl.DataFrame(cols).hash_rows(seed=0).to_numpy()


@njit(cache=True, nogil=True)
def _probe(table, hashes, out):  # pragma: no cover - compiled
    # table[j] is (key hash, id): one cache line per probe; keys are int64 views of the
    # hashes, 0 marks an empty bucket (a hash of 0 is stored as 1)
    mask = table.shape[0] - 1
    misses = 0
    for i in range(hashes.shape[0]):
        h = hashes[i]
        if h == 0:
            h = 1
        j = h & mask
        while True:
            k = table[j, 0]
            if k == h:
                out[i] = table[j, 1]
                break
            if k == 0:
                out[i] = MISS
                misses += 1
                break
            j = (j + 1) & mask
    return misses


@njit(cache=True, nogil=True)
def _insert(table, hashes, vals):  # pragma: no cover - compiled
    mask = table.shape[0] - 1
    for i in range(hashes.shape[0]):
        h = hashes[i]
        if h == 0:
            h = 1
        j = h & mask
        while table[j, 0] != 0 and table[j, 0] != h:
            j = (j + 1) & mask
        table[j, 0] = h
        table[j, 1] = vals[i]


class IdMap:
    """Hash -> int32 id; ``resolve`` is called once per new key to decide its id, or
    ``resolve_many`` once per batch with its new keys (a frame of device_id, kind, field),
    returning their ids in order."""

    def __init__(
        self,
        resolve: Callable[[str, str, str], int],
        capacity: int = 1024,
        resolve_many: Callable[[pl.DataFrame], np.ndarray] | None = None,
    ):
        self._resolve = resolve
        self._resolve_many = resolve_many
        cap = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._t = np.zeros((cap, 2), dtype=np.int64)
        self.size = 0

    def lookup(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """The id of every row of a telemetry frame, registering keys never seen before."""
        h = key_hashes(frame) if hashes is None else hashes
        h = _readonly(np.ascontiguousarray(h, dtype=np.uint64).view(np.int64))
        out = np.empty(len(h), dtype=np.int32)
        if _probe(self._t, h, out):
            miss = np.flatnonzero(out == MISS)
            uniq, first = np.unique(h[miss], return_index=True)
            # ids in arrival order: a device's series sit together, so the kernels' state
            # reads of one device's rows stay in the same cache lines
            order = np.argsort(first, kind="stable")
            uniq, first = uniq[order], first[order]
            new = frame[miss[first]].select(pl.col("device_id", "kind", "field").cast(pl.String))
            if self._resolve_many is not None:
                ids = np.asarray(self._resolve_many(new), dtype=np.int32)
            else:
                ids = np.array([self._resolve(*key) for key in new.iter_rows()], dtype=np.int32)
            self._add(uniq, ids)
            _probe(self._t, h, out)
        return out

    def _add(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        self.size += len(hashes)
        if self.size * 2 > len(self._t):  # keep the load under one half: short probes
            old = self._t
            cap = len(old)
            while self.size * 2 > cap:
                cap *= 2
            self._t = np.zeros((cap, 2), dtype=np.int64)
            used = old[:, 0] != 0
            _insert(self._t, old[used, 0], old[used, 1])
        _insert(self._t, hashes.astype(np.int64), ids.astype(np.int64))

    def warm_up(self) -> None:
        """Compile (or load from the cache) the probe and insert kernels."""
        t = np.zeros((16, 2), dtype=np.int64)
        _insert(t, np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
        _probe(t, _readonly(np.ones(1, dtype=np.int64)), np.empty(1, dtype=np.int32))


def _readonly(a: np.ndarray) -> np.ndarray:
    # one compiled specialisation for polars' read-only arrays and our own
    v = a.view()
    v.flags.writeable = False
    return v
