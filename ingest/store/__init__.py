"""History stores behind one interface, and the factory the services use.

``open_store(cfg)`` returns the embedded SQLite store, or, when ``cfg.store.influx`` is
set, a :class:`FanoutStore` writing to both. Reads come from the embedded store by
default: it is local, always there, and answers the dashboard's frequent small queries
("latest", one truck's track) fastest; pass ``read_from="influx"`` to read history
from InfluxDB instead (e.g. when the embedded file is not on this machine).
"""

from __future__ import annotations

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
    """Writes go to every store, primary first; reads go to one of them."""

    def __init__(
        self, primary: TelemetryStore, *others: TelemetryStore, reader: TelemetryStore | None = None
    ) -> None:
        self.stores: tuple[TelemetryStore, ...] = (primary, *others)
        self.reader = reader or primary

    def write(self, frame: pl.DataFrame) -> int:
        """Write to every store; raises the first failure after trying them all.

        A retry after a failure rewrites the stores that succeeded, which is harmless.
        """
        n, error = 0, None
        for i, store in enumerate(self.stores):
            try:
                written = store.write(frame)
                n = written if i == 0 else n
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
        return self.reader.range(device_id, field, start_ns, end_ns, every_s, agg)

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """See :meth:`TelemetryStore.track`."""
        return self.reader.track(device_id, start_ns, end_ns)

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """See :meth:`TelemetryStore.alarm_history`."""
        return self.reader.alarm_history(start_ns, end_ns)

    def alarm_events(self, alarm_id: str) -> pl.DataFrame:
        """See :meth:`TelemetryStore.alarm_events`."""
        return self.reader.alarm_events(alarm_id)

    def close(self) -> None:
        """Close every store."""
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
    embedded = EmbeddedStore(cfg.path(cfg.store.path), read_only=read_only)
    if cfg.store.influx is None:
        return embedded
    from ingest.store.influx import InfluxStore  # influxdb-client only when configured

    influx = InfluxStore(cfg.store.influx, retries=influx_retries)
    if not read_only:
        influx.ensure_database()
    # A read-only embedded store refuses writes, so a reader's fan-out cannot write either.
    return FanoutStore(embedded, influx, reader=influx if read_from == "influx" else embedded)
