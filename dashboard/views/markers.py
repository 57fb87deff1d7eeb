"""Map markers computed once per process and sent to each wall session as small patches.

:class:`MarkerCache` keeps every map layer as column arrays in a fixed (append-only) row
order and re-reads only the devices the store says changed; each row carries the cache
tick at which it last changed. A session's :class:`FrameSync` then patches just the rows
changed since the tick it last sent: a few markers as index patches, many as one slice of
typed (float32) arrays, which Bokeh sends as binary buffers instead of JSON numbers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource

from contracts import clock  # data time: the deployment's clock
from dashboard.livestore import LiveStore
from dashboard.views.citymap import alarmed_devices, marker_rows

__all__ = ["LAYERS", "Layer", "MarkerCache", "FrameSync"]

#: kind -> (numeric columns, text columns) of its map layer; "id" is the key.
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lighting_cabinet": (("x", "y"), ("id", "name", "colour", "road", "state")),
    "dust_monitor": (("x", "y", "pm10"), ("id", "name", "colour")),
    "vehicle": (("x", "y", "angle", "speed"), ("id", "name", "colour", "fleet")),
}
#: Above this share of changed rows one slice of every row is cheaper than index patches.
DENSE_SHARE = 0.05
#: Cabinets turn offline by silence, which the store never reports: re-read them this often.
RESCAN_S = 10.0


@dataclass(slots=True)
class Layer:
    """One layer's rows: columns in a fixed row order, and when each row last changed."""

    ids: list[str] = field(default_factory=list)
    num: dict[str, np.ndarray] = field(default_factory=dict)
    txt: dict[str, list[Any]] = field(default_factory=dict)
    num_tick: dict[str, np.ndarray] = field(default_factory=dict)  # per numeric column
    txt_tick: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _grow(arr: np.ndarray, n: int, fill: float) -> np.ndarray:
    out = np.full(n, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class MarkerCache:
    """Every layer's markers, brought up to date at most once per ``min_interval_s``."""

    def __init__(self, store: LiveStore, min_interval_s: float = 0.2) -> None:
        self.store = store
        self.min_interval_s = min_interval_s
        self.generation = 0  # grows when rows were re-ordered (sessions must reset)
        self.tick = 0
        self.update_ms = 0.0  # cost of the last refresh, for the benchmark
        self._lock = threading.Lock()
        self._version = -1
        self._at = -1e18
        self._rescan_at = -1e18
        self._alarmed: set[str] = set()
        self._index: dict[str, tuple[str, int]] = {}
        self.layers: dict[str, Layer] = {k: self._empty(k) for k in LAYERS}

    @staticmethod
    def _empty(kind: str) -> Layer:
        num, txt = LAYERS[kind]
        zeros = np.zeros(0, np.int64)
        return Layer(
            [], {c: np.zeros(0) for c in num}, {c: [] for c in txt}, {c: zeros for c in num}
        )

    def get(self) -> tuple[int, int, dict[str, Layer]]:
        """(generation, tick, layers), refreshed first unless that happened within the
        interval (the pusher refreshes right before it wakes the sessions)."""
        with self._lock:
            if time.monotonic() - self._at >= self.min_interval_s:
                self._refresh()
            return self.generation, self.tick, self.layers

    def refresh(self) -> None:
        """Bring every layer up to date with the store now."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        now = self._at = time.monotonic()
        t0 = time.perf_counter()
        changes = self.store.changes_since(self._version)
        if changes is None or self._version < 0:
            self._version = self.store.version
            self._rebuild()
        else:
            rescan = now - self._rescan_at >= RESCAN_S
            self._version = changes.version
            ids = set(changes.devices)
            if changes.alarms or rescan:  # alarm colours: only when alarms changed
                alarmed = alarmed_devices(self.store.alarms(active_only=True))
                ids |= alarmed ^ self._alarmed
                self._alarmed = alarmed
            if rescan:
                self._rescan_at = now
                ids |= set(self.layers["lighting_cabinet"].ids)
            if ids:
                self._apply(ids)
        self.update_ms = (time.perf_counter() - t0) * 1000

    def _rebuild(self) -> None:
        self.generation += 1
        self.tick += 1
        self._index = {}
        self.layers = {k: self._empty(k) for k in LAYERS}
        self._alarmed = alarmed_devices(self.store.alarms(active_only=True))
        self._rescan_at = time.monotonic()
        self._apply(None)

    def _apply(self, ids: set[str] | None) -> None:
        """Write the rows of the given devices (all when None) into fresh copies of the layers."""
        self.tick += 1
        devs = self.store.devices(ids)
        rows = marker_rows(devs, self._alarmed, clock.now_ns())
        out: dict[str, Layer] = {}
        for kind, layer_rows in rows.items():
            old = self.layers[kind]
            if not layer_rows:
                out[kind] = old
                continue
            num_cols, txt_cols = LAYERS[kind]
            ids_ = list(old.ids)
            new_ids = [r["id"] for r in layer_rows if r["id"] not in self._index]
            for dev_id in new_ids:
                self._index[dev_id] = (kind, len(ids_))
                ids_.append(dev_id)
            n = len(ids_)
            num = {c: _grow(old.num[c], n, np.nan) for c in num_cols}
            txt = {c: old.txt[c] + [""] * (n - len(old.ids)) for c in txt_cols}
            num_tick = {c: _grow(old.num_tick[c], n, self.tick) for c in num_cols}
            txt_tick = _grow(old.txt_tick, n, self.tick)
            idx = np.fromiter((self._index[r["id"]][1] for r in layer_rows), np.int64)
            for c in num_cols:
                vals = np.fromiter((r[c] for r in layer_rows), np.float64, len(layer_rows))
                prev = num[c][idx]
                moved = ~((prev == vals) | (np.isnan(prev) & np.isnan(vals)))
                num[c][idx] = vals
                num_tick[c][idx[moved]] = self.tick
            for c in txt_cols:
                col = txt[c]
                for i, r in zip(idx.tolist(), layer_rows):
                    if col[i] != r[c]:
                        col[i] = r[c]
                        txt_tick[i] = self.tick
            out[kind] = Layer(ids_, num, txt, num_tick, txt_tick)
        self.layers = {**self.layers, **out}


class FrameSync:
    """One session's copy of one layer in a ColumnDataSource, kept current by patches."""

    def __init__(self, kind: str, source: ColumnDataSource, *, redraw_all: bool = False) -> None:
        self.kind = kind
        self.source = source
        self.redraw_all = redraw_all  # the benchmark's baseline: the whole layer each time
        self.num_cols, self.txt_cols = LAYERS[kind]
        self._generation = -1
        self._tick = -1
        self._rows = 0
        self.sent_rows = 0  # rows patched or sent, for tests and the benchmark

    def reset(self, layer: Layer, generation: int, tick: int) -> None:
        """Send the whole layer."""
        data: dict[str, Any] = {c: layer.num[c].astype(np.float32) for c in self.num_cols}
        data |= {c: list(layer.txt[c]) for c in self.txt_cols}
        self.source.data = data
        self._generation, self._tick, self._rows = generation, tick, len(layer.ids)
        self.sent_rows += len(layer.ids)

    def sync(self, layer: Layer, generation: int, tick: int) -> None:
        """Patch the rows changed since the last call, stream the new ones."""
        if generation != self._generation or self.redraw_all:
            if self.redraw_all and tick == self._tick and generation == self._generation:
                return
            self.reset(layer, generation, tick)
            return
        if tick == self._tick:
            return
        n_old = self._rows
        patches: dict[str, list[tuple[Any, Any]]] = {}
        for c in self.num_cols:
            changed = np.flatnonzero(layer.num_tick[c][:n_old] > self._tick)
            if len(changed) > DENSE_SHARE * n_old:
                lo, hi = int(changed[0]), int(changed[-1]) + 1
                patches[c] = [(slice(lo, hi), layer.num[c][lo:hi].astype(np.float32))]
            elif len(changed):
                patches[c] = [(i, float(layer.num[c][i])) for i in changed.tolist()]
            self.sent_rows += len(changed)
        changed = np.flatnonzero(layer.txt_tick[:n_old] > self._tick)
        if len(changed):
            self.sent_rows += len(changed)
            for c in self.txt_cols:
                patches[c] = [(i, layer.txt[c][i]) for i in changed.tolist()]
        if patches:
            self.source.patch(patches)
        if len(layer.ids) > n_old:
            new = {c: layer.num[c][n_old:].astype(np.float32) for c in self.num_cols}
            new |= {c: layer.txt[c][n_old:] for c in self.txt_cols}
            self.source.stream(new)
            self.sent_rows += len(layer.ids) - n_old
        self._tick, self._rows = tick, len(layer.ids)
