"""The hash id map and the series index: stable ids across batches, growth, shared hashes,
registering a frame of new keys at once, and the bench baseline."""

from __future__ import annotations

import numpy as np

from bench._rules_polars import PolarsRules
from bench.rules import city_stream
from contracts.config import DeviceConfig
from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from rules.idmap import IdMap, key_hashes
from rules.series import SeriesIndex
from tests.rules._helpers import DM, LC, frame


def test_ids_are_stable_and_new_keys_resolve_once() -> None:
    seen: list[tuple[str, str, str]] = []

    def resolve(dev: str, kind: str, field: str) -> int:
        seen.append((dev, kind, field))
        return -1 if field == "unused" else len(seen)

    ids = IdMap(resolve, capacity=4)
    rows = [(f"D{i % 50}", DM, i, "pm10" if i % 3 else "unused", 1.0) for i in range(600)]
    first = ids.lookup(frame(rows))
    again = ids.lookup(frame(rows[::-1]))
    assert len(seen) == 100  # each (device, field) once, although the table grew many times
    assert (again[::-1] == first).all()
    by_key = {(d, f): int(s) for (d, _, _, f, _), s in zip(rows, first)}
    assert all((by_key[(d, f)] == -1) == (f == "unused") for d, f in by_key)
    assert len(set(by_key.values())) == 51  # 50 used series + the shared -1


def test_precomputed_hashes_give_the_same_transitions() -> None:
    rules = load_default_rules()
    stream = city_stream(30_000, "sensor", 60)
    a, b = RulesEngine(rules), RulesEngine(rules)
    for i in range(0, stream.height, 7_000):
        part = stream.slice(i, 7_000)
        assert a.process(part) == b.process(part, hashes=key_hashes(part))
    assert a.stats() == b.stats()


def test_polars_baseline_matches_the_numba_engine() -> None:
    rules = [r for r in load_default_rules() if r.family == "threshold"]
    stream = city_stream(40_000, "sensor", 80, seed=3)
    eng, pol = RulesEngine(rules), PolarsRules(rules)
    got, want = [], []
    for i in range(0, stream.height, 5_000):
        part = stream.slice(i, 5_000)
        got.extend(eng.process(part))
        want.extend(pol.process(part))
    assert len(got) > 20
    assert got == want


def test_key_hashes_distinguish_device_and_field() -> None:
    h = key_hashes(frame([("a", DM, 0, "b", 1.0), ("b", DM, 0, "a", 1.0), ("a", DM, 0, "b", 2.0)]))
    assert h.dtype == np.uint64 and h[0] != h[1] and h[0] == h[2]


def _index_view(ix: SeriesIndex) -> tuple[dict, dict]:
    """An index by key, free of ids: (device, field) -> used?, and per slot key its guard
    keys and levels."""
    series = {(d, f): sid >= 0 for f, by_dev in ix._sid.items() for d, sid in by_dev.items()}
    rule, _, guard, lo, hi, _ = ix.slot_arrays()
    ser = ix.slot_series
    slots = {}
    for q in range(ix.n_slots):
        gs = tuple((ix.ser_devs[g], ix.ser_fields[g]) for g in guard[q] if g >= 0)
        slots[ix.slot_key(q)] = (int(rule[q]), gs, float(lo[q]), float(hi[q]))
        assert (ix.ser_devs[ser[q]], ix.ser_fields[ser[q]]) == ix.slot_key(q)[1:]
    return series, slots


def test_a_frame_of_new_keys_registers_like_one_key_at_a_time() -> None:
    # guards on '*' rules, a guard series no row of the frame carries, levels relative to
    # device attrs (one device has them), unused fields, and keys repeated in the frame
    rules = [r for r in load_default_rules() if r.family == "threshold"]
    devs = {"LC-1": DeviceConfig(id="LC-1", kind=LC, protocol="opcua", profile="p", endpoint="x",
                                 attrs={"lamps_per_circuit": "20,22", "lamp_watts": "100"})}  # fmt: skip
    fields = ["circuit1_current", "circuit2_current", "voltage_l1", "door_open", "nonsense"]
    keys = [(f"LC-{d}", LC, f) for d in (1, 2, 3) for f in fields]
    keys += [("DM-1", DM, f) for f in ("pm10", "pm25", "noise", "nonsense")]
    keys += keys[:4]  # repeats
    rows = [(d, k, 0, f, 1.0) for d, k, f in keys]
    at_once, one_by_one = SeriesIndex(rules, devs), SeriesIndex(rules, devs)
    ids = at_once.ensure_many(frame(rows).select("device_id", "kind", "field"))
    singles = [one_by_one.ensure(d, k, f) for d, k, f in keys[::-1]][::-1]
    assert (ids >= 0).tolist() == [s >= 0 for s in singles]
    assert ids[-4:].tolist() == ids[:4].tolist()
    assert _index_view(at_once) == _index_view(one_by_one)
    assert at_once.unrated == one_by_one.unrated and at_once.unrated
    # guard series registered on the way (the circuits' contactor state) exist in both
    assert ("LC-2", "circuit1_on") in _index_view(at_once)[0]
    # ids follow the frame's order (the guard series it lacks come after)
    first = ids[:-4][ids[:-4] >= 0]
    assert first.tolist() == list(range(len(first)))


def test_series_ids_follow_arrival_order() -> None:
    rules = [r for r in load_default_rules() if r.family == "threshold"]
    stream = city_stream(3_000, "sensor", 40)
    ix = SeriesIndex(rules)
    sids = ix.lookup(stream)
    first = sids[sids >= 0]
    # the first time each series appears, its id is the next one: arrival order
    seen = np.unique(first, return_index=True)[1]
    assert (np.diff(first[np.sort(seen)]) >= 0).all()
