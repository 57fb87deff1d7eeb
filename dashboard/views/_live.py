"""Shared machinery of live views: a tick that pulls the store's changes (woken by the
pusher when the store changed, and a 1 s heartbeat for clocks and staleness), and keyed
row syncing that patches changed cells and streams new rows instead of redrawing."""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from panel.io.state import set_curdoc

from dashboard.livestore import Changes, LiveStore

__all__ = [
    "LiveView",
    "CdsSync",
    "TableSync",
    "fmt_time",
    "set_display_tz",
    "display_tz",
    "live_views",
    "wake_live_views",
]

log = logging.getLogger("rongguan.dashboard.views")


_TZ: list[ZoneInfo] = [ZoneInfo("Asia/Shanghai")]  # the city's zone, set once per process


def set_display_tz(tz: ZoneInfo) -> None:
    """Show every time in ``tz`` (the deployment's city), whatever the server's zone is."""
    _TZ[0] = tz


def display_tz() -> ZoneInfo:
    """The zone times are shown in."""
    return _TZ[0]


def fmt_time(ns: int | None, fmt: str = "%m-%d %H:%M:%S") -> str:
    """Wall-clock time of a ns timestamp in the city's zone, or an empty string."""
    if not ns:
        return ""
    return datetime.fromtimestamp(ns / 1e9, _TZ[0]).strftime(fmt)


_ACTIVE: set[LiveView] = set()
_ACTIVE_LOCK = threading.Lock()


def live_views() -> int:
    """How many views still tick in this process (sessions not yet released)."""
    with _ACTIVE_LOCK:
        return len(_ACTIVE)


def wake_live_views() -> int:
    """Ask every live view to apply the store's changes soon (thread-safe); returns how many."""
    with _ACTIVE_LOCK:
        views = list(_ACTIVE)
    return sum(v.wake() for v in views)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class CdsSync:
    """Rows keyed by ``key`` in a Bokeh ColumnDataSource, updated with patch and stream."""

    def __init__(self, columns: list[str], key: str = "id", name: str | None = None) -> None:
        self.columns = columns
        self.key = key
        self.source = ColumnDataSource({c: [] for c in columns}, name=name)
        self._index: dict[str, int] = {}

    def reset(self, rows: list[dict[str, Any]]) -> None:
        """Replace everything (first paint, or after falling behind the change log)."""
        self.source.data = {c: [r[c] for r in rows] for c in self.columns}
        self._index = {r[self.key]: i for i, r in enumerate(rows)}

    def update(self, rows: list[dict[str, Any]]) -> None:
        """Patch changed cells of known rows, stream unknown ones."""
        patches: dict[str, list[tuple[int, Any]]] = {}
        new: list[dict[str, Any]] = []
        data = self.source.data
        for r in rows:
            i = self._index.get(r[self.key])
            if i is None:
                new.append(r)
                continue
            for c in self.columns:
                if not _same(data[c][i], r[c]):
                    patches.setdefault(c, []).append((i, r[c]))
        if patches:
            self.source.patch(patches)
        if new:
            base = len(self._index)
            for j, r in enumerate(new):
                self._index[r[self.key]] = base + j
            self.source.stream({c: [r[c] for r in new] for c in self.columns})


class TableSync:
    """Rows keyed by ``key`` in a Panel Tabulator, updated with patch and stream."""

    def __init__(self, table: pn.widgets.Tabulator, columns: list[str], key: str) -> None:
        self.table = table
        self.columns = columns
        self.key = key
        self._index: dict[str, int] = {}

    def reset(self, rows: list[dict[str, Any]]) -> None:
        """Replace the whole table."""
        self.table.value = pd.DataFrame(rows, columns=self.columns)
        self._index = {r[self.key]: i for i, r in enumerate(rows)}

    def keys(self) -> list[str]:
        """Keys in row order."""
        return list(self._index)

    def update(self, rows: list[dict[str, Any]]) -> None:
        """Patch changed cells of known rows, stream unknown ones."""
        df = self.table.value
        patches: dict[str, list[tuple[int, Any]]] = {}
        new: list[dict[str, Any]] = []
        for r in rows:
            i = self._index.get(r[self.key])
            if i is None:
                new.append(r)
                continue
            for c in self.columns:
                if not _same(df.iat[i, df.columns.get_loc(c)], r[c]):
                    patches.setdefault(c, []).append((i, r[c]))
        if patches:
            self.table.patch(patches, as_index=False)
        if new:
            base = len(self._index)
            for j, r in enumerate(new):
                self._index[r[self.key]] = base + j
            self.table.stream(
                pd.DataFrame(new, columns=self.columns), reset_index=True, follow=False
            )


class LiveView:
    """Base of a session's view: ``full()`` on first paint or resync, ``apply(changes)`` when
    woken (or on the heartbeat), ``every_tick()`` on the heartbeat only."""

    #: Heartbeat: clocks and staleness badges; changes arrive sooner, through wake().
    period_ms = 1000

    def __init__(self, store: LiveStore) -> None:
        self.store = store
        self.version = 0
        self.ticks = 0
        self.stopped = False
        self._callback: Any = None
        self._doc: Any = None
        self._wake_pending = False

    def start(self) -> None:
        """Paint once, schedule the heartbeat and release it all when the screen disconnects."""
        self.version = self.store.version
        self.full()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._doc = pn.state.curdoc
            self._callback = pn.state.add_periodic_callback(self.tick, period=self.period_ms)
            with _ACTIVE_LOCK:
                _ACTIVE.add(self)
            pn.state.on_session_destroyed(lambda _ctx: self.stop())

    def stop(self) -> None:
        """Stop ticking and forget the session's objects (called when its screen is gone)."""
        if self.stopped:
            return
        self.stopped = True
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self)
        self._doc = None
        log.info("session released; %d live views remain", live_views())

    def wake(self) -> bool:
        """Schedule :meth:`update` on the session's event loop (from any thread); False when
        one is already pending or the session is gone."""
        doc = self._doc
        if self.stopped or doc is None or self._wake_pending:
            return False
        self._wake_pending = True
        try:
            # The one Document method Bokeh allows from other threads.
            doc.add_next_tick_callback(self._woken)
        except Exception:  # noqa: BLE001 - the session is being torn down
            self._wake_pending = False
            return False
        return True

    def _woken(self) -> None:
        self._wake_pending = False
        doc = self._doc
        if doc is None:
            return
        with set_curdoc(doc):
            self.update()

    def update(self) -> None:
        """Pull and apply what changed since the last update; never raise into Bokeh's loop."""
        if self.stopped:
            return
        try:
            changes = self.store.changes_since(self.version)
            if changes is None:
                self.version = self.store.version
                self.full()
            else:
                self.version = changes.version
                self.apply(changes)
        except Exception:  # noqa: BLE001 - one bad update must not stop the screen
            log.exception("view update failed")

    def tick(self) -> None:
        """The heartbeat: changes not yet applied, then clocks and staleness."""
        if self.stopped:
            return
        self.ticks += 1
        self.update()
        try:
            self.every_tick()
        except Exception:  # noqa: BLE001 - one bad update must not stop the screen
            log.exception("view heartbeat failed")

    def full(self) -> None:
        """Paint everything from the store."""
        raise NotImplementedError

    def apply(self, changes: Changes) -> None:
        """Apply a set of changes (empty sets are fine)."""
        raise NotImplementedError

    def every_tick(self) -> None:
        """Hook for clocks and staleness badges (heartbeat only)."""
