"""Read-only access to the history store (alarm records, vehicle tracks) for the pages.

One store per process, opened on first use; a store that cannot be opened or read is
reported to the page as "unavailable" and counted, never raised into a session.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from contracts.config import DeploymentConfig

__all__ = ["History", "day_bounds"]

log = logging.getLogger("rongguan.dashboard.history")


def day_bounds(day: datetime | Any, cfg: DeploymentConfig) -> tuple[int, int]:
    """[start, end) in ns of a calendar day in the city's zone."""
    start = datetime(day.year, day.month, day.day, tzinfo=cfg.tz)
    end = start + timedelta(days=1)
    return int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)


class History:
    """Lazily opened read-only store: alarm history and tracks."""

    def __init__(
        self, cfg: DeploymentConfig, read_from: Literal["embedded", "influx"] = "embedded"
    ) -> None:
        """``read_from``: see :func:`ingest.store.open_store`. Alarm records come from the
        embedded file; with InfluxDB configured, tracks come from InfluxDB (the embedded
        file then keeps only latest values and alarms)."""
        self.cfg = cfg
        self.read_from = read_from
        self._store: Any = None
        self._lock = threading.Lock()
        self.errors = 0

    def _open(self) -> Any:
        with self._lock:
            if self._store is None:
                from ingest.store import open_store  # sqlite/influx only when a page asks

                self._store = open_store(self.cfg, read_only=True, read_from=self.read_from)
            return self._store

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame | None:
        """Alarm transitions in the range, the newest record per alarm; None on failure."""
        try:
            df = self._open().alarm_history(start_ns, end_ns)
        except Exception as exc:  # noqa: BLE001 - shown as unavailable, counted
            self.errors += 1
            log.warning("alarm history unavailable: %s", exc)
            return None
        if df.height == 0:
            return df
        return df.sort("ts").unique("alarm_id", keep="last").sort("ts", descending=True)

    def alarm_transitions(self, alarm_id: str) -> pl.DataFrame | None:
        """One alarm's stored transitions, oldest first (a store query by its id); None on
        failure."""
        try:
            return self._open().alarm_events(alarm_id)
        except Exception as exc:  # noqa: BLE001 - shown without the store's part, counted
            self.errors += 1
            log.warning("alarm %s history unavailable: %s", alarm_id, exc)
            return None

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame | None:
        """A vehicle's fixes in the range (ts, lat, lon, speed, heading); None on failure."""
        try:
            return self._open().track(device_id, start_ns, end_ns)
        except Exception as exc:  # noqa: BLE001 - shown as unavailable, counted
            self.errors += 1
            log.warning("track of %s unavailable: %s", device_id, exc)
            return None

    def close(self) -> None:
        """Close the store if it was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
