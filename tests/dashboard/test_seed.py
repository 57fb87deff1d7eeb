"""A (re)started dashboard starts from the store's last values, then live data wins."""

from __future__ import annotations

import polars as pl

from dashboard.app import seed_from_history
from dashboard.livestore import LiveStore, devices_from_config
from ingest.store import open_store
from tests.dashboard._helpers import NOW, batch, config


def test_dashboard_starts_from_stored_values_and_live_rows_win(tmp_path, mqtt_broker):
    cfg = config(mqtt_broker, str(tmp_path))
    writer = open_store(cfg)
    writer.write(
        pl.DataFrame(
            {
                "device_id": ["LC-0001", "LC-0001"],
                "kind": ["lighting_cabinet", "lighting_cabinet"],
                "ts": [NOW - 10_000_000_000, NOW - 10_000_000_000],
                "field": ["door_open", "circuit1_on"],
                "value": [1.0, 0.0],
            }
        )
    )
    writer.close()
    store = LiveStore(devices_from_config(cfg))
    assert seed_from_history(cfg, store) > 0
    dev = store.device("LC-0001")
    assert dev.values["door_open"] == 1.0 and dev.values["circuit1_on"] == 0.0
    store.apply_batch(batch())  # newer live rows: circuit1_on = 1
    assert store.device("LC-0001").values["circuit1_on"] == 1.0


def test_no_history_is_not_fatal(tmp_path, mqtt_broker):
    cfg = config(mqtt_broker, str(tmp_path / "nowhere"))
    store = LiveStore(devices_from_config(cfg))
    assert seed_from_history(cfg, store) == 0
