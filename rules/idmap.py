"""Fast (device_id, field) -> dense id mapping: one polars hash per row, one numba probe.

Each row's key is hashed with polars' string hash (two columns combined into one uint64);
a numba open-addressing table maps the hash to the id. Only keys never seen before reach
Python, once each, ever. Two real keys sharing a 64-bit hash would share an id; the odds
are about n²/2⁶⁵ for n keys (3·10⁻⁸ for a million series), which we accept for the speed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
from numba import njit

__all__ = ["IdMap", "key_hashes", "MISS"]

MISS = -2
_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads the field hash before the xor
# built once: constructing the literal costs more than hashing a small batch
_HASH = (
    pl.col("device_id").hash(seed=0)
    ^ (pl.col("field").hash(seed=1) * pl.lit(_MIX, dtype=pl.UInt64))
).alias("h")


def key_hashes(frame: pl.DataFrame) -> np.ndarray:
    """The uint64 key hash of every row's (device_id, field)."""
    return frame.select(_HASH).to_series().to_numpy()


@njit(cache=True, nogil=True)
def _probe(table_k, table_v, hashes, out):  # pragma: no cover - compiled
    mask = table_k.shape[0] - 1
    umask = np.uint64(mask)
    one = np.uint64(1)
    misses = 0
    for i in range(hashes.shape[0]):
        h = hashes[i]
        if h == 0:
            h = one  # 0 marks an empty bucket
        j = np.int64(h & umask)
        while True:
            k = table_k[j]
            if k == h:
                out[i] = table_v[j]
                break
            if k == 0:
                out[i] = -2
                misses += 1
                break
            j = (j + 1) & mask
    return misses


@njit(cache=True, nogil=True)
def _insert(table_k, table_v, hashes, vals):  # pragma: no cover - compiled
    mask = table_k.shape[0] - 1
    umask = np.uint64(mask)
    one = np.uint64(1)
    for i in range(hashes.shape[0]):
        h = hashes[i]
        if h == 0:
            h = one
        j = np.int64(h & umask)
        while table_k[j] != 0 and table_k[j] != h:
            j = (j + 1) & mask
        table_k[j] = h
        table_v[j] = vals[i]


class IdMap:
    """Hash -> int32 id; ``resolve`` is called once per new key to decide its id."""

    def __init__(self, resolve: Callable[[str, str, str], int], capacity: int = 1024):
        self._resolve = resolve
        cap = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._k = np.zeros(cap, dtype=np.uint64)
        self._v = np.zeros(cap, dtype=np.int32)
        self.size = 0

    def lookup(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """The id of every row of a telemetry frame, registering keys never seen before."""
        h = key_hashes(frame) if hashes is None else hashes
        out = np.empty(len(h), dtype=np.int32)
        if _probe(self._k, self._v, h, out):
            miss = np.flatnonzero(out == MISS)
            uniq, first = np.unique(h[miss], return_index=True)
            rows = frame[miss[first]].select("device_id", "kind", "field").iter_rows()
            ids = [self._resolve(d, k, f) for d, k, f in rows]
            self._add(uniq, np.asarray(ids, dtype=np.int32))
            _probe(self._k, self._v, h, out)
        return out

    def _add(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        self.size += len(hashes)
        if self.size * 2 > len(self._k):  # keep the load under one half: short probes
            old_k, old_v = self._k, self._v
            cap = len(old_k)
            while self.size * 2 > cap:
                cap *= 2
            self._k = np.zeros(cap, dtype=np.uint64)
            self._v = np.zeros(cap, dtype=np.int32)
            used = old_k != 0
            _insert(self._k, self._v, old_k[used], old_v[used])
        _insert(self._k, self._v, hashes.astype(np.uint64), ids)

    def warm_up(self) -> None:
        """Compile (or load from the cache) the probe and insert kernels."""
        k = np.zeros(16, dtype=np.uint64)
        v = np.zeros(16, dtype=np.int32)
        _insert(k, v, np.ones(1, dtype=np.uint64), np.zeros(1, dtype=np.int32))
        _probe(k, v, np.ones(1, dtype=np.uint64), np.empty(1, dtype=np.int32))
