"""History stores behind one interface, and the factory the services use.

``open_store(cfg)`` returns the embedded SQLite store, or, when ``cfg.store.influx`` is
set, a :class:`FanoutStore` writing to both side by side. InfluxDB then holds the
history (ranges, tracks); the embedded file keeps the latest value per series and the
alarm transitions, which the dashboard asks for most and which must answer even while
InfluxDB is down. A full embedded copy would cost ~6–12 µs/row of one core, which a 2-core
machine carrying a city cannot spare (`rongguan bench ingest`). Pass
``read_from="influx"`` to read latest values and alarms from InfluxDB too (e.g. when the
embedded file is not on this machine).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import polars as pl

from contracts.alarms import AlarmEvent
from contracts.config import DeploymentConfig
from ingest.store.base import (
    ALARM_SCHEMA,
    Agg,
    StoreError,
    StoreUnavailable,
    TelemetryStore,
)
from ingest.store.embedded import EmbeddedStore

__all__ = [
    "TelemetryStore",
    "StoreError",
    "StoreUnavailable",
    "EmbeddedStore",
    "FanoutStore",
    "ALARM_SCHEMA",
    "open_store",
]


class FanoutStore:
    """Writes go to every store at once; reads go to ``reader``, history to ``history``."""

    def __init__(
        self,
        primary: TelemetryStore,
        *others: TelemetryStore,
        reader: TelemetryStore | None = None,
        history: TelemetryStore | None = None,
    ) -> None:
        self.stores: tuple[TelemetryStore, ...] = (primary, *others)
        self.reader = reader or primary
        self.history = history or self.reader
        # The other stores write on their own threads while the primary writes on the
        # caller's: SQLite and HTTP both release the GIL, so the writes overlap.
        self._pool = ThreadPoolExecutor(len(others), "store-fanout") if others else None
        #: Whether a frame's lines encoded ahead are of use to one of the stores.
        self.takes_lines = any(getattr(s, "takes_lines", False) for s in self.stores)

    def write(self, frame: pl.DataFrame) -> int:
        """Write to every store; returns the primary's count, raises the first failure.

        Every store is tried even when one fails; a retry then rewrites the stores that
        succeeded, which is harmless.
        """
        futures = [self._pool.submit(s.write, frame) for s in self.stores[1:]] if self._pool else []
        n, error = 0, None
        try:
            n = self.stores[0].write(frame)
        except StoreError as exc:
            error = exc
        for fut in futures:
            try:
                fut.result()
            except StoreError as exc:
                error = error or exc
        if error is not None:
            raise error
        return n

    def write_alarm(self, event: AlarmEvent) -> None:
        """Record the transition in every store."""
        error = None
        for store in self.stores:
            try:
                store.write_alarm(event)
            except StoreError as exc:
                error = error or exc
        if error is not None:
            raise error

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """See :meth:`TelemetryStore.latest`."""
        return self.reader.latest(kind)

    def range(
        self,
        device_id: str,
        field: str,
        start_ns: int,
        end_ns: int,
        every_s: float | None = None,
        agg: Agg = "mean",
    ) -> pl.DataFrame:
        """See :meth:`TelemetryStore.range`."""
        return self.history.range(device_id, field, start_ns, end_ns, every_s, agg)

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """See :meth:`TelemetryStore.track`."""
        return self.history.track(device_id, start_ns, end_ns)

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """See :meth:`TelemetryStore.alarm_history`."""
        return self.reader.alarm_history(start_ns, end_ns)

    def alarm_events(self, alarm_id: str) -> pl.DataFrame:
        """See :meth:`TelemetryStore.alarm_events`."""
        return self.reader.alarm_events(alarm_id)

    def close(self) -> None:
        """Close every store."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for store in self.stores:
            store.close()


def open_store(
    cfg: DeploymentConfig,
    *,
    read_only: bool = False,
    read_from: Literal["embedded", "influx"] = "embedded",
    influx_retries: int = 5,
) -> TelemetryStore:
    """The deployment's store: embedded, plus InfluxDB when ``cfg.store.influx`` is set.

    ``influx_retries`` bounds attempts per write; ingest uses few, because it spills
    and retries on its own schedule instead of blocking its intake.
    """
    path = cfg.path(cfg.store.path)
    if cfg.store.influx is None:
        return EmbeddedStore(path, read_only=read_only)
    embedded = EmbeddedStore(path, read_only=read_only, history=False)
    from ingest.store.influx import InfluxStore  # influxdb-client only when configured

    influx = InfluxStore(cfg.store.influx, retries=influx_retries)
    if not read_only:
        influx.ensure_database()
    # A read-only embedded store refuses writes, so a reader's fan-out cannot write either.
    reader = influx if read_from == "influx" else embedded
    return FanoutStore(embedded, influx, reader=reader, history=influx)
