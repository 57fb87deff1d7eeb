"""The hash id map: stable ids across batches, growth, shared hashes, and the bench baseline."""

from __future__ import annotations

import numpy as np

from bench._rules_polars import PolarsRules
from bench.rules import city_stream
from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from rules.idmap import IdMap, key_hashes
from tests.rules._helpers import DM, frame


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
